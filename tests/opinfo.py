"""The op registry: one OpInfo per op of :mod:`fastnn.ops` (PyTorch's ``op_db`` is the model),
run by tests/test_ops.py on every backend and float dtype.

An entry gives
  * ``op`` and, where there is one, ``backward`` (both from fastnn.ops), and their float64
    specs ``ref`` / ``backward_ref`` (from fastnn.reference);
  * ``sample_inputs(rng, dtype)``: NumPy inputs with odd sizes (1, 3, 7, 17, ...), tails past
    every blocking factor and the special layouts of the op (groups, padding, transposes, ...);
  * ``error_inputs(dtype)``: one bad call per class of bad input (wrong dtype -> TypeError; wrong
    ndim / shape, non-contiguous, misaligned, read-only, aliasing -> ValueError; values out of
    range such as labels or targets -> ValueError), each with its exception type and the message
    fragments it must contain. A call is built from the array library it receives (numpy or
    cupy), so the same bad input reaches both backends; inputs that only exist on the host
    (misaligned buffers, read-only flags, byte-swapped dtypes) are marked CPU-only;
  * tolerances, forward and gradient separately (:class:`Tol`, each with its reason);
  * ``backends``: where it runs (every op has a CPU and a CUDA kernel).

Adapters (``call_op`` / ``call_ref``, ``backward_inputs``) turn the ops' different calling
conventions into one: named outputs in a dict. A backward pass is always fed the *kernel's own*
forward outputs (sigmoid's y, softmax's y, max-pool indices, batch-norm statistics) and the
reference backward is evaluated at the same values, so each pass is checked on its own rather
than through the forward's rounding.

Errors are relative Frobenius norms, ||out - ref|| / ||ref|| (tests/conftest.py rel_error).
float32 elementwise ops are within a few ulps: FLOAT32_RTOL (1e-5). A sum of K float32 terms
has a rounding error that grows like sqrt(K) * 2^-24 (random-sign terms add like a random walk),
about 3e-6 for the K <= 25,000 here; those outputs get FLOAT32_RTOL_REDUCTION (1e-4), which
leaves margin for a GPU's different summation order and still fails on any indexing, padding or
blocking bug (errors of order 1). float64 kernels: FLOAT64_RTOL (1e-12) everywhere.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from conftest import FLOAT32_RTOL, FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, ODD_SIZES
from fastnn import ops
from fastnn import reference as ref

BACKENDS = ("cpu", "cuda")
DTYPES = (np.float32, np.float64)


# ---- the entry's parts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tol:
    """Relative Frobenius tolerance per dtype, and why it is what it is. 0 means bit for bit."""

    float32: float
    why: str
    float64: float = FLOAT64_RTOL

    def __call__(self, dtype) -> float:
        return self.float32 if np.dtype(dtype) == np.float32 else self.float64


ELEMENTWISE = Tol(FLOAT32_RTOL, "elementwise: each output a few float32 roundings (libm exp/erf/tanh) from the exact value")
EXACT = Tol(0.0, "a copy of input values (or a mask) chosen by the same rule as the reference", 0.0)


@dataclass
class Sample:
    """One call. ``args`` / ``kwargs`` go to the op and the reference alike, ``op_kwargs`` to the
    op only (index_dtype, the fused relu, ...); ``grad_out`` is dL/d(output) for the backward,
    ``bwd_op_kwargs`` keyword arguments only the op's backward takes (max-pool's window)."""

    desc: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    op_kwargs: dict = field(default_factory=dict)
    grad_out: Any = None
    bwd_op_kwargs: dict = field(default_factory=dict)


@dataclass
class ErrorInput:
    """``call(xp)`` must raise ``exc`` whose message contains every one of ``fragments``; xp is
    numpy or cupy, whichever the backend under test takes."""

    desc: str
    call: Callable[[ModuleType], Any]
    exc: type
    fragments: tuple[str, ...]
    backends: tuple[str, ...] = BACKENDS


def _as_dict(result, names: tuple[str, ...]) -> dict:
    if not isinstance(result, tuple):
        result = (result,)
    assert len(result) == len(names), f"{len(result)} outputs, expected {names}"
    return dict(zip(names, result))


@dataclass
class OpInfo:
    name: str
    op: Callable
    ref: Callable
    sample_inputs: Callable[[np.random.Generator, Any], Iterable[Sample]]
    error_inputs: Callable[[Any], Iterable[ErrorInput]]
    tol: Tol  # the forward outputs
    grad_tol: Tol | None = None  # the backward's outputs and any gradient the forward returns
    backward: Callable | None = None
    backward_ref: Callable | None = None
    outputs: tuple[str, ...] = ("y",)
    grad_outputs: tuple[str, ...] = ()  # forward outputs that are gradients (the losses' dlogits)
    grad_names: tuple[str, ...] = ("dx",)
    # (sample, forward outputs) -> (args, kwargs) of the backward, for the op and the reference.
    backward_inputs: Callable[[Sample, dict], tuple[tuple, dict]] | None = None
    # backward keyword -> the output it accumulates into (given arrays get ``+=``).
    accumulates: dict[str, str] = field(default_factory=dict)
    # (sample, backward args) -> {gradient name: norm to measure its error against} where the
    # output's own norm is the wrong scale (a gradient that cancels).
    grad_scale: Callable[[Sample, tuple], dict[str, float]] | None = None
    call_op: Callable[[OpInfo, Sample], dict] | None = None
    call_ref: Callable[[OpInfo, Sample], dict] | None = None
    backends: tuple[str, ...] = BACKENDS

    def forward(self, sample: Sample) -> dict:
        """The op on ``sample`` (whose arrays it may update in place): {output name: value}."""
        if self.call_op is not None:
            return self.call_op(self, sample)
        return _as_dict(self.op(*sample.args, **sample.kwargs, **sample.op_kwargs), self.outputs)

    def forward_ref(self, sample: Sample) -> dict:
        if self.call_ref is not None:
            return self.call_ref(self, sample)
        return _as_dict(self.ref(*sample.args, **sample.kwargs), self.outputs)

    def run_backward(self, sample: Sample, fwd: dict, **extra) -> dict:
        args, kwargs = self.backward_inputs(sample, fwd)
        return _as_dict(self.backward(*args, **kwargs, **sample.bwd_op_kwargs, **extra), self.grad_names)

    def run_backward_ref(self, sample: Sample, fwd: dict) -> dict:
        args, kwargs = self.backward_inputs(sample, fwd)
        return _as_dict(self.backward_ref(*args, **kwargs), self.grad_names)

    def tol_for(self, output: str) -> Tol:
        return self.grad_tol if output in self.grad_outputs or output in self.grad_names else self.tol

    def functions(self) -> set[str]:
        """The fastnn.ops names this entry covers."""
        return {f.__name__ for f in (self.op, self.backward) if f is not None}


# ---- helpers ----------------------------------------------------------------------------------


def randn(rng, shape, dtype, scale=1.0, shift=0.0):
    """Normal samples drawn directly in ``dtype``, times scale plus shift."""
    x = rng.standard_normal(shape, dtype=dtype)
    if scale != 1.0:
        x *= dtype(scale)
    if shift != 0.0:
        x += dtype(shift)
    return x


def _readonly(xp, shape, dtype):
    a = xp.ones(shape, dtype)
    a.flags.writeable = False
    return a


def _misaligned(n: int) -> np.ndarray:
    return np.zeros(n * 4 + 1, np.uint8)[1:].view(np.float32)  # float32 data at an odd address


CPU_ONLY = ("cpu",)  # misaligned buffers, read-only flags, byte-swapped dtypes: host-only notions


def _err(desc, call, exc, *fragments, backends=BACKENDS) -> ErrorInput:
    return ErrorInput(desc, call, exc, fragments, backends)


def _other(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


# ---- activations ------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")
USES_OUTPUT = ("sigmoid", "tanh")  # their backward takes the forward's output y, not x


def _activation_samples(name):
    def samples(rng, dtype):
        shapes = [(n,) for n in ODD_SIZES + [100_003]] + [(2, 3, 5, 7), (0, 4)]
        for i, shape in enumerate(shapes):
            kwargs = {"negative_slope": (0.1, 0.01, 2.5)[i % 3]} if name == "leaky_relu" else {}
            yield Sample(f"{shape}", (randn(rng, shape, dtype, 4.0),), kwargs, grad_out=randn(rng, shape, dtype))

    return samples


def _activation_errors(name):
    op, bwd = getattr(ops, name), getattr(ops, name + "_backward")

    def errors(dtype):
        yield _err("int", lambda xp: op(xp.arange(3)), TypeError, f"fastnn.{name}: argument 'x' must be float32 or float64")
        yield _err("bool", lambda xp: op(xp.ones(3, bool)), TypeError, f"fastnn.{name}: argument 'x'", "bool")
        yield _err("strided", lambda xp: op(xp.ones(10, dtype)[::2]), ValueError, f"fastnn.{name}: argument 'x' must be C-contiguous")
        yield _err("negative stride", lambda xp: op(xp.ones(10, dtype)[::-1]), ValueError, "C-contiguous")
        yield _err("backward shape", lambda xp: bwd(xp.ones((2, 3), dtype), xp.ones((3, 2), dtype)), ValueError,
                   f"fastnn.{name}_backward: argument 'grad_out' must have shape (2, 3)")
        yield _err("backward mixed dtypes", lambda xp: bwd(xp.ones(3, dtype), xp.ones(3, _other(dtype))), TypeError,
                   f"fastnn.{name}_backward: argument 'grad_out'")
        if name == "relu" and dtype == np.float32:
            yield _err("misaligned", lambda xp: op(_misaligned(8)), ValueError, "must be aligned", backends=CPU_ONLY)

    return errors


def _activation(name) -> OpInfo:
    def backward_inputs(s, fwd):
        saved = fwd["y"] if name in USES_OUTPUT else s.args[0]
        return (saved, s.grad_out), s.kwargs

    return OpInfo(
        name, getattr(ops, name), getattr(ref, name), _activation_samples(name), _activation_errors(name),
        tol=ELEMENTWISE, grad_tol=ELEMENTWISE,
        backward=getattr(ops, name + "_backward"), backward_ref=getattr(ref, name + "_backward"),
        backward_inputs=backward_inputs,
    )


# ---- softmax family and losses ----------------------------------------------------------------

ROW_REDUCTION = Tol(FLOAT32_RTOL_REDUCTION, "each output divides by (or subtracts the log of) a row sum over C <= 5000 terms")


def _softmax_samples(rng, dtype):
    for shape in [(1, 1), (1, 10), (3, 7), (17, 33), (65, 10), (128, 1000), (7, 65), (3, 5000)]:
        yield Sample(f"{shape}", (randn(rng, shape, dtype, 5.0),), grad_out=randn(rng, shape, dtype))


def _softmax_errors(name):
    op, bwd = getattr(ops, name), getattr(ops, name + "_backward")

    def errors(dtype):
        yield _err("1-D", lambda xp: op(xp.ones(4, dtype)), ValueError, f"fastnn.{name}: argument 'x' must be 2-D")
        yield _err("zero classes", lambda xp: op(xp.ones((2, 0), dtype)), ValueError, "at least one class")
        yield _err("int", lambda xp: op(xp.ones((2, 3), np.int32)), TypeError, f"fastnn.{name}: argument 'x'", "int32")
        yield _err("transposed", lambda xp: op(xp.ones((3, 2), dtype).T), ValueError, "argument 'x' must be C-contiguous")
        yield _err("backward shape", lambda xp: bwd(xp.ones((2, 3), dtype), xp.ones((2, 4), dtype)), ValueError,
                   f"fastnn.{name}_backward: argument 'grad_out' must have shape (2, 3)")

    return errors


def _softmax(name) -> OpInfo:
    return OpInfo(
        name, getattr(ops, name), getattr(ref, name), _softmax_samples, _softmax_errors(name),
        tol=ROW_REDUCTION,
        # dy - sum(dy * y) cancels: fed the kernel's own y, the backward is measured by itself.
        grad_tol=ROW_REDUCTION,
        backward=getattr(ops, name + "_backward"), backward_ref=getattr(ref, name + "_backward"),
        backward_inputs=lambda s, fwd: ((fwd["y"], s.grad_out), {}),
    )


LOSS = Tol(FLOAT32_RTOL, "the mean is accumulated in double over float32 terms: a few ulps")


def _xent_samples(rng, dtype):
    sizes = list(itertools.product(ODD_SIZES, [1, 2, 10, 33])) + [(1000, 33), (65, 1000)]
    for i, (n, classes) in enumerate(sizes):
        smoothing = (0.0, 0.1, 0.3)[i % 3]
        labels = rng.integers(0, classes, size=n).astype((np.int64, np.int32)[i % 2])
        yield Sample(f"N={n} C={classes} eps={smoothing} {labels.dtype}",
                     (randn(rng, (n, classes), dtype, 3.0), labels, smoothing))


def _xent_errors(dtype):
    op = ops.softmax_cross_entropy
    x = lambda xp: xp.ones((2, 3), dtype)  # noqa: E731
    yield _err("float labels", lambda xp: op(x(xp), xp.zeros(2, dtype)), TypeError, "argument 'labels' must be int64 or int32")
    yield _err("int logits", lambda xp: op(xp.ones((2, 3), np.int32), xp.zeros(2, np.int64)), TypeError,
               "fastnn.softmax_cross_entropy: argument 'logits'")
    yield _err("label count", lambda xp: op(x(xp), xp.zeros(3, np.int64)), ValueError, "argument 'labels' must have shape (2,)")
    yield _err("empty batch", lambda xp: op(xp.ones((0, 3), dtype), xp.zeros(0, np.int64)), ValueError, "at least one row")
    yield _err("1-D logits", lambda xp: op(xp.ones(3, dtype), xp.zeros(3, np.int64)), ValueError, "argument 'logits' must be 2-D")
    yield _err("strided labels", lambda xp: op(x(xp), xp.zeros(4, np.int64)[::2]), ValueError, "argument 'labels' must be C-contiguous")
    for label_dtype in (np.int64, np.int32):
        # Several bad labels: the first one is named (the GPU finds them in its kernel).
        yield _err(f"label high {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            xp.ones((5, 3), dtype), xp.asarray(np.array([0, 1, 3, 2, 7], t))), ValueError,
            "fastnn.softmax_cross_entropy: argument 'labels' must lie in [0, 3) for 3 classes; got labels[2] = 3")
        yield _err(f"label negative {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            x(xp), xp.asarray(np.array([-1, 0], t))), ValueError, "got labels[0] = -1")
    yield _err("smoothing", lambda xp: op(x(xp), xp.asarray(np.array([0, 1])), 1.5), ValueError,
               "label_smoothing' must lie in [0, 1]")


def _bce_samples(rng, dtype):
    for i, (n, classes) in enumerate(itertools.product(ODD_SIZES, [1, 3, 40])):
        x = randn(rng, (n, classes), dtype, 4.0)
        t = (rng.uniform(size=x.shape) > 0.5).astype(dtype)
        pw = rng.uniform(0.5, 4, size=classes).astype(dtype) if i % 2 else None
        yield Sample(f"N={n} C={classes} pos_weight={pw is not None}", (x, t, pw))
    # Soft targets, one axis; a long one.
    for n in (33, 100_003):
        yield Sample(f"soft ({n},)", (randn(rng, n, dtype, 4.0), rng.uniform(size=n).astype(dtype)))


def _bce_errors(dtype):
    op = ops.bce_with_logits
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield _err("targets shape", lambda xp: op(a(xp, 2, 3), a(xp, 3, 2)), ValueError, "argument 'targets' must have shape (2, 3)")
    yield _err("pos_weight shape", lambda xp: op(a(xp, 2, 3), a(xp, 2, 3), a(xp, 2)), ValueError,
               "argument 'pos_weight' must have shape (3,)")
    yield _err("empty", lambda xp: op(a(xp, 0), a(xp, 0)), ValueError, "at least one element")
    yield _err("int logits", lambda xp: op(xp.ones((2, 2), np.int32), a(xp, 2, 2)), TypeError, "fastnn.bce_with_logits: argument 'logits'")
    yield _err("mixed targets", lambda xp: op(a(xp, 2, 2), xp.ones((2, 2), _other(dtype))), TypeError, "argument 'targets'")
    yield _err("strided targets", lambda xp: op(a(xp, 2), a(xp, 4)[::2]), ValueError, "argument 'targets' must be C-contiguous")
    for bad, shown in ((2.0, "2"), (-0.5, "-0.5"), (np.nan, "nan")):
        t = np.array([[0, 1], [bad, 0]], dtype)
        yield _err(f"target {bad}", lambda xp, t=t: op(a(xp, 2, 2), xp.asarray(t)), ValueError,
                   f"fastnn.bce_with_logits: argument 'targets' must lie in [0, 1]; got targets.flat[2] = {shown}")


# ---- matmul, linear, conv2d -------------------------------------------------------------------

DOT_PRODUCTS = Tol(FLOAT32_RTOL_REDUCTION, "each output a K-term dot product (K <= 25,000): sqrt(K) * 2^-24 growth")


def _matmul_samples(rng, dtype):
    shapes = [(1, 1, 1), (3, 7, 17), (17, 33, 7), (65, 17, 33), (7, 65, 1), (33, 1, 65), (0, 5, 3), (4, 3, 0)]
    epilogues = [
        lambda m, n: {},
        lambda m, n: dict(alpha=0.5, beta=2.0, out=randn(rng, (m, n), dtype)),
        lambda m, n: dict(bias_per_col=randn(rng, n, dtype), relu=True),
        lambda m, n: dict(bias_per_row=randn(rng, m, dtype), alpha=-1.5),
        lambda m, n: dict(bias_per_col=randn(rng, n, dtype), bias_per_row=randn(rng, m, dtype), relu=True,
                          beta=0.5, out=randn(rng, (m, n), dtype)),
        lambda m, n: dict(beta=1.0, out=randn(rng, (m, n), dtype)),  # how backward passes accumulate
    ]
    for i, ((m, n, k), (ta, tb)) in enumerate(itertools.product(shapes, itertools.product([False, True], repeat=2))):
        a = randn(rng, (k, m) if ta else (m, k), dtype)
        b = randn(rng, (n, k) if tb else (k, n), dtype)
        kwargs = dict(trans_a=ta, trans_b=tb, **epilogues[i % len(epilogues)](m, n))
        yield Sample(f"M={m} N={n} K={k} {sorted(kwargs)}", (a, b), kwargs)


def _matmul_errors(dtype):
    op = ops.matmul
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield _err("int", lambda xp: op(xp.ones((2, 2), np.int32), a(xp, 2, 2)), TypeError,
               "fastnn.matmul: argument 'a' must be float32 or float64; got int32")
    yield _err("mixed", lambda xp: op(a(xp, 2, 2), xp.ones((2, 2), _other(dtype))), TypeError, "argument 'b' must have the dtype of 'a'")
    yield _err("float16", lambda xp: op(xp.ones((2, 2), np.float16), a(xp, 2, 2)), TypeError, "got float16")
    yield _err("byteswapped", lambda xp: op(np.ones((2, 2), np.dtype(dtype).newbyteorder()), a(xp, 2, 2)), TypeError,
               "argument 'a'", backends=CPU_ONLY)
    yield _err("list", lambda xp: op([[1.0]], a(xp, 1, 1)), TypeError, "must be a numpy.ndarray; got list")
    yield _err("other backend's array", lambda xp: op(a(xp, 2, 3), np.ones((3, 2), dtype)), TypeError,
               "fastnn.matmul: argument 'b' must be a cupy.ndarray", backends=("cuda",))
    yield _err("1-D", lambda xp: op(a(xp, 3), a(xp, 3, 1)), ValueError, "fastnn.matmul: argument 'a' must be 2-D; got shape (3,)")
    yield _err("inner", lambda xp: op(a(xp, 2, 3), a(xp, 4, 2)), ValueError, "inner dimensions differ")
    yield _err("out shape", lambda xp: op(a(xp, 2, 3), a(xp, 3, 2), out=a(xp, 3, 2)), ValueError, "argument 'out' must have shape (2, 2)")
    yield _err("transposed view", lambda xp: op(a(xp, 3, 2).T, a(xp, 3, 2)), ValueError, "argument 'a' must be C-contiguous")
    yield _err("strided columns", lambda xp: op(a(xp, 4, 4)[:, ::2], a(xp, 2, 2)), ValueError, "argument 'a' must be C-contiguous")
    yield _err("read-only out", lambda xp: op(a(xp, 2, 2), a(xp, 2, 2), out=_readonly(xp, (2, 2), dtype)), ValueError,
               "argument 'out' is updated in place and must be writeable", backends=CPU_ONLY)
    yield _err("aliasing out", lambda xp: (lambda m: op(m, a(xp, 2, 2), out=m))(a(xp, 2, 2)), ValueError,
               "argument 'out' must not share memory with 'a'")
    yield _err("beta without out", lambda xp: op(a(xp, 2, 2), a(xp, 2, 2), beta=1.0), ValueError, "'out' is required when beta != 0")
    if dtype == np.float32:
        yield _err("misaligned", lambda xp: op(_misaligned(6).reshape(2, 3), a(xp, 3, 2)), ValueError,
                   "fastnn.matmul: argument 'a' must be aligned", backends=CPU_ONLY)
    # The fused epilogue's own checks.
    m25, m53 = (lambda xp: a(xp, 2, 5)), (lambda xp: a(xp, 5, 3))
    yield _err("bias_per_col shape", lambda xp: op(m25(xp), m53(xp), bias_per_col=a(xp, 4)), ValueError,
               "fastnn.matmul: ", "argument 'bias_per_col' must have shape (3,)")
    yield _err("bias_per_row shape", lambda xp: op(m25(xp), m53(xp), bias_per_row=a(xp, 3)), ValueError,
               "fastnn.matmul: ", "argument 'bias_per_row' must have shape (2,)")
    yield _err("bias 2-D", lambda xp: op(m25(xp), m53(xp), bias_per_col=a(xp, 1, 3)), ValueError, "argument 'bias_per_col' must be 1-D")
    yield _err("bias dtype", lambda xp: op(m25(xp), m53(xp), bias_per_col=xp.ones(3, _other(dtype))), TypeError,
               "argument 'bias_per_col' must have the dtype of 'a'")
    yield _err("bias strided", lambda xp: op(m25(xp), m53(xp), bias_per_row=a(xp, 4)[::2]), ValueError,
               "argument 'bias_per_row' must be C-contiguous")
    yield _err("bias aliasing out", lambda xp: (lambda o: op(a(xp, 3, 2), a(xp, 2, 3), out=o, bias_per_col=o[0]))(xp.zeros((3, 3), dtype)),
               ValueError, "must not share memory")


def _with_relu(y, sample):
    return ref.relu(y) if sample.op_kwargs.get("relu") else y


# (N, in, out): odd sizes, a mid-sized layer, K tails past the GEMM's K blocks (256 / 128), an
# empty batch.
LINEAR_SHAPES = [(1, 1, 1), (3, 7, 17), (17, 33, 65), (65, 17, 3), (9, 520, 17), (33, 300, 10), (7, 1, 65),
                 (5, 257, 6), (5, 1025, 6), (0, 5, 3)]


def _linear_samples(rng, dtype):
    for i, ((n, k, o), bias) in enumerate(itertools.product(LINEAR_SHAPES, [True, False])):
        x, w = randn(rng, (n, k), dtype), randn(rng, (o, k), dtype)
        b = randn(rng, o, dtype) if bias else None
        yield Sample(f"N={n} in={k} out={o} bias={bias}", (x, w, b), op_kwargs={"relu": i % 3 == 0},
                     grad_out=randn(rng, (n, o), dtype))


def _linear_errors(dtype):
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield _err("bool", lambda xp: ops.linear(xp.ones((2, 2), bool), a(xp, 2, 2)), TypeError, "fastnn.linear: argument 'x'")
    yield _err("mixed", lambda xp: ops.linear(a(xp, 2, 3), xp.ones((4, 3), _other(dtype))), TypeError, "fastnn.linear: argument 'weight'")
    yield _err("weight cols", lambda xp: ops.linear(a(xp, 2, 3), a(xp, 4, 5)), ValueError, "argument 'weight' must have 3 columns")
    yield _err("x 3-D", lambda xp: ops.linear(a(xp, 2, 3, 1), a(xp, 4, 3)), ValueError, "argument 'x' must be 2-D")
    yield _err("bias", lambda xp: ops.linear(a(xp, 2, 3), a(xp, 4, 3), a(xp, 5)), ValueError, "argument 'bias' must have shape (4,)")
    yield _err("x transposed", lambda xp: ops.linear(a(xp, 3, 2).T, a(xp, 4, 3)), ValueError, "argument 'x' must be C-contiguous")
    yield _err("grad_out", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 5)), ValueError,
               "fastnn.linear_backward: argument 'grad_out' must have shape (2, 4)")
    yield _err("grad_weight", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4), grad_weight=a(xp, 3, 4)),
               ValueError, "argument 'grad_weight' must have shape (4, 3)")
    yield _err("grad_bias dtype", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4),
                                                                grad_bias=xp.ones(4, _other(dtype))), TypeError, "'grad_bias'")
    yield _err("read-only grad_weight", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4),
                                                                      grad_weight=_readonly(xp, (4, 3), dtype)),
               ValueError, "'grad_weight'", "writeable", backends=CPU_ONLY)


def _linear_backward_inputs(s, fwd):
    x, w, b = s.args
    return (x, w, s.grad_out), {"bias": b is not None}


# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias): 1x1, strides,
# rectangular kernels and strides, dilation, groups, depthwise, a 1x1 output, padding wider
# than the input, K = C_in*kh*kw past the GEMM's K block, an empty batch.
CONV2D_CONFIGS = {
    "1x1": (2, 3, 5, 6, 7, 1, 1, 0, 1, 1, True),
    "1x1-stride2": (2, 3, 7, 7, 5, 1, 2, 0, 1, 1, False),
    "1x1-grouped": (3, 4, 3, 5, 6, 1, 1, 0, 1, 2, True),
    "3x3-pad1": (2, 3, 8, 9, 4, 3, 1, 1, 1, 1, True),
    "5x5-pad2-stride2": (2, 1, 11, 10, 6, 5, 2, 2, 1, 1, True),
    "3x1-stride1x2-pad1x0": (2, 3, 7, 8, 5, (3, 1), (1, 2), (1, 0), 1, 1, True),
    "2x5-pad0x2-dil2x1": (2, 2, 9, 7, 3, (2, 5), 1, (0, 2), (2, 1), 1, False),
    "3x3-dil2-pad2": (2, 3, 9, 9, 4, 3, 1, 2, 2, 1, True),
    "groups2-stride2": (2, 4, 9, 8, 6, 3, 2, 1, 1, 2, True),
    "depthwise": (2, 7, 8, 7, 7, 3, 1, 1, 1, 7, True),
    "depthwise-x2-stride2": (2, 3, 9, 9, 6, 3, 2, 1, 1, 3, False),
    "batch1": (1, 3, 6, 6, 2, 3, 1, 0, 1, 1, True),
    "out1x1": (3, 2, 5, 5, 3, 5, 1, 0, 1, 1, True),
    "out1x1-stride-pad": (2, 3, 3, 2, 4, 3, 2, (0, 1), 1, 1, True),
    "pad-larger-than-input": (1, 2, 2, 3, 3, 3, 1, 2, 1, 1, True),
    "deep-K297": (2, 33, 6, 6, 17, 3, 1, 1, 1, 1, True),
    "empty-batch": (0, 3, 5, 5, 4, 3, 1, 1, 1, 1, True),
}
# Layers large enough to run threaded on the CPU (images split across threads, threads inside one
# image): tests/test_conv2d.py runs them on two threads.
CONV2D_THREADED_CONFIGS = {
    "threaded-batch": (8, 5, 12, 12, 8, 3, 1, 1, 1, 1, True),
    "threaded-one-image": (1, 16, 16, 16, 16, 3, 1, 1, 1, 1, True),
    "threaded-uneven-batch": (3, 8, 12, 12, 8, 3, 1, 1, 1, 1, True),
}


def conv2d_case(config, dtype, rng):
    """(x, weight, bias, hyper-parameter kwargs) for one CONV2D_CONFIGS entry."""
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups, has_bias = config
    kh, kw = (k, k) if isinstance(k, int) else k
    x = randn(rng, (n, c_in, h, w), dtype)
    weight = randn(rng, (c_out, c_in // groups, kh, kw), dtype)
    bias = randn(rng, c_out, dtype) if has_bias else None
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_output_shape(x_shape, w_shape, stride, padding, dilation, groups):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    kh, kw = w_shape[2:]
    return (x_shape[0], w_shape[0], (x_shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (x_shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def _conv2d_samples(rng, dtype):
    for i, (name, config) in enumerate(CONV2D_CONFIGS.items()):
        x, w, b, hyper = conv2d_case(config, dtype, rng)
        dy = randn(rng, conv2d_output_shape(x.shape, w.shape, **hyper), dtype)
        yield Sample(name, (x, w, b), hyper, op_kwargs={"relu": i % 4 == 1}, grad_out=dy)


def _conv2d_errors(dtype):
    z = lambda xp, *shape, t=dtype: xp.zeros(shape, t)  # noqa: E731
    x, w = (lambda xp: z(xp, 2, 4, 6, 6)), (lambda xp: z(xp, 6, 4, 3, 3))
    op, bwd = ops.conv2d, ops.conv2d_backward
    yield _err("x 3-D", lambda xp: op(z(xp, 4, 6, 6), w(xp)), ValueError, "fastnn.conv2d", "'x'", "4-D", "(4, 6, 6)")
    yield _err("weight 3-D", lambda xp: op(x(xp), z(xp, 6, 4, 3)), ValueError, "'weight'", "4-D", "(6, 4, 3)")
    yield _err("groups vs C_in", lambda xp: op(z(xp, 2, 5, 6, 6), z(xp, 6, 2, 3, 3), groups=2), ValueError, "groups", "C_in=5")
    yield _err("groups vs C_out", lambda xp: op(x(xp), z(xp, 5, 2, 3, 3), groups=2), ValueError, "groups", "C_out=5")
    yield _err("weight channels", lambda xp: op(x(xp), z(xp, 6, 3, 3, 3)), ValueError, "'weight'", "C_in/groups", "4", "(6, 3, 3, 3)")
    yield _err("kernel too big", lambda xp: op(x(xp), z(xp, 6, 4, 7, 3)), ValueError, "kernel (7, 3)", "padded input (6, 6)")
    yield _err("dilated too big", lambda xp: op(x(xp), w(xp), dilation=3), ValueError, "spans (7, 7)", "padded input (6, 6)")
    yield _err("stride 0", lambda xp: op(x(xp), w(xp), stride=(1, 0)), ValueError, "'stride'", ">= 1", "(1, 0)")
    yield _err("dilation 0", lambda xp: op(x(xp), w(xp), dilation=0), ValueError, "'dilation'", ">= 1")
    yield _err("padding < 0", lambda xp: op(x(xp), w(xp), padding=(-1, 0)), ValueError, "'padding'", ">= 0", "(-1, 0)")
    yield _err("groups 0", lambda xp: op(x(xp), w(xp), groups=0), ValueError, "'groups'", ">= 1", "0")
    yield _err("float stride", lambda xp: op(x(xp), w(xp), stride=1.5), TypeError, "fastnn.conv2d", "'stride'")
    yield _err("padding triple", lambda xp: op(x(xp), w(xp), padding=(1, 2, 3)), TypeError, "'padding'")
    yield _err("bool groups", lambda xp: op(x(xp), w(xp), groups=True), TypeError, "'groups'")
    yield _err("mixed weight", lambda xp: op(x(xp), z(xp, 6, 4, 3, 3, t=_other(dtype))), TypeError, "'weight'", np.dtype(dtype).name)
    yield _err("int x", lambda xp: op(x(xp).astype(np.int32), w(xp)), TypeError, "'x'", "int32")
    yield _err("bias shape", lambda xp: op(x(xp), w(xp), z(xp, 5)), ValueError, "'bias'", "(6,)", "(5,)")
    yield _err("strided x", lambda xp: op(x(xp)[:, :, :, ::2], w(xp)), ValueError, "'x'", "C-contiguous")
    # Sizes past int64: the padded height, and one image's column buffer.
    yield _err("padding overflows", lambda xp: op(z(xp, 0, 1, 1, 1), z(xp, 1, 1, 1, 1), padding=2**62), ValueError, "overflows")
    yield _err("columns overflow", lambda xp: op(z(xp, 0, 1, 1, 1), z(xp, 1, 1, 1, 1), padding=2**31), ValueError, "overflows")
    yield _err("grad_out shape", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 5)), ValueError,
               "fastnn.conv2d_backward", "'grad_out'", "(2, 6, 4, 4)", "(2, 6, 4, 5)")
    yield _err("grad_weight shape", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_weight=z(xp, 6, 4, 3, 2)), ValueError,
               "'grad_weight'", "(6, 4, 3, 3)")
    yield _err("grad_bias dtype", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_bias=z(xp, 6, t=_other(dtype))),
               TypeError, "'grad_bias'")
    yield _err("read-only grad_weight", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_weight=_readonly(xp, (6, 4, 3, 3), dtype)),
               ValueError, "'grad_weight'", "writeable", backends=CPU_ONLY)
    yield _err("grad_weight aliases weight", lambda xp: (lambda wt: bwd(x(xp), wt, z(xp, 2, 6, 4, 4), grad_weight=wt))(w(xp)),
               ValueError, "'grad_weight'", "share memory")


def _conv2d_backward_inputs(s, fwd):
    x, w, b = s.args
    return (x, w, s.grad_out), {"bias": b is not None, **s.kwargs}


# ---- pooling ----------------------------------------------------------------------------------

# (input shape, kernel_size, stride, padding): odd sizes, overlapping windows (k3 s2), padding,
# rectangular windows and strides, a window as large as the padded input, a single pixel, and
# the 2x2 stride-2 fast paths with odd H / W.
POOL2D_CONFIGS = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 1, 1, 1), 1, None, 0),
    ((3, 2, 7, 7), 3, 2, 1),
    ((2, 3, 17, 17), 3, 2, 0),
    ((1, 4, 17, 7), (3, 2), (2, 1), (1, 1)),
    ((2, 1, 3, 5), (2, 3), (1, 2), (1, 0)),
    ((1, 2, 3, 3), 5, 1, 2),
    ((3, 7, 33, 17), 3, 1, 1),
    ((2, 3, 7, 9), 2, None, 0),
    ((1, 2, 5, 70), 2, 2, 0),
]


def _pool_samples(rounded: bool):
    def samples(rng, dtype):
        for i, (shape, kernel_size, stride, padding) in enumerate(POOL2D_CONFIGS):
            x = randn(rng, shape, dtype, 2.0)
            if rounded and i % 2:
                x = np.round(x)  # many ties: the first maximum in scan order wins
            y_shape = ref.avg_pool2d(np.zeros(shape), kernel_size, stride, padding).shape
            window = (kernel_size, stride, padding)
            yield Sample(f"{shape} k={kernel_size} s={stride} p={padding}", (x, *window),
                         op_kwargs={"index_dtype": ("int64", "int32")[i % 2]} if rounded else {},
                         grad_out=randn(rng, y_shape, dtype),
                         # max_pool2d_backward: with the window (a gather on the GPU) and without
                         bwd_op_kwargs=dict(zip(("kernel_size", "stride", "padding"), window)) if rounded and i % 3 else {})
    return samples


POOL_GRAD = Tol(FLOAT32_RTOL, "each input gradient sums at most ceil(k/s)^2 float32 terms (a few ulps)")


def _pool_errors(dtype):
    X = lambda xp: xp.zeros((1, 2, 5, 5), dtype)  # noqa: E731
    g = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield _err("kernel 0", lambda xp: ops.max_pool2d(X(xp), 0), ValueError, "max_pool2d", "kernel_size", "(0, 0)")
    yield _err("stride 0", lambda xp: ops.max_pool2d(X(xp), 2, stride=0), ValueError, "max_pool2d", "stride", "(0, 0)")
    yield _err("padding < 0", lambda xp: ops.max_pool2d(X(xp), 2, padding=-1), ValueError, "padding", ">= 0")
    yield _err("padding > half", lambda xp: ops.max_pool2d(X(xp), 3, padding=2), ValueError, "max_pool2d", "padding", "half", "(2, 2)")
    yield _err("3-D", lambda xp: ops.max_pool2d(X(xp)[0], 2), ValueError, "max_pool2d", "4-D", "(2, 5, 5)")
    yield _err("int", lambda xp: ops.max_pool2d(X(xp).astype(np.int32), 2), TypeError, "max_pool2d", "float32", "int32")
    yield _err("float kernel", lambda xp: ops.max_pool2d(X(xp), 2.5), TypeError, "max_pool2d", "kernel_size", "2.5")
    yield _err("kernel triple", lambda xp: ops.max_pool2d(X(xp), (2, 2, 2)), TypeError, "kernel_size")
    yield _err("index_dtype", lambda xp: ops.max_pool2d(X(xp), 2, index_dtype=np.int16), TypeError, "index_dtype", "int16")
    yield _err("strided", lambda xp: ops.max_pool2d(X(xp)[:, :, ::2], 2), ValueError, "C-contiguous")
    bwd = ops.max_pool2d_backward
    yield _err("index too big", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.full((1, 2, 2, 2), 25, np.int64), (1, 2, 5, 5)),
               ValueError, "max_pool2d_backward", "indices", "25")
    yield _err("index negative", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.full((1, 2, 2, 2), -1, np.int64), (1, 2, 5, 5)),
               ValueError, "indices", "-1")
    yield _err("indices shape", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.zeros((1, 2, 2, 1), np.int64), (1, 2, 5, 5)),
               ValueError, "indices", "(1, 2, 2, 1)")
    yield _err("float indices", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.zeros((1, 2, 2, 2), np.float32), (1, 2, 5, 5)),
               TypeError, "indices", "int64")
    yield _err("grad_out channels", lambda xp: bwd(g(xp, 1, 3, 2, 2), xp.zeros((1, 3, 2, 2), np.int64), (1, 2, 5, 5)),
               ValueError, "grad_out", "(1, 3, 2, 2)")
    yield _err("grad_out vs window", lambda xp: bwd(g(xp, 1, 2, 3, 3), xp.zeros((1, 2, 3, 3), np.int64), (1, 2, 5, 5), 2),
               ValueError, "max_pool2d_backward: argument 'grad_out' must have shape")


def _avg_pool_errors(dtype):
    X = lambda xp: xp.zeros((1, 2, 5, 5), dtype)  # noqa: E731
    g = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield _err("negative stride", lambda xp: ops.avg_pool2d(X(xp), 2, stride=(1, -1)), ValueError, "avg_pool2d", "stride", "(1, -1)")
    yield _err("window past input", lambda xp: ops.avg_pool2d(X(xp), 7), ValueError, "avg_pool2d", "(5, 5)", "(7, 7)")
    yield _err("int", lambda xp: ops.avg_pool2d(X(xp).astype(np.int64), 2), TypeError, "avg_pool2d", "int64")
    yield _err("grad_out shape", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 3, 3), (1, 2, 5, 5), 2), ValueError,
               "avg_pool2d_backward", "grad_out", "(1, 2, 2, 2)")
    yield _err("input_shape 3-D", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 2, 2), (1, 2, 5), 2), ValueError, "input_shape", "4-D")
    yield _err("strided grad_out", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 2, 4)[..., ::2], (1, 2, 5, 5), 2),
               ValueError, "grad_out", "C-contiguous")


def _global_pool_samples(rng, dtype):
    for shape in [(1, 1, 1, 1), (2, 3, 7, 7), (3, 17, 5, 3), (2, 5, 33, 65), (128, 64, 8, 8)]:
        yield Sample(f"{shape}", (randn(rng, shape, dtype),), grad_out=randn(rng, shape[:2], dtype))


def _global_pool_errors(dtype):
    yield _err("3-D", lambda xp: ops.global_avg_pool2d(xp.zeros((2, 5, 5), dtype)), ValueError, "global_avg_pool2d", "4-D")
    yield _err("int", lambda xp: ops.global_avg_pool2d(xp.zeros((1, 2, 5, 5), np.int32)), TypeError, "global_avg_pool2d", "int32")
    yield _err("input_shape not ints", lambda xp: ops.global_avg_pool2d_backward(xp.ones((1, 2), dtype), "abc"), TypeError, "input_shape")
    yield _err("grad_out shape", lambda xp: ops.global_avg_pool2d_backward(xp.ones((2, 2), dtype), (1, 2, 5, 5)), ValueError,
               "grad_out", "(1, 2)")


# ---- batch norm -------------------------------------------------------------------------------

BATCH_NORM_SHAPES = [(2, 1), (3, 7), (17, 33), (65, 3), (1, 3, 7, 7), (2, 3, 5, 5), (7, 17, 1, 1), (3, 4, 17, 3), (4, 5, 9)]
BATCH_NORM = Tol(FLOAT32_RTOL, "per-channel sums accumulate in double, so each output is a few float32 roundings away")


def batch_norm_params(rng, channels, dtype):
    """weight, bias, running_mean, running_var: random but plausible (var > 0)."""
    return (randn(rng, channels, dtype, 0.5, 1.0), randn(rng, channels, dtype), randn(rng, channels, dtype),
            rng.uniform(0.5, 2.0, channels).astype(dtype))


def batch_norm_dx_scale(grad_out, weight, inv_std) -> float:
    """||weight * inv_std * dy||: the size of the terms the training dx = weight * inv_std *
    (dy - mean(dy) - xhat * mean(dy * xhat)) subtracts, which can cancel almost completely (with
    two values per channel |dx| ~ 1e-4 |dy|): dx's error is measured against this, not ||dx||."""
    g = np.asarray(grad_out, np.float64)
    shape = (1, -1) + (1,) * (g.ndim - 2)
    scale = np.ones(g.shape[1]) if weight is None else np.asarray(weight, np.float64)
    return float(np.linalg.norm((scale * np.asarray(inv_std, np.float64)).reshape(shape) * g))


