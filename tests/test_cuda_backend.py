"""The CUDA backend seen from a machine without a usable GPU (CI, CPU-only installs): fastnn
imports, fastnn.cuda reports why it cannot run, and every way into the GPU raises a clear
RuntimeError naming the op. Also the multi-tensor optimiser ops and matmul-precision setting,
which are backend-neutral. (With a GPU, tests/cuda runs the kernels themselves.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastnn
from conftest import FLOAT32_RTOL, assert_close
from fastnn import cuda, nn, ops, optim

needs_no_gpu = pytest.mark.skipif(cuda.is_available(), reason="a GPU is present: tests/cuda covers it")


class FakeCupyArray:
    """Looks like a CuPy array to fastnn's dispatch (module name and __cuda_array_interface__)."""

    __module__ = "cupy._core.core"

    def __init__(self, shape):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(np.float32)
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (0, False), "version": 3}


def test_import_fastnn_does_not_load_the_cuda_extension():
    code = "import sys, fastnn; print('fastnn._cuda' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@needs_no_gpu
def test_unavailable_backend_says_why():
    assert cuda.is_available() is False
    reason = cuda.unavailable_reason()
    assert isinstance(reason, str) and reason
    info = cuda.info()
    assert info["available"] is False and info["reason"] == reason
    assert info["matmul_precision"] == "highest"
    assert fastnn.build_info()["cuda"]["built"] == info["built"]


@needs_no_gpu
def test_built_extension_imports_without_a_driver():
    info = cuda.info()
    if not info["built"]:
        assert "built without its CUDA backend" in cuda.unavailable_reason()
        assert cuda.device_count() == 0
        return
    from fastnn import _cuda

    count, error = _cuda.probe_devices()
    assert count == 0 and error
    assert info["devices"] == [] and info["architectures"]
    assert info["runtime_version"].count(".") == 1


@needs_no_gpu
@pytest.mark.parametrize(
    "op,call",
    [
        ("matmul", lambda x: ops.matmul(x, x)),
        ("linear", lambda x: ops.linear(x, x)),
        ("relu", lambda x: ops.relu(x)),
        ("softmax_cross_entropy", lambda x: ops.softmax_cross_entropy(x, x)),
        ("sgd_step", lambda x: ops.sgd_step_multi([x], [x], None, lr=0.1)),
    ],
)
def test_gpu_op_raises_naming_the_op(op, call):
    with pytest.raises(RuntimeError, match=f"fastnn.{op}: got GPU arrays, but the CUDA backend is not available"):
        call(FakeCupyArray((2, 2)))
    with pytest.raises(RuntimeError, match="fastnn.conv2d: .*not available"):
        cuda.backend("conv2d")


@needs_no_gpu
def test_module_to_cuda_raises_and_to_cpu_is_a_no_op():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    weight = model[0].weight.data
    with pytest.raises(RuntimeError, match=r"fastnn.nn.Sequential.to\('cuda'\): the CUDA backend is not available"):
        model.to("cuda")
    assert model.to("cpu") is model and model[0].weight.data is weight


def test_module_to_rejects_unknown_devices():
    for device in ("gpu", "cuda:x", 0):
        with pytest.raises(ValueError, match="argument 'device' must be 'cpu', 'cuda' or 'cuda:<index>'"):
            nn.Linear(2, 2).to(device)


def test_matmul_precision_round_trip():
    assert fastnn.get_matmul_precision() == "highest"
    try:
        fastnn.set_matmul_precision("high")
        assert fastnn.get_matmul_precision() == "high" == cuda.get_matmul_precision()
        # The CPU kernels ignore the setting: products stay exact float32.
        a = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
        np.testing.assert_array_equal(ops.matmul(a, a), fastnn._cpu.matmul(a, a))
    finally:
        fastnn.set_matmul_precision("highest")
    with pytest.raises(ValueError, match="must be 'highest', 'high' or 'medium'; got 'low'"):
        fastnn.set_matmul_precision("low")


