"""Every op of the registry (tests/opinfo.py) x {cpu, cuda} x {float32, float64}:

* forward against the float64 reference;
* backward against the reference backward, fed the kernel's own forward outputs;
* parameter gradients accumulate: arrays given as grad_weight / grad_bias come back, in place,
  holding old + new;
* bad input: the entry's exception type and message fragments, and on cuda the very message the
  CPU gives for the same bad input (the array library's name aside: "cupy.ascontiguousarray"
  where the CPU says "numpy.ascontiguousarray").

The cuda variant moves each sample to the GPU with cupy.asarray and checks the result against the
reference (the entry's tolerance) and against the CPU kernel's on the same input (twice it: each
is within the tolerance of the reference). It skips, saying why, where fastnn's CUDA backend, a
GPU or CuPy is missing (fastnn.cuda.unavailable_reason(), as tests/cuda does).
"""

from __future__ import annotations

import numpy as np
import pytest

import opinfo
from fastnn import cuda, ops
from opinfo import BACKENDS, DTYPES, OP_DB, OpInfo, Sample

_reason = cuda.unavailable_reason()
CUDA_SKIP = None if _reason is None else f"the cuda variant needs fastnn's CUDA backend, a GPU and CuPy: {_reason}"


def list_of_cases(entries, dtypes=DTYPES) -> list:
    """The cases as a list (pytest deprecates generators as parameter values)."""
    return list(_cases(entries, dtypes))


def _cases(entries, dtypes=DTYPES):
    for entry in entries:
        for backend in BACKENDS:
            marks = []
            if backend not in entry.backends:
                marks.append(pytest.mark.skip(reason=f"fastnn has no {backend} kernel for {entry.name}"))
            elif backend == "cuda" and CUDA_SKIP is not None:
                marks.append(pytest.mark.skip(reason=CUDA_SKIP))
            for dtype in dtypes:
                yield pytest.param(entry, backend, dtype, marks=marks,
                                   id=f"{entry.name}-{backend}-{np.dtype(dtype).name}")


def _xp(backend):
    if backend == "cpu":
        return np
    import cupy

    return cupy


def _to_backend(backend):
    """A function giving a fresh array on ``backend`` for a NumPy one."""
    return (lambda a: a.copy()) if backend == "cpu" else _xp("cuda").asarray


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()


def _check_one(got, want, rtol, dtype, what, scale=None):
    if want is None:
        assert got is None, f"{what}: expected None, got {type(got).__name__}"
        return
    if isinstance(want, float):  # a loss: a Python float on every backend
        assert isinstance(got, float), f"{what}: expected a float, got {type(got).__name__}"
        err = abs(got - want) / (abs(want) or 1.0)
        assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:.1g} ({got!r} vs {want!r})"
        return
    assert isinstance(got, np.ndarray), f"{what}: expected an array, got {type(got).__name__}"
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind == "f":
        assert got.dtype == dtype, f"{what}: dtype {got.dtype}, the inputs' is {np.dtype(dtype)}"
    if want.dtype.kind in "iub" or rtol == 0:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    # conftest.rel_error's measure, with the norms summed here: np.linalg.norm's BLAS call wakes
    # OpenBLAS's threads, which fight the kernels' own for the cores on a small runner.
    diff = np.sqrt(np.sum(np.square(got.astype(np.float64) - want)))
    if scale is None:
        scale = np.sqrt(np.sum(np.square(want.astype(np.float64))))
    err = float(diff / scale) if scale else float(diff)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:.1g}"


def _check(entry: OpInfo, got: dict, want: dict, dtype, what: str, cpu: dict | None = None, scales=None) -> None:
    """Every output within its tolerance of the reference; on cuda also within twice it of the
    CPU kernel's result (both sit within the tolerance of the reference)."""
    assert set(got) == set(want), f"{entry.name} [{what}]: outputs {sorted(got)} != {sorted(want)}"
    for name, expected in want.items():
        label = f"{entry.name} [{what}] {name}"
        rtol = entry.tol_for(name)(dtype)
        scale = (scales or {}).get(name)
        value = opinfo.tree_map(_host, got[name])
        _check_one(value, expected, rtol, dtype, label, scale)
        if cpu is not None:
            _check_one(value, cpu[name], 2 * rtol, dtype, f"{label} (cuda vs cpu)", scale)


def _samples(entry: OpInfo, dtype) -> list[Sample]:
    samples = list(opinfo.iter_samples(entry, dtype))
    assert samples, f"{entry.name} has no samples"
    return samples


@pytest.mark.parametrize("entry, backend, dtype", list_of_cases(OP_DB))
def test_forward(entry: OpInfo, backend, dtype):
    for s in _samples(entry, dtype):
        want = entry.forward_ref(opinfo.copy_sample(s))
        got = entry.forward(opinfo.map_sample(_to_backend(backend), s))
        cpu = entry.forward(opinfo.copy_sample(s)) if backend == "cuda" else None
        _check(entry, got, want, dtype, s.desc, cpu=opinfo.tree_map(_host, cpu))


def _forward_then(entry: OpInfo, s: Sample, backend):
    """(the sample on ``backend``, the op's forward outputs there, and both as host arrays)."""
    dev = opinfo.map_sample(_to_backend(backend), s)
    fwd = entry.forward(dev)
    return dev, fwd, opinfo.map_sample(_host, dev), opinfo.tree_map(_host, fwd)