def _bn_train_samples(rng, dtype):
    for i, shape in enumerate(BATCH_NORM_SHAPES):
        x = randn(rng, shape, dtype, 3.0, 2.0)
        w, b, rm, rv = batch_norm_params(rng, shape[1], dtype)
        if i % 4 == 3:
            w = b = None  # affine=False
        if i % 3 == 2:
            rm = rv = None  # track_running_stats=False
        yield Sample(f"{shape} affine={w is not None} running={rm is not None}", (x, w, b, rm, rv),
                     dict(momentum=0.3, eps=1e-3), grad_out=randn(rng, shape, dtype))


def _bn_train_call(entry, s):
    y, mean, inv_std = ops.batch_norm_train(*s.args, **s.kwargs)
    return dict(y=y, mean=mean, inv_std=inv_std, running_mean=s.args[3], running_var=s.args[4])


def _bn_train_ref(entry, s):
    return _as_dict(ref.batch_norm_train(*s.args, **s.kwargs), ("y", "mean", "inv_std", "running_mean", "running_var"))


def _bn_eval_samples(rng, dtype):
    # Eval mode needs no batch statistics: one value per channel, or none, is fine.
    for i, shape in enumerate([(1, 3), (3, 7), (1, 3, 1, 1), (2, 3, 5, 5), (0, 3, 2, 2), (17, 5, 3)]):
        x = randn(rng, shape, dtype)
        w, b, rm, rv = batch_norm_params(rng, shape[1], dtype)
        if i % 2:
            w = b = None
        yield Sample(f"{shape} affine={w is not None}", (x, w, b, rm, rv), dict(eps=1e-4), grad_out=randn(rng, shape, dtype))