def test_medium_precision_keeps_float32_on_the_cpu_and_says_why(monkeypatch):
    # fastnn has no bf16 CPU kernel: under "medium" the products must be bitwise the float32
    # ones, and cpu_matmul_precision must say which instructions the CPU has or lacks.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((33, 17)).astype(np.float32), rng.standard_normal((17, 9)).astype(np.float32)
    exact = ops.matmul(a, b)
    try:
        fastnn.set_matmul_precision("medium")
        assert fastnn.get_matmul_precision() == "medium" and cuda.info()["gpu_matmul_precision"] == "high"
        np.testing.assert_array_equal(ops.matmul(a, b), exact)
        assert cuda.cpu_matmul_precision()["setting"] == "medium"
        assert fastnn.build_info()["cpu_matmul_precision"]["setting"] == "medium"
    finally:
        fastnn.set_matmul_precision("highest")
    monkeypatch.setattr(cuda, "_cpu_flags", lambda: {"avx2", "fma"})
    lacking = cuda.cpu_matmul_precision("medium")
    assert lacking["precision"] == "float32" and "no bf16 instructions (neither avx512_bf16 nor amx_bf16)" in lacking["reason"]
    monkeypatch.setattr(cuda, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    having = cuda.cpu_matmul_precision("medium")
    assert having["precision"] == "float32" and "has avx512_bf16, but fastnn has no bf16 CPU kernel" in having["reason"]
    monkeypatch.setattr(cuda, "_cpu_flags", lambda: None)
    assert "CPU flags unreadable" in cuda.cpu_matmul_precision("medium")["reason"]
    assert cuda.cpu_matmul_precision("highest")["reason"] == "exact float32, as 'highest' asks"
    with pytest.raises(ValueError, match="cpu_matmul_precision: argument 'setting' must be .*; got 'bf16'"):
        cuda.cpu_matmul_precision("bf16")


def test_multi_tensor_steps_match_single_steps(rng):
    # Elementwise updates: the multi-tensor op must give exactly the single-tensor results.
    shapes = [(3,), (4, 5), (7, 1, 2)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    single = [p.copy() for p in params]
    bufs, single_bufs = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    ops.sgd_step_multi(params, grads, bufs, lr=0.1, momentum=0.9, first_step=True)
    for p, g, b in zip(single, grads, single_bufs):
        ops.sgd_step(p, g, b, lr=0.1, momentum=0.9, first_step=True)
    for got, want in zip(params + bufs, single + single_bufs):
        np.testing.assert_array_equal(got, want)
    m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    sm, sv = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    ops.adamw_step_multi(params, grads, m, v, step=1, lr=1e-2)
    for p, g, a, b in zip(single, grads, sm, sv):
        ops.adamw_step(p, g, a, b, step=1, lr=1e-2)
    for got, want in zip(params + m + v, single + sm + sv):
        np.testing.assert_array_equal(got, want)


def test_multi_tensor_errors_name_the_item():
    p = [np.zeros(3, np.float32), np.zeros(4, np.float32)]
    with pytest.raises(ValueError, match=r"argument 'grad' must have shape \(4,\).*\(item 1 of 2\)"):
        ops.sgd_step_multi(p, [np.zeros(3, np.float32), np.zeros(3, np.float32)], None, lr=0.1)
    with pytest.raises(ValueError, match="argument 'grads' must have one array per parameter"):
        ops.adam_step_multi(p, p[:1], p, p, step=1, lr=0.1)


def test_optimizer_batches_parameters_by_step_count(rng):
    # A parameter that missed a step keeps its own step count (bias correction), as in PyTorch.
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    params = list(a.parameters()) + list(b.parameters())
    opt = optim.Adam(params, lr=1e-2)
    for p in a.parameters():
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    opt.step()
    for p in b.parameters():
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    expected = {}
    for p in params:
        state = opt.state.get(p)
        step = state["step"] + 1 if state else 1
        data = p.data.copy()
        m = state["exp_avg"].copy() if state else np.zeros_like(data)
        v = state["exp_avg_sq"].copy() if state else np.zeros_like(data)
        ops.adam_step(data, p.grad, m, v, step=step, lr=1e-2)
        expected[id(p)] = data
    opt.step()
    assert [opt.state[p]["step"] for p in params] == [2, 2, 1, 1]
    for p in params:
        assert_close(p.data, expected[id(p)], FLOAT32_RTOL, "param")


def test_cupy_version_reads_no_metadata_without_cupy(monkeypatch):
    # Every training run's report asks for CuPy's version; scanning every installed
    # distribution's metadata costs ~0.5 s, so without CuPy nothing is read, and with it the
    # known wheel names are asked first.
    import importlib.metadata
    import importlib.util

    def no_scan():
        raise AssertionError("packages_distributions() was called")

    monkeypatch.setattr(importlib.metadata, "packages_distributions", no_scan)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real_find_spec(name, *a))
    assert cuda._cupy_version() is None

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "cupy" else real_find_spec(name, *a))
    versions = {"cupy-cuda12x": "13.6.0"}

    def version(dist):
        if dist in versions:
            return versions[dist]
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert cuda._cupy_version() == "13.6.0"
    # A CuPy under another distribution name is still found, by the scan.
    versions = {"cupy-rocm-6-0": "13.1.0"}
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: {"cupy": ["cupy-rocm-6-0"]})
    assert cuda._cupy_version() == "13.1.0"