def _scales(entry: OpInfo, host: Sample, host_fwd: dict):
    if entry.grad_scale is None:
        return None
    return entry.grad_scale(host, entry.backward_inputs(host, host_fwd)[0])


WITH_BACKWARD = [e for e in OP_DB if e.backward is not None]


@pytest.mark.parametrize("entry, backend, dtype", list_of_cases(WITH_BACKWARD))
def test_backward(entry: OpInfo, backend, dtype):
    for s in _samples(entry, dtype):
        dev, fwd, host, host_fwd = _forward_then(entry, s, backend)
        got = entry.run_backward(dev, fwd)
        # The reference (and on cuda the CPU kernel) at the same forward outputs.
        want = entry.run_backward_ref(host, host_fwd)
        cpu = None
        if backend == "cuda":
            cpu = entry.run_backward(opinfo.copy_sample(host), opinfo.tree_map(np.copy, host_fwd))
        _check(entry, got, want, dtype, f"{s.desc} backward", cpu=cpu, scales=_scales(entry, host, host_fwd))


WITH_ACCUMULATION = [e for e in OP_DB if e.accumulates]


@pytest.mark.parametrize("entry, backend, dtype", list_of_cases(WITH_ACCUMULATION))
def test_parameter_gradients_accumulate(entry: OpInfo, backend, dtype):
    rng = np.random.default_rng(99)
    to_backend = _to_backend(backend)
    for i, s in enumerate(_samples(entry, dtype)):
        dev, fwd, host, host_fwd = _forward_then(entry, s, backend)
        want = entry.run_backward_ref(host, host_fwd)
        before = {kw: opinfo.randn(rng, want[out].shape, dtype) for kw, out in entry.accumulates.items()
                  if want[out] is not None}
        given = {kw: to_backend(a) for kw, a in before.items()}
        input_grad = i % 2 == 0  # with and without the input gradient, which some paths compute alongside
        got = entry.run_backward(dev, fwd, input_grad=input_grad, **given)
        scales = _scales(entry, host, host_fwd)
        if input_grad:
            _check_one(_host(got["dx"]), want["dx"], entry.grad_tol(dtype), dtype, f"{entry.name} [{s.desc}] dx",
                       (scales or {}).get("dx"))
        else:
            assert got["dx"] is None, f"{entry.name} [{s.desc}]: dx computed with input_grad=False"
        for kw, out in entry.accumulates.items():
            if kw not in given:
                assert got[out] is None
                continue
            assert got[out] is given[kw], f"{entry.name} [{s.desc}]: {kw} not updated in place and returned"
            _check_one(_host(got[out]), before[kw] + want[out], entry.grad_tol(dtype), dtype,
                       f"{entry.name} [{s.desc}] {kw} += {out}")


def _same_message(cuda_message: str) -> str:
    return cuda_message.replace("cupy", "numpy")


@pytest.mark.parametrize("entry, backend, dtype", list_of_cases(OP_DB))
def test_bad_input_is_rejected(entry: OpInfo, backend, dtype):
    errors = list(entry.error_inputs(dtype))
    assert errors, f"{entry.name} has no error inputs"
    xp = _xp(backend)
    for e in errors:
        if backend not in e.backends:
            continue
        with pytest.raises(e.exc) as info:
            e.call(xp)
        message = str(info.value)
        for fragment in e.fragments:
            assert fragment in message, f"{entry.name} [{e.desc}]: {fragment!r} not in {message!r}"
        if backend == "cuda" and "cpu" in e.backends:
            with pytest.raises(Exception) as on_cpu:
                e.call(np)
            assert type(info.value) is type(on_cpu.value), f"{entry.name} [{e.desc}]: {info.value!r} vs {on_cpu.value!r}"
            assert _same_message(message) == str(on_cpu.value), f"{entry.name} [{e.desc}]: messages differ"


def test_every_op_has_one_entry():
    covered = [name for entry in OP_DB for name in sorted(entry.functions())]
    assert set(covered) == set(ops.__all__), f"missing: {set(ops.__all__) - set(covered)}"
    # batch_norm_backward serves both batch-norm entries (train and eval mode); nothing else twice.
    twice = {name for name in covered if covered.count(name) > 1}
    assert twice == {"batch_norm_backward"}, twice
    for entry in OP_DB:
        assert entry.tol.why and (entry.grad_tol is None or entry.grad_tol.why), entry.name
        assert (entry.backward is None) == (entry.backward_ref is None) == (entry.backward_inputs is None), entry.name
        assert set(entry.backends) <= set(BACKENDS)
        # Each class of bad input: a wrong dtype (TypeError), a wrong shape and a non-contiguous
        # array (ValueError).
        errors = list(entry.error_inputs(np.float32))
        assert any(e.exc is TypeError for e in errors), f"{entry.name}: no wrong-dtype case"
        assert any(e.exc is ValueError and "C-contiguous" not in " ".join(e.fragments) for e in errors), entry.name
        assert any("C-contiguous" in " ".join(e.fragments) for e in errors), f"{entry.name}: no non-contiguous case"