def _bn_train_errors(dtype):
    X4 = lambda xp: xp.zeros((2, 3, 4, 4), dtype)  # noqa: E731
    C = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
    train, ev, bwd = ops.batch_norm_train, ops.batch_norm_eval, ops.batch_norm_backward
    yield _err("1-D", lambda xp: train(xp.zeros(4, dtype), C(xp), C(xp), None, None), ValueError, "batch_norm_train", "(N, C)", "(4,)")
    yield _err("one value per channel", lambda xp: train(xp.zeros((1, 3), dtype), C(xp), C(xp), None, None), ValueError,
               "batch_norm_train", "more than 1 value per channel", "(1, 3)")
    yield _err("int x", lambda xp: train(X4(xp).astype(np.int64), C(xp), C(xp), None, None), TypeError, "batch_norm_train", "'x'", "int64")
    yield _err("weight dtype", lambda xp: train(X4(xp), xp.ones(3, _other(dtype)), C(xp), None, None), TypeError,
               "batch_norm_train", "weight", np.dtype(_other(dtype)).name)
    yield _err("weight shape", lambda xp: train(X4(xp), C(xp, 4), C(xp), None, None), ValueError, "batch_norm_train", "weight", "(3,)", "(4,)")
    yield _err("running stats apart", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), None), ValueError, "running_mean", "running_var", "together")
    yield _err("momentum < 0", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), momentum=-0.1), ValueError, "momentum", "-0.1")
    yield _err("eps nan", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), eps=float("nan")), ValueError, "eps", "nan")
    yield _err("momentum str", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), momentum="x"), TypeError, "batch_norm_train", "momentum")
    yield _err("strided running_var", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp, 6)[::2]), ValueError, "running_var", "C-contiguous")
    yield _err("read-only running_mean", lambda xp: train(X4(xp), C(xp), C(xp), _readonly(xp, 3, dtype), C(xp)), ValueError,
               "running_mean", "writeable", backends=CPU_ONLY)
    yield _err("backward grad_out", lambda xp: bwd(X4(xp)[:1], X4(xp), C(xp), C(xp), C(xp)), ValueError,
               "batch_norm_backward", "grad_out", "(1, 3, 4, 4)")
    yield _err("backward without mean", lambda xp: bwd(X4(xp), X4(xp), C(xp), None, C(xp)), ValueError, "batch_norm_backward", "mean", "required")
    yield _err("backward grad_weight", lambda xp: bwd(X4(xp), X4(xp), C(xp), C(xp), C(xp), grad_weight=C(xp, 2)), ValueError,
               "grad_weight", "(2,)")


