"""Registry entries (tests/opinfo.py) of the elementwise and row-wise ops: the activations, the
softmax family, the two losses and dropout."""

from __future__ import annotations

import itertools

import numpy as np

from conftest import FLOAT32_RTOL, FLOAT32_RTOL_REDUCTION, ODD_SIZES
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import (
    CPU_ONLY,
    ELEMENTWISE,
    OpInfo,
    Sample,
    Tol,
    err,
    misaligned,
    other_dtype,
    randn,
)


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
        yield err("int", lambda xp: op(xp.arange(3)), TypeError, f"fastnn.{name}: argument 'x' must be float32 or float64")
        yield err("bool", lambda xp: op(xp.ones(3, bool)), TypeError, f"fastnn.{name}: argument 'x'", "bool")
        yield err("strided", lambda xp: op(xp.ones(10, dtype)[::2]), ValueError, f"fastnn.{name}: argument 'x' must be C-contiguous")
        yield err("negative stride", lambda xp: op(xp.ones(10, dtype)[::-1]), ValueError, "C-contiguous")
        yield err("backward shape", lambda xp: bwd(xp.ones((2, 3), dtype), xp.ones((3, 2), dtype)), ValueError,
                  f"fastnn.{name}_backward: argument 'grad_out' must have shape (2, 3)")
        yield err("backward mixed dtypes", lambda xp: bwd(xp.ones(3, dtype), xp.ones(3, other_dtype(dtype))), TypeError,
                  f"fastnn.{name}_backward: argument 'grad_out'")
        if name == "leaky_relu":
            yield err("string slope", lambda xp: op(xp.ones(3, dtype), "0.1"), TypeError,
                      "fastnn.leaky_relu: argument 'negative_slope' must be a real number")
        if name == "relu" and dtype == np.float32:
            yield err("misaligned", lambda xp: op(misaligned(8)), ValueError, "must be aligned", backends=CPU_ONLY)

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
        yield err("1-D", lambda xp: op(xp.ones(4, dtype)), ValueError, f"fastnn.{name}: argument 'x' must be 2-D")
        yield err("zero classes", lambda xp: op(xp.ones((2, 0), dtype)), ValueError, "at least one class")
        yield err("int", lambda xp: op(xp.ones((2, 3), np.int32)), TypeError, f"fastnn.{name}: argument 'x'", "int32")
        yield err("transposed", lambda xp: op(xp.ones((3, 2), dtype).T), ValueError, "argument 'x' must be C-contiguous")
        yield err("backward shape", lambda xp: bwd(xp.ones((2, 3), dtype), xp.ones((2, 4), dtype)), ValueError,
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
    yield err("float labels", lambda xp: op(x(xp), xp.zeros(2, dtype)), TypeError, "argument 'labels' must be int64 or int32")
    yield err("int logits", lambda xp: op(xp.ones((2, 3), np.int32), xp.zeros(2, np.int64)), TypeError,
              "fastnn.softmax_cross_entropy: argument 'logits'")
    yield err("label count", lambda xp: op(x(xp), xp.zeros(3, np.int64)), ValueError, "argument 'labels' must have shape (2,)")
    yield err("string smoothing", lambda xp: op(x(xp), xp.zeros(2, np.int64), "0.1"), TypeError,
              "fastnn.softmax_cross_entropy: argument 'label_smoothing' must be a real number")
    yield err("empty batch", lambda xp: op(xp.ones((0, 3), dtype), xp.zeros(0, np.int64)), ValueError, "at least one row")
    yield err("1-D logits", lambda xp: op(xp.ones(3, dtype), xp.zeros(3, np.int64)), ValueError, "argument 'logits' must be 2-D")
    yield err("strided labels", lambda xp: op(x(xp), xp.zeros(4, np.int64)[::2]), ValueError, "argument 'labels' must be C-contiguous")
    for label_dtype in (np.int64, np.int32):
        # Several bad labels: the first one is named (the GPU finds them in its kernel).
        yield err(f"label high {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            xp.ones((5, 3), dtype), xp.asarray(np.array([0, 1, 3, 2, 7], t))), ValueError,
            "fastnn.softmax_cross_entropy: argument 'labels' must lie in [0, 3) for 3 classes; got labels[2] = 3")
        yield err(f"label negative {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            x(xp), xp.asarray(np.array([-1, 0], t))), ValueError, "got labels[0] = -1")
    yield err("smoothing", lambda xp: op(x(xp), xp.asarray(np.array([0, 1])), 1.5), ValueError,
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
    # Attribute targets (N, A) of 0/1 with -1 for unknown labels, pos_weight per attribute; a
    # long one (past the GPU's grid-stride wrap and the CPU's chunks); one with nothing known.
    for n, attrs in ((1, 1), (7, 5), (33, 40), (2_501, 40)):
        x = randn(rng, (n, attrs), dtype, 4.0)
        t = (rng.uniform(size=x.shape) > 0.5).astype(dtype)
        t[rng.uniform(size=x.shape) < 0.3] = -1
        t.flat[0] = 1  # at least one known target
        yield Sample(f"masked N={n} A={attrs}", (x, t, rng.uniform(0.5, 4, size=attrs).astype(dtype)))
    yield Sample("all unknown", (randn(rng, (3, 4), dtype), np.full((3, 4), -1, dtype)))


def _bce_errors(dtype):
    op = ops.bce_with_logits
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("targets shape", lambda xp: op(a(xp, 2, 3), a(xp, 3, 2)), ValueError, "argument 'targets' must have shape (2, 3)")
    yield err("pos_weight shape", lambda xp: op(a(xp, 2, 3), a(xp, 2, 3), a(xp, 2)), ValueError,
              "argument 'pos_weight' must have shape (3,)")
    yield err("empty", lambda xp: op(a(xp, 0), a(xp, 0)), ValueError, "at least one element")
    yield err("int logits", lambda xp: op(xp.ones((2, 2), np.int32), a(xp, 2, 2)), TypeError, "fastnn.bce_with_logits: argument 'logits'")
    yield err("mixed targets", lambda xp: op(a(xp, 2, 2), xp.ones((2, 2), other_dtype(dtype))), TypeError, "argument 'targets'")
    yield err("strided targets", lambda xp: op(a(xp, 2), a(xp, 4)[::2]), ValueError, "argument 'targets' must be C-contiguous")
    # -1 means unknown; other values outside [0, 1] (just below -1 too) stay errors.
    for bad, shown in ((2.0, "2"), (-0.5, "-0.5"), (np.nan, "nan"), (-1.5, "-1.5")):
        t = np.array([[0, 1], [bad, 0]], dtype)
        yield err(f"target {bad}", lambda xp, t=t: op(a(xp, 2, 2), xp.asarray(t)), ValueError,
                  f"fastnn.bce_with_logits: argument 'targets' must lie in [0, 1]; got targets.flat[2] = {shown}")


# ---- dropout ----------------------------------------------------------------------------------


def _dropout_samples(rng, dtype):
    shapes = [(n,) for n in ODD_SIZES] + [(3, 7, 17), (2, 3, 5, 5), (0, 4)]
    for shape, p in itertools.product(shapes, [0.0, 0.25, 0.5, 0.9, 1.0]):
        # A seed with its high bits set: the 64-bit counter arithmetic must match.
        yield Sample(f"{shape} p={p}", (randn(rng, shape, dtype), p, 2**64 - 12345), grad_out=randn(rng, shape, dtype))


def _dropout_errors(dtype):
    X = lambda xp: xp.ones((2, 3), dtype)  # noqa: E731
    M = lambda xp: xp.ones((2, 3), np.uint8)  # noqa: E731
    yield err("p > 1", lambda xp: ops.dropout(X(xp), 1.01, 0), ValueError, "fastnn.dropout", "'p'", "1.01")
    yield err("p None", lambda xp: ops.dropout(X(xp), None, 0), TypeError, "fastnn.dropout", "'p'")
    yield err("seed < 0", lambda xp: ops.dropout(X(xp), 0.5, -1), ValueError, "fastnn.dropout", "seed", "-1")
    yield err("seed 2**64", lambda xp: ops.dropout(X(xp), 0.5, 2**64), ValueError, "seed", str(2**64))
    yield err("float seed", lambda xp: ops.dropout(X(xp), 0.5, 1.5), TypeError, "fastnn.dropout", "seed", "float")
    yield err("int x", lambda xp: ops.dropout(X(xp).astype(np.int32), 0.5, 0), TypeError, "fastnn.dropout", "'x'", "int32")
    yield err("list x", lambda xp: ops.dropout([1.0, 2.0], 0.5, 0), TypeError, "fastnn.dropout", "numpy.ndarray", "list")
    yield err("bool mask", lambda xp: ops.dropout_backward(X(xp), M(xp).astype(bool), 0.5), TypeError,
              "dropout_backward", "mask", "uint8", "bool")
    yield err("float mask", lambda xp: ops.dropout_backward(X(xp), X(xp), 0.5), TypeError, "dropout_backward: argument 'mask' must be uint8")
    yield err("mask shape", lambda xp: ops.dropout_backward(X(xp), M(xp)[:1], 0.5), ValueError, "dropout_backward", "mask", "(1, 3)")
    yield err("p < 0", lambda xp: ops.dropout_backward(X(xp), M(xp), -0.5), ValueError, "dropout_backward", "'p'", "-0.5")
    yield err("transposed", lambda xp: ops.dropout_backward(X(xp).T, M(xp).T, 0.5), ValueError, "grad_out", "C-contiguous")


op_db: list[OpInfo] = [
    *[_activation(name) for name in ACTIVATIONS],
    *[_softmax(name) for name in ("softmax", "log_softmax")],
    OpInfo("softmax_cross_entropy", ops.softmax_cross_entropy, ref.softmax_cross_entropy, _xent_samples, _xent_errors,
           tol=LOSS, grad_tol=ROW_REDUCTION, outputs=("loss", "grad"), grad_outputs=("grad",)),
    OpInfo("bce_with_logits", ops.bce_with_logits, ref.bce_with_logits, _bce_samples, _bce_errors,
           tol=LOSS, grad_tol=ELEMENTWISE, outputs=("loss", "grad"), grad_outputs=("grad",)),
    OpInfo("dropout", ops.dropout, ref.dropout, _dropout_samples, _dropout_errors,
           tol=Tol(FLOAT32_RTOL, "kept elements are x * (1 / (1 - p)): one rounding; the mask is compared exactly"),
           grad_tol=ELEMENTWISE, outputs=("y", "mask"),
           backward=ops.dropout_backward, backward_ref=ref.dropout_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, fwd["mask"], s.args[1]), {})),
]
