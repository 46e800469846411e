"""Property-based fuzzing of every public op and the main layers (hypothesis).

Each generated call mixes good and bad input: shapes with zero-sized, size-1 and large odd
dimensions; dtypes float32/float64 and wrong ones (float16, int32, bool, byte-swapped); layouts
C-contiguous and not (transposed, strided, negative strides, Fortran order, misaligned buffers,
read-only outputs, plain lists); parameter values zero, negative and huge (stride, padding,
dilation, groups, kernel size, labels, shapes whose element count overflows int64) and NaN/inf
inputs. Every call must either

* succeed and match :mod:`fastnn.reference` (finite inputs; non-finite inputs must give the
  reference's output shape), or
* raise TypeError / ValueError / MemoryError whose message names the op ("fastnn.<op>" or the
  layer), and must succeed whenever the generator made a well-formed call.

A segfault or abort would kill pytest itself, so the batches run in a child interpreter
(``python -c``) and the test asserts its exit status: a crash is a failed test. The child
prints how many cases it tried and how many were rejected cleanly; run
``pytest tests/test_fuzz_ops.py -s`` to see the figures, ``FASTNN_FUZZ_EXAMPLES=N`` for more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import fastnn
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
CLEAN_ERRORS = (TypeError, ValueError, MemoryError)
# float32 kernels against the float64 reference: reductions here run over at most a few
# thousand terms, so 1e-3 relative Frobenius error is far above rounding (~1e-5) and far below
# any indexing bug (order 1). float64 kernels get 1e-9.
RTOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}
HUGE = 2**40  # a size that fits int64 but whose products with other sizes do not fit memory
# (array, copy) of every input array drawn for the current case that the op must not write to;
# check() compares them afterwards, so a kernel writing outside its outputs fails.
_INPUTS: list = []


@dataclass
class Case:
    """One generated call: fastnn's and the reference's, with what the generator knows."""

    name: str
    run: Callable[[], Any]
    reference: Callable[[], Any] | None
    well_formed: bool  # every argument valid: fastnn must not reject it
    finite: bool = True  # all float inputs finite: outputs must match the reference
    outputs: slice = field(default_factory=lambda: slice(None))  # which outputs to compare


class Arg:
    """Draws one array argument and records whether it is well formed and finite."""

    def __init__(self, draw, bad_rate: int = 8) -> None:
        self.draw = draw
        self.bad_rate = bad_rate  # roughly one draw in bad_rate picks a bad dtype / layout
        self.well_formed = True
        self.finite = True
        self.dtype = draw(st.sampled_from([np.float32] * 3 + [np.float64]))

    def _bad(self) -> bool:
        return self.draw(st.integers(0, self.bad_rate - 1)) == 0

    def floats(self, shape, low: float = -3.0, high: float = 3.0, writeable_needed: bool = False):
        seed = self.draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        x = self._make(rng.uniform(low, high, size=shape).astype(self.dtype), rng, writeable_needed)
        if isinstance(x, np.ndarray) and not writeable_needed:
            _INPUTS.append((x, x.copy()))
        return x

    def _make(self, x: np.ndarray, rng: np.random.Generator, writeable_needed: bool):
        if x.size and self._bad():
            x.flat[rng.integers(0, x.size, size=min(3, x.size))] = self.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            self.finite = False
        if not self._bad():
            return x
        self.well_formed = False
        kind = self.draw(st.sampled_from(["float16", "int32", "bool", "swapped", "strided", "negative",
                                          "transposed", "fortran", "misaligned", "readonly", "list"]))
        if kind == "float16":
            return x.astype(np.float16)
        if kind == "int32":
            return x.astype(np.int32)
        if kind == "bool":
            return x > 0
        if kind == "swapped":
            return x.astype(x.dtype.newbyteorder(">"))
        if kind == "strided":
            return np.repeat(x, 2, axis=-1)[..., ::2] if x.ndim else x
        if kind == "negative":
            return x[..., ::-1] if x.ndim else x
        if kind == "transposed":
            return np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1) if x.ndim >= 2 else x
        if kind == "fortran":
            return np.asfortranarray(x)
        if kind == "misaligned":
            buf = np.zeros(x.nbytes + 1, dtype=np.uint8)
            y = buf[1:].view(x.dtype).reshape(x.shape)
            y[...] = x
            return y
        if kind == "readonly":
            self.well_formed &= not writeable_needed  # read-only inputs are fine
            x.flags.writeable = False
            return x
        return x.tolist()


def dim(draw, low: int = 0) -> int:
    """A dimension: mostly small, sometimes 0 or 1, now and then large and odd."""
    return draw(st.sampled_from([d for d in [0, 1, 1, 2, 3, 5, 7, 17, 33] if d >= low]))


def positive(draw, values=(1, 1, 2, 3), bad=(0, -1, -7, HUGE)) -> tuple[int, bool]:
    """A positive hyper-parameter, or (one time in five) a zero, negative or huge one."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(bad)), False
    return draw(st.sampled_from(values)), True