def _bn_eval_errors(dtype):
    X4 = lambda xp: xp.zeros((2, 3, 4, 4), dtype)  # noqa: E731
    C = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
    ev, bwd = ops.batch_norm_eval, ops.batch_norm_backward
    yield _err("eval without running stats", lambda xp: ev(X4(xp), C(xp), C(xp), None, None), ValueError, "batch_norm_eval", "required")
    yield _err("eval running_var 2-D", lambda xp: ev(X4(xp), C(xp), C(xp), C(xp), xp.ones((3, 1), dtype)), ValueError, "running_var", "(3, 1)")
    yield _err("eval int x", lambda xp: ev(X4(xp).astype(np.int32), C(xp), C(xp), C(xp), C(xp)), TypeError, "batch_norm_eval", "'x'", "int32")
    yield _err("eval eps < 0", lambda xp: ev(X4(xp), C(xp), C(xp), C(xp), C(xp), eps=-1.0), ValueError, "batch_norm_eval", "eps")
    yield _err("eval backward inv_std shape", lambda xp: bwd(X4(xp), X4(xp), C(xp), C(xp), C(xp, 4), training=False), ValueError,
               "batch_norm_backward", "inv_std", "(4,)")


def _bn_eval_backward_inputs(s, fwd):
    x, w, _, rm, rv = s.args
    inv_std = (rv + s.kwargs["eps"]) ** -0.5  # the running statistics are constants here
    return (s.grad_out, x, w, rm, inv_std), {"training": False}


def _bn_train_grad_scale(s, args):
    grad_out, _, weight, _, inv_std = args
    return {"dx": batch_norm_dx_scale(grad_out, weight, inv_std)}


# ---- dropout ----------------------------------------------------------------------------------


def _dropout_samples(rng, dtype):
    shapes = [(n,) for n in ODD_SIZES] + [(3, 7, 17), (2, 3, 5, 5), (0, 4)]
    for shape, p in itertools.product(shapes, [0.0, 0.25, 0.5, 0.9, 1.0]):
        # A seed with its high bits set: the 64-bit counter arithmetic must match.
        yield Sample(f"{shape} p={p}", (randn(rng, shape, dtype), p, 2**64 - 12345), grad_out=randn(rng, shape, dtype))


def _dropout_errors(dtype):
    X = lambda xp: xp.ones((2, 3), dtype)  # noqa: E731
    M = lambda xp: xp.ones((2, 3), np.uint8)  # noqa: E731
    yield _err("p > 1", lambda xp: ops.dropout(X(xp), 1.01, 0), ValueError, "fastnn.dropout", "'p'", "1.01")
    yield _err("p None", lambda xp: ops.dropout(X(xp), None, 0), TypeError, "fastnn.dropout", "'p'")
    yield _err("seed < 0", lambda xp: ops.dropout(X(xp), 0.5, -1), ValueError, "fastnn.dropout", "seed", "-1")
    yield _err("seed 2**64", lambda xp: ops.dropout(X(xp), 0.5, 2**64), ValueError, "seed", str(2**64))
    yield _err("float seed", lambda xp: ops.dropout(X(xp), 0.5, 1.5), TypeError, "fastnn.dropout", "seed", "float")
    yield _err("int x", lambda xp: ops.dropout(X(xp).astype(np.int32), 0.5, 0), TypeError, "fastnn.dropout", "'x'", "int32")
    yield _err("list x", lambda xp: ops.dropout([1.0, 2.0], 0.5, 0), TypeError, "fastnn.dropout", "numpy.ndarray", "list")
    yield _err("bool mask", lambda xp: ops.dropout_backward(X(xp), M(xp).astype(bool), 0.5), TypeError,
               "dropout_backward", "mask", "uint8", "bool")
    yield _err("float mask", lambda xp: ops.dropout_backward(X(xp), X(xp), 0.5), TypeError, "dropout_backward: argument 'mask' must be uint8")
    yield _err("mask shape", lambda xp: ops.dropout_backward(X(xp), M(xp)[:1], 0.5), ValueError, "dropout_backward", "mask", "(1, 3)")
    yield _err("p < 0", lambda xp: ops.dropout_backward(X(xp), M(xp), -0.5), ValueError, "dropout_backward", "'p'", "-0.5")
    yield _err("transposed", lambda xp: ops.dropout_backward(X(xp).T, M(xp).T, 0.5), ValueError, "grad_out", "C-contiguous")