def labels_for(draw, n: int, classes: int) -> tuple[np.ndarray, bool]:
    dtype = draw(st.sampled_from([np.int64, np.int64, np.int32, np.float32, np.uint8]))
    labels = np.array([draw(st.integers(0, max(classes - 1, 0))) for _ in range(n)], dtype=np.int64)
    ok = dtype in (np.int64, np.int32)
    if n and draw(st.integers(0, 4)) == 0:
        labels[draw(st.integers(0, n - 1))] = draw(st.sampled_from([-1, classes, 2**31 - 1, -(2**40)]))
        ok = False
    if dtype == np.int32:
        labels = labels.astype(np.int64).clip(-(2**31), 2**31 - 1)
    return labels.astype(dtype), ok


# ---------------------------------------------------------------------------------------------
# Case builders: one per op family. Each returns a Case.


def _ops():
    import fastnn.ops as ops
    import fastnn.reference as ref

    return ops, ref


def case_matmul(draw) -> Case:
    ops, ref = _ops()
    m, k, n = dim(draw), dim(draw), dim(draw)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    args = Arg(draw)
    a = args.floats((k, m) if ta else (m, k))
    b = args.floats((n, k) if tb else (k, n))
    return Case("matmul", lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb),
                lambda: ref.matmul(a, b, trans_a=ta, trans_b=tb), args.well_formed and min(m, n, k) > 0, args.finite)


def case_linear(draw) -> Case:
    ops, ref = _ops()
    n, fin, fout = dim(draw), dim(draw), dim(draw)
    args = Arg(draw)
    x, w = args.floats((n, fin)), args.floats((fout, fin))
    bias = args.floats((fout,)) if draw(st.booleans()) else None
    if draw(st.booleans()):
        return Case("linear", lambda: ops.linear(x, w, bias), lambda: ref.linear(x, w, bias),
                    args.well_formed and min(n, fin, fout) > 0, args.finite)
    dy = args.floats((n, fout))
    return Case("linear_backward", lambda: ops.linear_backward(x, w, dy, bias=bias is not None),
                lambda: ref.linear_backward(x, w, dy, bias=bias is not None),
                args.well_formed and min(n, fin, fout) > 0, args.finite)


def case_activation(draw) -> Case:
    ops, ref = _ops()
    name = draw(st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "gelu"]))
    shape = tuple(dim(draw) for _ in range(draw(st.integers(1, 3))))
    args = Arg(draw)
    x = args.floats(shape)
    if draw(st.booleans()):
        return Case(name, lambda: getattr(ops, name)(x), lambda: getattr(ref, name)(x),
                    args.well_formed and all(shape), args.finite)
    dy = args.floats(shape)
    fn = f"{name}_backward"
    return Case(fn, lambda: getattr(ops, fn)(x, dy), lambda: getattr(ref, fn)(x, dy),
                args.well_formed and all(shape), args.finite)