# ---- optimisers -------------------------------------------------------------------------------

OPTIM = Tol(FLOAT32_RTOL, "elementwise update of the parameter and its state: a few float32 roundings")
SGD_SETTINGS = [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
                dict(momentum=0.5, dampening=0.3, weight_decay=1e-2)]


def _sgd_state(rng, n, dtype, i, settings):
    p, g = randn(rng, n, dtype), randn(rng, n, dtype)
    buf = randn(rng, n, dtype) if settings["momentum"] else None
    return p, g, buf, dict(lr=0.1, first_step=buf is not None and i % 2 == 0, **settings)


def _sgd_samples(rng, dtype):
    cases = list(itertools.product([1, 7, 33], SGD_SETTINGS)) + [(100_001, SGD_SETTINGS[3])]
    for i, (n, settings) in enumerate(cases):
        p, g, buf, kw = _sgd_state(rng, n, dtype, i, settings)
        yield Sample(f"n={n} {kw}", (p, g, buf), kw)


def _adam_state(rng, n, dtype):
    # Moments from earlier steps: exp_avg of either sign, exp_avg_sq positive.
    return randn(rng, n, dtype), randn(rng, n, dtype), randn(rng, n, dtype, 0.1), rng.uniform(0.01, 1.0, n).astype(dtype)


def _adam_samples(rng, dtype):
    for i, n in enumerate([1, 7, 33, 1001, 100_001]):
        kw = dict(step=(1, 3, 10)[i % 3], lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=(0.0, 0.1)[i % 2])
        yield Sample(f"n={n} {kw}", _adam_state(rng, n, dtype), kw)


def _sgd_call(entry, s):
    ops.sgd_step(*s.args, **s.kwargs)
    return dict(param=s.args[0], momentum_buffer=s.args[2])


def _sgd_ref(entry, s):
    return _as_dict(ref.sgd_step(*s.args, **s.kwargs), ("param", "momentum_buffer"))


def _adam_call(entry, s):
    entry.op(*s.args, **s.kwargs)
    return dict(zip(("param", "exp_avg", "exp_avg_sq"), (s.args[0], s.args[2], s.args[3])))


def _adam_ref(entry, s):
    return _as_dict(entry.ref(*s.args, **s.kwargs), ("param", "exp_avg", "exp_avg_sq"))


def _optim_errors(name):
    def errors(dtype):
        a = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
        if name == "sgd_step":
            yield _err("int param", lambda xp: ops.sgd_step(xp.zeros(3, np.int64), a(xp), None, lr=0.1), TypeError,
                       "fastnn.sgd_step: argument 'param'")
            yield _err("grad shape", lambda xp: ops.sgd_step(a(xp), a(xp, 4), None, lr=0.1), ValueError, "argument 'grad' must have shape (3,)")
            yield _err("grad dtype", lambda xp: ops.sgd_step(a(xp), xp.ones(3, _other(dtype)), None, lr=0.1), TypeError, "argument 'grad'")
            yield _err("missing buffer", lambda xp: ops.sgd_step(a(xp), a(xp), None, lr=0.1, momentum=0.9), ValueError,
                       "'momentum_buffer' is required")
            yield _err("strided grad", lambda xp: ops.sgd_step(a(xp), a(xp, 6)[::2], None, lr=0.1), ValueError, "'grad'", "C-contiguous")
            yield _err("read-only param", lambda xp: ops.sgd_step(_readonly(xp, 3, dtype), a(xp), None, lr=0.1), ValueError,
                       "must be writeable", backends=CPU_ONLY)
        else:
            op = getattr(ops, name)
            yield _err("step 0", lambda xp: op(a(xp), a(xp), a(xp), a(xp), step=0, lr=0.1), ValueError, "argument 'step' must be >= 1")
            yield _err("aliased state", lambda xp: (lambda s: op(a(xp), a(xp), s, s, step=1, lr=0.1))(a(xp)), ValueError,
                       "must not share memory")
            yield _err("exp_avg shape", lambda xp: op(a(xp), a(xp), a(xp, 4), a(xp), step=1, lr=0.1), ValueError,
                       f"fastnn.{name}", "'exp_avg'", "(3,)")
            yield _err("int grad", lambda xp: op(a(xp), xp.ones(3, np.int32), a(xp), a(xp), step=1, lr=0.1), TypeError,
                       f"fastnn.{name}", "'grad'")
    return errors


# The multi-tensor ops: one launch for a whole list on the GPU. Samples of several parameters of
# odd sizes, and one of 60 (past the 48 tensor slots of one GPU launch).


def _param_sizes(rng):
    return [[5], [1, 3, 7, 17, 1000], [int(s) for s in rng.integers(1, 300, size=60)]]


def _sgd_multi_samples(rng, dtype):
    for i, (sizes, settings) in enumerate(itertools.product(_param_sizes(rng), SGD_SETTINGS)):
        states = [_sgd_state(rng, n, dtype, i, settings) for n in sizes]
        kw = states[0][3]
        buffers = None if kw["momentum"] == 0.0 else [s[2] for s in states]
        yield Sample(f"{len(sizes)} params {kw}", ([s[0] for s in states], [s[1] for s in states], buffers), kw)


def _adam_multi_samples(rng, dtype):
    for i, sizes in enumerate(_param_sizes(rng)):
        states = [_adam_state(rng, n, dtype) for n in sizes]
        kw = dict(step=(1, 4, 9)[i], lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=(0.1, 0.0, 0.05)[i])
        yield Sample(f"{len(sizes)} params {kw}", tuple([s[j] for s in states] for j in range(4)), kw)


def _sgd_multi_call(entry, s):
    ops.sgd_step_multi(*s.args, **s.kwargs)
    params, _, buffers = s.args
    out = {f"param[{i}]": p for i, p in enumerate(params)}
    return {**out, **{f"momentum_buffer[{i}]": b for i, b in enumerate(buffers or [])}}


def _sgd_multi_ref(entry, s):
    params, grads, buffers = s.args
    out = {}
    for i, (p, g) in enumerate(zip(params, grads)):
        out[f"param[{i}]"], buf = ref.sgd_step(p, g, None if buffers is None else buffers[i], **s.kwargs)
        if buffers is not None:
            out[f"momentum_buffer[{i}]"] = buf
    return out


def _adam_multi_call(entry, s):
    entry.op(*s.args, **s.kwargs)
    params, _, ms, vs = s.args
    return {f"{name}[{i}]": a for name, arrays in zip(("param", "exp_avg", "exp_avg_sq"), (params, ms, vs))
            for i, a in enumerate(arrays)}


def _adam_multi_ref(entry, s):
    out = {}
    for i, state in enumerate(zip(*s.args)):
        for name, a in zip(("param", "exp_avg", "exp_avg_sq"), entry.ref(*state, **s.kwargs)):
            out[f"{name}[{i}]"] = a
    return out


def _multi_errors(name):
    single = name.removesuffix("_multi")

    def errors(dtype):
        a = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
        if name == "sgd_step_multi":
            op = lambda xp, params, grads, bufs=None, **kw: ops.sgd_step_multi(params, grads, bufs, **{"lr": 0.1, **kw})  # noqa: E731
        else:
            op = lambda xp, params, grads, bufs=None, **kw: getattr(ops, name)(  # noqa: E731
                params, grads, bufs or [a(xp, p.size) for p in params], [a(xp, p.size) * 2 for p in params], **{"step": 1, "lr": 0.1, **kw})
        # The kernels name the single-tensor op and the list item.
        yield _err("list lengths", lambda xp: op(xp, [a(xp)], [a(xp), a(xp)]), ValueError,
                   f"fastnn.{single}: argument 'grads' must have one array per parameter (1); got 2")
        yield _err("grad shape", lambda xp: op(xp, [a(xp), a(xp)], [a(xp), a(xp, 2)]), ValueError,
                   f"fastnn.{single}: argument 'grad' must have shape (3,)")
        yield _err("int param", lambda xp: op(xp, [xp.ones(3, np.int32)], [a(xp)]), TypeError, f"fastnn.{single}: argument 'param'", "int32")
        if name == "sgd_step_multi":
            yield _err("missing buffers", lambda xp: op(xp, [a(xp)], [a(xp)], momentum=0.9), ValueError, "'momentum_buffer' is required")
        else:
            yield _err("step 0", lambda xp: op(xp, [a(xp)], [a(xp)], step=0), ValueError, "argument 'step' must be >= 1")

    return errors