def case_softmax(draw) -> Case:
    ops, ref = _ops()
    n, c = dim(draw), dim(draw)
    args = Arg(draw)
    x = args.floats((n, c), -20, 20)
    which = draw(st.sampled_from(["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "xent"]))
    if which in ("softmax", "log_softmax"):
        return Case(which, lambda: getattr(ops, which)(x), lambda: getattr(ref, which)(x),
                    args.well_formed and n > 0 and c > 0, args.finite)
    if which != "xent":
        dy = args.floats((n, c))
        return Case(which, lambda: getattr(ops, which)(x, dy), lambda: getattr(ref, which)(x, dy),
                    args.well_formed and n > 0 and c > 0, args.finite)
    labels, labels_ok = labels_for(draw, n, c)
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.5, 2.0, float("nan")]))
    ok = args.well_formed and labels_ok and n > 0 and c > 0 and 0.0 <= smoothing <= 1.0
    return Case("softmax_cross_entropy", lambda: ops.softmax_cross_entropy(x, labels, smoothing),
                lambda: ref.softmax_cross_entropy(x, labels, smoothing), ok, args.finite)


def case_bce(draw) -> Case:
    ops, ref = _ops()
    n, c = dim(draw), dim(draw)
    args = Arg(draw)
    logits, targets = args.floats((n, c), -30, 30), args.floats((n, c), 0, 1)
    pos_weight = args.floats((c,), 0.1, 3) if draw(st.booleans()) else None
    return Case("bce_with_logits", lambda: ops.bce_with_logits(logits, targets, pos_weight),
                lambda: ref.bce_with_logits(logits, targets, pos_weight),
                args.well_formed and args.finite and n * c > 0, args.finite)  # NaN is not a valid target