# ---- the registry ------------------------------------------------------------------------------

OP_DB: list[OpInfo] = [
    *[_activation(name) for name in ACTIVATIONS],
    *[_softmax(name) for name in ("softmax", "log_softmax")],
    OpInfo("softmax_cross_entropy", ops.softmax_cross_entropy, ref.softmax_cross_entropy, _xent_samples, _xent_errors,
           tol=LOSS, grad_tol=ROW_REDUCTION, outputs=("loss", "grad"), grad_outputs=("grad",)),
    OpInfo("bce_with_logits", ops.bce_with_logits, ref.bce_with_logits, _bce_samples, _bce_errors,
           tol=LOSS, grad_tol=ELEMENTWISE, outputs=("loss", "grad"), grad_outputs=("grad",)),
    OpInfo("matmul", ops.matmul, ref.matmul, _matmul_samples, _matmul_errors, tol=DOT_PRODUCTS,
           call_ref=lambda e, s: {"y": ref.matmul(*s.args, **s.kwargs)}),
    OpInfo("linear", ops.linear, ref.linear, _linear_samples, _linear_errors, tol=DOT_PRODUCTS,
           grad_tol=Tol(FLOAT32_RTOL_REDUCTION, "dx sums over out, dweight and dbias over the batch: sqrt(K) growth"),
           backward=ops.linear_backward, backward_ref=ref.linear_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_linear_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"},
           call_ref=lambda e, s: {"y": _with_relu(ref.linear(*s.args), s)}),
    OpInfo("conv2d", ops.conv2d, ref.conv2d, _conv2d_samples, _conv2d_errors,
           tol=Tol(FLOAT32_RTOL_REDUCTION, "each output sums K = C_in/groups*kh*kw (<= 300) products: sqrt(K) growth"),
           grad_tol=Tol(FLOAT32_RTOL_REDUCTION, "dx sums over C_out/groups*kh*kw, dweight and dbias over N*H_out*W_out "
                        "(<= 2048) terms: sqrt(K) growth"),
           backward=ops.conv2d_backward, backward_ref=ref.conv2d_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_conv2d_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"},
           call_ref=lambda e, s: {"y": _with_relu(ref.conv2d(*s.args, **s.kwargs), s)}),
    OpInfo("max_pool2d", ops.max_pool2d, ref.max_pool2d, _pool_samples(rounded=True), _pool_errors,
           tol=EXACT, grad_tol=POOL_GRAD, outputs=("y", "indices"),
           backward=ops.max_pool2d_backward, backward_ref=ref.max_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, fwd["indices"], s.args[0].shape), {})),
    OpInfo("avg_pool2d", ops.avg_pool2d, ref.avg_pool2d, _pool_samples(rounded=False), _avg_pool_errors,
           tol=Tol(FLOAT32_RTOL, "each output sums kh*kw (<= 25) float32 terms: a few ulps"), grad_tol=POOL_GRAD,
           backward=ops.avg_pool2d_backward, backward_ref=ref.avg_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0].shape, *s.args[1:]), {})),
    OpInfo("global_avg_pool2d", ops.global_avg_pool2d, ref.global_avg_pool2d, _global_pool_samples, _global_pool_errors,
           tol=Tol(FLOAT32_RTOL, "the plane's sum runs in double: one rounding"), grad_tol=ELEMENTWISE,
           backward=ops.global_avg_pool2d_backward, backward_ref=ref.global_avg_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0].shape), {})),
    OpInfo("batch_norm_train", ops.batch_norm_train, ref.batch_norm_train, _bn_train_samples, _bn_train_errors,
           tol=BATCH_NORM, grad_tol=BATCH_NORM, call_op=_bn_train_call, call_ref=_bn_train_ref,
           backward=ops.batch_norm_backward, backward_ref=ref.batch_norm_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0], s.args[1], fwd["mean"], fwd["inv_std"]), {}),
           accumulates={"grad_weight": "dweight", "grad_bias": "dbias"}, grad_scale=_bn_train_grad_scale),
    OpInfo("batch_norm_eval", ops.batch_norm_eval, ref.batch_norm_eval, _bn_eval_samples, _bn_eval_errors,
           tol=BATCH_NORM, grad_tol=BATCH_NORM,
           backward=ops.batch_norm_backward, backward_ref=ref.batch_norm_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_bn_eval_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"}),
    OpInfo("dropout", ops.dropout, ref.dropout, _dropout_samples, _dropout_errors,
           tol=Tol(FLOAT32_RTOL, "kept elements are x * (1 / (1 - p)): one rounding; the mask is compared exactly"),
           grad_tol=ELEMENTWISE, outputs=("y", "mask"),
           backward=ops.dropout_backward, backward_ref=ref.dropout_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, fwd["mask"], s.args[1]), {})),
    OpInfo("sgd_step", ops.sgd_step, ref.sgd_step, _sgd_samples, _optim_errors("sgd_step"), tol=OPTIM,
           call_op=_sgd_call, call_ref=_sgd_ref),
    OpInfo("adam_step", ops.adam_step, ref.adam_step, _adam_samples, _optim_errors("adam_step"), tol=OPTIM,
           call_op=_adam_call, call_ref=_adam_ref),
    OpInfo("adamw_step", ops.adamw_step, ref.adamw_step, _adam_samples, _optim_errors("adamw_step"), tol=OPTIM,
           call_op=_adam_call, call_ref=_adam_ref),
    OpInfo("sgd_step_multi", ops.sgd_step_multi, ref.sgd_step, _sgd_multi_samples, _multi_errors("sgd_step_multi"),
           tol=OPTIM, call_op=_sgd_multi_call, call_ref=_sgd_multi_ref),
    OpInfo("adam_step_multi", ops.adam_step_multi, ref.adam_step, _adam_multi_samples, _multi_errors("adam_step_multi"),
           tol=OPTIM, call_op=_adam_multi_call, call_ref=_adam_multi_ref),
    OpInfo("adamw_step_multi", ops.adamw_step_multi, ref.adamw_step, _adam_multi_samples, _multi_errors("adamw_step_multi"),
           tol=OPTIM, call_op=_adam_multi_call, call_ref=_adam_multi_ref),
]

OPS = {entry.name: entry for entry in OP_DB}


# ---- moving samples between backends -----------------------------------------------------------


def tree_map(fn, obj):
    """``fn`` applied to every array in nested tuples / lists / dicts (anything else kept)."""
    if isinstance(obj, tuple):
        return tuple(tree_map(fn, v) for v in obj)
    if isinstance(obj, list):
        return [tree_map(fn, v) for v in obj]
    if isinstance(obj, dict):
        return {k: tree_map(fn, v) for k, v in obj.items()}
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__cuda_array_interface__"):
        return fn(obj)
    return obj


def map_sample(fn, s: Sample) -> Sample:
    """A copy of ``s`` with ``fn`` applied to each of its arrays (a copy, a host-to-device move)."""
    return Sample(s.desc, tree_map(fn, s.args), tree_map(fn, s.kwargs), tree_map(fn, s.op_kwargs),
                  tree_map(fn, s.grad_out), tree_map(fn, s.bwd_op_kwargs))


def copy_sample(s: Sample) -> Sample:
    return map_sample(lambda a: a.copy(), s)


def to_host(obj):
    """NumPy copies of every CuPy array in ``obj`` (NumPy arrays and scalars unchanged)."""
    return tree_map(lambda a: a if isinstance(a, np.ndarray) else a.get(), obj)


def iter_samples(entry: OpInfo, dtype, seed: int = 1234) -> Iterator[Sample]:
    """The entry's samples for ``dtype``, from a fixed seed (the same inputs on every backend)."""
    return iter(entry.sample_inputs(np.random.default_rng(seed), dtype))