def case_conv2d(draw) -> Case:
    ops, ref = _ops()
    groups, g_ok = positive(draw, (1, 1, 2), (0, -1, HUGE))
    g = groups if g_ok else 1
    n, h, w = dim(draw), dim(draw), dim(draw)
    c_in, c_out = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, s_ok = positive(draw)
    padding = draw(st.sampled_from([0, 0, 1, 1, 2, 0, 1, -1, HUGE]))
    dilation, d_ok = positive(draw, (1, 1, 2))
    args = Arg(draw, bad_rate=16)
    x, weight = args.floats((n, c_in, h, w)), args.floats((c_out, c_in // g, kh, kw))
    bias = args.floats((c_out,)) if draw(st.booleans()) else None
    hyper = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    # Only the batch may be empty: H or W = 0 is refused even where padding would make room.
    fits = min(h, w) >= 1 and all(s + 2 * max(padding, 0) >= (k - 1) * (dilation if d_ok else 1) + 1
                                  for s, k in ((h, kh), (w, kw)))
    ok = args.well_formed and s_ok and g_ok and d_ok and 0 <= padding <= 2 and fits and n > 0
    if draw(st.booleans()) or not ok:
        return Case("conv2d", lambda: ops.conv2d(x, weight, bias, **hyper),
                    lambda: ref.conv2d(x, weight, bias, **hyper), ok, args.finite)
    y = ref.conv2d(x, weight, None, **hyper)
    dy = args.floats(y.shape)
    ok = ok and args.well_formed and y.size > 0
    return Case("conv2d_backward", lambda: ops.conv2d_backward(x, weight, dy, bias=bias is not None, **hyper),
                lambda: ref.conv2d_backward(x, weight, dy, bias=bias is not None, **hyper), ok, args.finite)


def case_pool2d(draw) -> Case:
    ops, ref = _ops()
    n, c, h, w = dim(draw), dim(draw), dim(draw), dim(draw)
    kernel, k_ok = positive(draw, (1, 2, 3))
    stride = draw(st.sampled_from([None, None, 1, 2, 0, -2, HUGE]))
    padding = draw(st.sampled_from([0, 0, 1, -1, 5, HUGE]))
    args = Arg(draw)
    x = args.floats((n, c, h, w))
    k = kernel if k_ok else 1
    s_ok = stride is None or 0 < stride < HUGE
    # Empty planes (H or W = 0) are refused, as PyTorch refuses them, even where padding would
    # make room for a window: such a window would hold padding only. A batch of 0 is accepted.
    fits = k_ok and 0 <= padding <= k // 2 and min(h, w) >= 1 and h + 2 * padding >= k and w + 2 * padding >= k
    ok = args.well_formed and s_ok and fits and n * c > 0
    which = draw(st.sampled_from(["max", "avg", "global", "max_backward", "avg_backward", "global_backward"]))
    if which == "max":
        return Case("max_pool2d", lambda: ops.max_pool2d(x, kernel, stride, padding),
                    lambda: ref.max_pool2d(x, kernel, stride, padding), ok, args.finite)
    if which == "avg":
        return Case("avg_pool2d", lambda: ops.avg_pool2d(x, kernel, stride, padding),
                    lambda: ref.avg_pool2d(x, kernel, stride, padding), ok, args.finite)
    if which == "global":
        return Case("global_avg_pool2d", lambda: ops.global_avg_pool2d(x), lambda: ref.global_avg_pool2d(x),
                    args.well_formed and x.size > 0 if isinstance(x, np.ndarray) else False, args.finite)
    # Backward ops take the input shape as a parameter: also try ones whose size overflows.
    shape = (n, c, h, w)
    if draw(st.integers(0, 4)) == 0:
        shape = draw(st.sampled_from([(HUGE, HUGE, 1, 1), (2**62, 4, 1, 1), (1, 1, -3, 4), (HUGE, 1, HUGE, HUGE),
                                      (n, c, h), (n, c, h, w, 1)]))
        ok = False
    if which == "global_backward":
        dy = args.floats((n, c))
        ok = ok and args.well_formed and h * w > 0
        return Case("global_avg_pool2d_backward", lambda: ops.global_avg_pool2d_backward(dy, shape),
                    lambda: ref.global_avg_pool2d_backward(dy, shape), ok, args.finite)
    if not ok:  # no valid forward to take the gradient's shape from: feed a small one
        dy = args.floats((n, c, 1, 1))
        idx = np.zeros((n, c, 1, 1), np.int64)
    else:
        y, idx = ref.max_pool2d(x, kernel, stride, padding)
        dy = args.floats(y.shape)
        ok = args.well_formed and y.size > 0
    if which == "max_backward":
        if draw(st.integers(0, 4)) == 0 and idx.size:
            idx = idx.copy()
            idx.flat[0] = draw(st.sampled_from([-1, h * w, 2**40]))
            ok = False
        return Case("max_pool2d_backward", lambda: ops.max_pool2d_backward(dy, idx, shape),
                    lambda: ref.max_pool2d_backward(dy, idx, shape), ok, args.finite)
    return Case("avg_pool2d_backward", lambda: ops.avg_pool2d_backward(dy, shape, kernel, stride, padding),
                lambda: ref.avg_pool2d_backward(dy, shape, kernel, stride, padding), ok, args.finite)


def case_batchnorm(draw) -> Case:
    ops, ref = _ops()
    n, c = dim(draw), dim(draw)
    spatial = tuple(dim(draw) for _ in range(draw(st.sampled_from([0, 2]))))
    args = Arg(draw)
    x = args.floats((n, c) + spatial)
    weight, bias = args.floats((c,), 0.5, 2), args.floats((c,))
    mean, var = args.floats((c,)), args.floats((c,), 0.1, 2)
    eps = draw(st.sampled_from([1e-5] * 6 + [0.0, -1.0, float("nan")]))
    eps_ok = eps > 0
    count = n * int(np.prod(spatial))
    which = draw(st.sampled_from(["train", "eval", "backward"]))
    if which == "train":
        ok = args.well_formed and eps_ok and c > 0 and count > 1
        return Case("batch_norm_train", lambda: ops.batch_norm_train(x, weight, bias, mean.copy(), var.copy(), eps=eps),
                    lambda: ref.batch_norm_train(x, weight, bias, mean, var, eps=eps), ok, args.finite, slice(0, 3))
    if which == "eval":
        ok = args.well_formed and eps_ok and c > 0 and count > 0
        return Case("batch_norm_eval", lambda: ops.batch_norm_eval(x, weight, bias, mean, var, eps=eps),
                    lambda: ref.batch_norm_eval(x, weight, bias, mean, var, eps=eps), ok, args.finite)
    dy, inv_std = args.floats(x.shape if isinstance(x, np.ndarray) else (n, c) + spatial), args.floats((c,), 0.5, 2)
    ok = args.well_formed and c > 0 and count > 1  # training statistics need two values per channel
    return Case("batch_norm_backward", lambda: ops.batch_norm_backward(dy, x, weight, mean, inv_std),
                lambda: ref.batch_norm_backward(dy, x, weight, mean, inv_std), ok, args.finite)


def case_dropout(draw) -> Case:
    ops, ref = _ops()
    shape = tuple(dim(draw) for _ in range(draw(st.integers(1, 3))))
    p = draw(st.sampled_from([0.0, 0.5, 0.9, 0.3, 0.5, 1.0, -0.1, 1.5, float("nan")]))
    seed = draw(st.sampled_from([0, 7, 2**63 - 1, 12345, -1, 2**64]))
    args = Arg(draw)
    x = args.floats(shape)
    ok = args.well_formed and 0.0 <= p < 1.0 and 0 <= seed < 2**64 and all(shape)
    return Case("dropout", lambda: ops.dropout(x, p, seed), lambda: ref.dropout(x, p, seed), ok, args.finite)


def case_optim(draw) -> Case:
    ops, ref = _ops()
    shape = tuple(dim(draw) for _ in range(draw(st.integers(1, 2))))
    args = Arg(draw)
    param = args.floats(shape, writeable_needed=True)
    grad = args.floats(shape)
    state = [args.floats(shape, writeable_needed=True), args.floats(shape, 0, 1, writeable_needed=True)]
    lr = draw(st.sampled_from([0.1, 0.1, 0.0, -1.0, float("inf")]))
    before = [np.array(a, copy=True) for a in [param, grad] + state] if args.well_formed else None
    if draw(st.booleans()):
        momentum = draw(st.sampled_from([0.0, 0.9]))
        buf = state[0] if momentum else None

        def run_sgd():
            ops.sgd_step(param, grad, buf, lr=lr, momentum=momentum, first_step=True)
            return (param,)

        def ref_sgd():
            return ref.sgd_step(before[0], before[1], None if buf is None else before[2], lr=lr, momentum=momentum,
                                first_step=True)[:1]

        return Case("sgd_step", run_sgd, ref_sgd if before else None, args.well_formed and all(shape) and lr >= 0,
                    args.finite and np.isfinite(lr))
    step = draw(st.sampled_from([1, 1, 5, 0, -3]))

    def run_adam():
        ops.adam_step(param, grad, state[0], state[1], step=step, lr=lr)
        return (param,)

    def ref_adam():
        return ref.adam_step(before[0], before[1], before[2], before[3], step=step, lr=lr)[:1]

    ok = args.well_formed and all(shape) and step >= 1 and lr >= 0
    return Case("adam_step", run_adam, ref_adam if before else None, ok, args.finite and np.isfinite(lr))


def case_layer(draw) -> Case:
    """A layer's forward and backward on a random batch (the layer validates the input)."""
    from fastnn import nn

    kind = draw(st.sampled_from(["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Dropout"]))
    n, c, h = dim(draw), dim(draw, 1), dim(draw)
    args = Arg(draw)
    if kind == "Linear":
        layer, x = nn.Linear(c, 3), args.floats((n, c))
    elif kind == "Conv2d":
        layer, x = nn.Conv2d(c, 2, 3, padding=draw(st.sampled_from([0, 1]))), args.floats((n, c, h, h))
    elif kind == "MaxPool2d":
        layer, x = nn.MaxPool2d(2), args.floats((n, c, h, h))
    elif kind == "AvgPool2d":
        layer, x = nn.AvgPool2d(2, padding=1), args.floats((n, c, h, h))
    elif kind == "BatchNorm2d":
        layer, x = nn.BatchNorm2d(c), args.floats((n, c, h, h))
    else:
        layer, x = nn.Dropout(0.5), args.floats((n, c))

    def run():
        y = layer(x)
        return y, layer.backward(np.ones_like(y))

    return Case(f"nn.{kind}", run, None, False, args.finite)


BUILDERS = [case_matmul, case_linear, case_activation, case_softmax, case_bce, case_conv2d, case_pool2d,
            case_batchnorm, case_dropout, case_optim, case_layer]


# ---------------------------------------------------------------------------------------------
# Checking one case.


def _arrays(result) -> list:
    if isinstance(result, tuple):
        return list(result)
    return [result]


def check(case: Case, counts: dict) -> None:
    counts["tried"] += 1
    try:
        _check_outputs(case, counts)
    finally:
        for array, before in _INPUTS:
            assert np.array_equal(array, before, equal_nan=True), f"{case.name} wrote into an input"
        _INPUTS.clear()


def _check_outputs(case: Case, counts: dict) -> None:
    try:
        with np.errstate(all="ignore"):
            result = case.run()
    except CLEAN_ERRORS as e:
        message = str(e)
        assert "fastnn" in message, f"{case.name}: {type(e).__name__} does not name the op: {message}"
        assert not case.well_formed, f"{case.name}: a well-formed call was rejected: {type(e).__name__}: {e}"
        counts["rejected"] += 1
        return
    counts["accepted"] += 1
    if case.reference is None:
        return
    try:
        with np.errstate(all="ignore"):
            expected = case.reference()
    except MemoryError:
        counts["unchecked"] += 1  # e.g. padding 2^40 with stride 2^40: a small output, but np.pad cannot
        return
    except Exception as e:  # the reference (plain NumPy) gives up: fastnn's answer must then be an error too
        if "too big" in str(e):  # NumPy's spelling of the MemoryError above
            counts["unchecked"] += 1
            return
        if all(np.size(a) == 0 for a in _arrays(result) if a is not None and not np.isscalar(a)):
            counts["empty"] += 1  # NumPy's reshapes cannot spell some zero-sized cases; fastnn returned empties
            return
        raise AssertionError(f"{case.name}: accepted a call the reference rejects ({type(e).__name__}: {e})") from e
    got, want = _arrays(result)[case.outputs], _arrays(expected)[case.outputs]
    # Scalar outputs (losses) come back as Python floats: judge them by the arrays' precision.
    computed_in = next((a.dtype for a in got if isinstance(a, np.ndarray) and a.ndim), np.dtype(np.float32))
    for i, (g, r) in enumerate(zip(got, want)):
        if r is None or g is None:
            assert g is None and r is None, f"{case.name}: output {i} is {g!r}, reference {r!r}"
            continue
        if np.isscalar(r) or np.ndim(r) == 0:
            g, r = np.float64(g), np.float64(r)
        assert np.shape(g) == np.shape(r), f"{case.name}: output {i} has shape {np.shape(g)}, reference {np.shape(r)}"
        if not case.finite:
            continue
        g64, r64 = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if not np.all(np.isfinite(r64)):
            continue  # overflow in the float64 spec itself (huge lr and the like)
        rtol = RTOL.get(np.asarray(g).dtype if np.ndim(g) else computed_in, 1e-3) if np.asarray(g).dtype.kind == "f" else 0
        err = np.linalg.norm(g64 - r64) / max(np.linalg.norm(r64), 1e-30) if r64.size else 0.0
        assert err <= rtol or np.linalg.norm(g64 - r64) < 1e-6, f"{case.name}: output {i} relative error {err:.3g}"


def run_properties(examples: int, builders: list[str], seed: int | None = None) -> dict:
    """Runs the hypothesis property for the named builders; returns the counts.

    Without ``seed`` the run is derandomised (CI: the same cases every time); with one,
    hypothesis draws from that seed, so long runs (scripts/fuzz_long.sh) cover new cases in
    every chunk and a failing chunk can be replayed by its seed."""
    counts = {"tried": 0, "rejected": 0, "accepted": 0, "empty": 0, "unchecked": 0}
    chosen = [b for b in BUILDERS if b.__name__ in builders]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.data())
    def prop(data):
        for builder in chosen:
            _INPUTS.clear()
            check(data.draw(st.composite(builder)()), counts)

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)
    prop()
    return counts


# Children import the same fastnn as this process (installed, or a dev tree on PYTHONPATH).
FASTNN_ROOT = str(Path(fastnn.__file__).resolve().parents[1])


def run_in_child(module: str, function: str, *args: Any, timeout: float = 600) -> Any:
    """Calls ``module.function(*args)`` (a module under tests/) in a fresh interpreter and
    returns its JSON result. A crash there (segfault, abort) or a hang past ``timeout`` fails
    the calling test with the child's output instead of killing the test run."""
    code = (f"import sys, json; sys.path[:0] = [{str(HERE)!r}]; import {module} as t; "
            f"print('FUZZ', json.dumps(t.{function}(*{list(args)!r})))")
    # Two kernel threads: the tiny cases gain nothing from more, and idle OpenMP spinning on a
    # shared CI runner costs more than the cases themselves.
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=os.pathsep.join([FASTNN_ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"fuzz child exited with {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("FUZZ "))
    return json.loads(line[5:])


EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", "60"))
GROUPS = {
    "dense": ["case_matmul", "case_linear", "case_activation", "case_softmax", "case_bce", "case_dropout"],
    "spatial": ["case_conv2d", "case_pool2d", "case_batchnorm"],
    "optim_layers": ["case_optim", "case_layer"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fuzzed_ops_match_reference_or_reject_cleanly(group):
    counts = run_in_child("test_fuzz_ops", "run_properties", EXAMPLES, GROUPS[group])
    print(f"\nfuzz {group}: {counts['tried']} cases tried, {counts['rejected']} rejected cleanly, "
          f"{counts['accepted']} accepted ({counts['empty'] + counts['unchecked']} of them empty or past what the "
          f"NumPy reference can allocate, so not compared)")
    assert counts["tried"] >= EXAMPLES * len(GROUPS[group])
    assert counts["rejected"] > 0 and counts["accepted"] > 0  # both kinds of input were generated


@pytest.mark.parametrize(
    "call",
    [
        lambda ops: ops.avg_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), (2**40, 2**40, 2**40, 1), 1),
        lambda ops: ops.global_avg_pool2d_backward(np.ones((1, 1), np.float32), (1, 1, 2**40, 2**40)),
        lambda ops: ops.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.int64),
                                            (1, 1, 2**62, 2**62)),
        lambda ops: ops.conv2d(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32), padding=2**40),
        lambda ops: ops.avg_pool2d(np.ones((1, 1, 1, 1), np.float32), 1, padding=2**62),
        # fits int64, not memory: 2^41 x 1 output (the dilation shrinks the padded width back)
        lambda ops: ops.conv2d(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 3), np.float32),
                               padding=2**40, dilation=2**40),
        # a small output, but a padded plane past memory for the kernel's workspace
        lambda ops: ops.conv2d(np.ones((2, 1, 17, 3), np.float32), np.ones((1, 1, 1, 3), np.float32),
                               stride=2**40, padding=2**40),
    ],
    ids=["avg_backward_shape", "global_backward_shape", "max_backward_shape", "conv_padding", "avg_padding",
         "conv_output_past_memory", "conv_workspace_past_memory"],
)
def test_sizes_past_int64_or_memory_are_refused_before_allocating(call):
    import fastnn.ops as ops

    with pytest.raises((ValueError, MemoryError)) as info:
        call(ops)
    assert "fastnn" in str(info.value)
