"""Registry entries (tests/opinfo.py) of the embedding ops: l2_normalize (+ its backward) and
the fused ArcFace loss."""

from __future__ import annotations

import numpy as np

from conftest import FLOAT32_RTOL, FLOAT32_RTOL_REDUCTION
from fastnn import ops
from fastnn import reference as ref
from fastnn._device import zeros_like
from opinfo_base import CPU_ONLY, OpInfo, Sample, Tol, err, other_dtype, randn, readonly

# ---- l2_normalize -----------------------------------------------------------------------------

# (N, D): single elements, odd sizes past a warp (33, 65, 129), a batch of 0.
L2_SHAPES = [(1, 1), (3, 7), (17, 129), (65, 33), (2, 1000), (0, 5)]


def _l2_samples(rng, dtype):
    for shape in L2_SHAPES:
        yield Sample(f"{shape}", (randn(rng, shape, dtype, 3.0),), grad_out=randn(rng, shape, dtype))
    # Rows below eps (a zero row, tiny rows) next to ordinary ones: the dy / eps branch.
    x = randn(rng, (6, 9), dtype)
    x[1] = 0
    x[3] *= dtype(1e-3)
    yield Sample("rows below eps", (x,), {"eps": 0.05}, grad_out=randn(rng, x.shape, dtype))


def _l2_errors(dtype):
    op, bwd = ops.l2_normalize, ops.l2_normalize_backward
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("1-D", lambda xp: op(a(xp, 4)), ValueError, "fastnn.l2_normalize: argument 'x' must be 2-D (batch, features)")
    yield err("no features", lambda xp: op(a(xp, 2, 0)), ValueError, "argument 'x' must have at least one feature")
    yield err("int", lambda xp: op(xp.ones((2, 3), np.int32)), TypeError, "fastnn.l2_normalize: argument 'x'", "int32")
    yield err("transposed", lambda xp: op(a(xp, 3, 2).T), ValueError, "argument 'x' must be C-contiguous")
    for eps in (0.0, -1.0, np.inf, np.nan):
        yield err(f"eps {eps}", lambda xp, e=eps: op(a(xp, 2, 3), e), ValueError,
                  "fastnn.l2_normalize: argument 'eps' must be a finite number > 0")
    yield err("string eps", lambda xp: op(a(xp, 2, 3), "1e-12"), TypeError,
              "fastnn.l2_normalize: argument 'eps' must be a real number")
    yield err("backward shape", lambda xp: bwd(a(xp, 2, 4), a(xp, 2, 3)), ValueError,
              "fastnn.l2_normalize_backward: argument 'grad_y' must have shape (2, 3)")
    yield err("backward mixed dtypes", lambda xp: bwd(xp.ones((2, 3), other_dtype(dtype)), a(xp, 2, 3)), TypeError,
              "fastnn.l2_normalize_backward: argument 'grad_y'")


# ---- arcface_loss -----------------------------------------------------------------------------

# (N, D, C, scale, margin): one class, two classes, one feature (every cosine exactly +-1), odd
# sizes past a warp and the GEMM's tiles, no margin, a large margin, a small scale.
ARCFACE_CASES = [(1, 1, 1, 64.0, 0.5), (1, 1, 2, 64.0, 0.5), (5, 1, 3, 16.0, 0.3), (3, 7, 2, 64.0, 0.5),
                 (7, 3, 1, 30.0, 0.5), (17, 129, 10, 64.0, 0.5), (33, 64, 65, 30.0, 0.0), (65, 17, 33, 8.0, 1.2),
                 (40, 512, 7, 64.0, 0.5)]


def _arcface_samples(rng, dtype):
    for i, (n, d, c, scale, margin) in enumerate(ARCFACE_CASES):
        labels = rng.integers(0, c, size=n).astype((np.int64, np.int32)[i % 2])
        # Raw vectors of different lengths: the normalisation's gradient is part of the check.
        e = randn(rng, (n, d), dtype, 2.0) * rng.uniform(0.5, 3.0, size=(n, 1)).astype(dtype)
        w = randn(rng, (c, d), dtype)
        yield Sample(f"N={n} D={d} C={c} s={scale} m={margin} {labels.dtype}", (e, w, labels, scale, margin),
                     op_kwargs={"compute_grad": i != 3})
    # theta + m > pi: each embedding points almost opposite its class centre (cos near -1, below
    # cos(pi - m)), so the target logit takes the linear branch cos - sin(pi - m) * m.
    n, d, c = 9, 24, 5
    labels = rng.integers(0, c, size=n).astype(np.int64)
    w = randn(rng, (c, d), dtype)
    e = -w[labels] + randn(rng, (n, d), dtype, 0.05)
    yield Sample("theta + m > pi", (e, w, labels, 64.0, 0.5))


def _arcface_call(entry, s):
    e, w = s.args[0], s.args[1]
    compute_grad = s.op_kwargs.get("compute_grad", True)
    weight_grad = zeros_like(w) if compute_grad else None
    loss, grad = ops.arcface_loss(*s.args, **s.kwargs, weight_grad=weight_grad, compute_grad=compute_grad)
    return {"loss": loss, "grad_embeddings": grad, "grad_weight": weight_grad}


def _arcface_ref(entry, s):
    loss, grad_embeddings, grad_weight = ref.arcface_loss(*s.args, **s.kwargs)
    if not s.op_kwargs.get("compute_grad", True):
        grad_embeddings = grad_weight = None
    return {"loss": loss, "grad_embeddings": grad_embeddings, "grad_weight": grad_weight}


def _arcface_errors(dtype):
    op = ops.arcface_loss
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    w = lambda xp: a(xp, 4, 3)  # noqa: E731
    lab = lambda xp: xp.zeros(2, np.int64)  # noqa: E731
    yield err("int embeddings", lambda xp: op(xp.ones((2, 3), np.int32), w(xp), lab(xp)), TypeError,
              "fastnn.arcface_loss: argument 'embeddings'")
    yield err("mixed weight", lambda xp: op(a(xp, 2, 3), xp.ones((4, 3), other_dtype(dtype)), lab(xp)), TypeError,
              "fastnn.arcface_loss: argument 'weight'")
    yield err("float labels", lambda xp: op(a(xp, 2, 3), w(xp), xp.zeros(2, dtype)), TypeError,
              "argument 'labels' must be int64 or int32")
    yield err("weight columns", lambda xp: op(a(xp, 2, 3), a(xp, 4, 5), lab(xp)), ValueError,
              "fastnn.arcface_loss: argument 'weight' must have 3 columns to match the embeddings' features; got shape (4, 5)")
    yield err("1-D embeddings", lambda xp: op(a(xp, 3), w(xp), lab(xp)), ValueError,
              "argument 'embeddings' must be 2-D (batch, features)")
    yield err("empty batch", lambda xp: op(a(xp, 0, 3), w(xp), xp.zeros(0, np.int64)), ValueError,
              "argument 'embeddings' must have at least one row")
    yield err("no classes", lambda xp: op(a(xp, 2, 3), a(xp, 0, 3), lab(xp)), ValueError,
              "argument 'weight' must have at least one class")
    yield err("label count", lambda xp: op(a(xp, 2, 3), w(xp), xp.zeros(3, np.int64)), ValueError,
              "argument 'labels' must have shape (2,)")
    yield err("transposed embeddings", lambda xp: op(a(xp, 3, 2).T, w(xp), lab(xp)), ValueError,
              "argument 'embeddings' must be C-contiguous")
    yield err("scale 0", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), 0.0), ValueError,
              "fastnn.arcface_loss: argument 'scale' must be a finite number > 0; got 0")
    yield err("margin pi/2", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), 64.0, np.pi / 2), ValueError,
              "fastnn.arcface_loss: argument 'margin' must lie in [0, pi/2) radians")
    yield err("negative margin", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), 64.0, -0.1), ValueError,
              "argument 'margin' must lie in [0, pi/2) radians; got -0.1")
    yield err("eps 0", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), eps=0.0), ValueError,
              "argument 'eps' must be a finite number > 0")
    yield err("string scale", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), "64"), TypeError,
              "fastnn.arcface_loss: argument 'scale' must be a real number")
    yield err("weight_grad shape", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), weight_grad=a(xp, 3, 4)), ValueError,
              "fastnn.arcface_loss: argument 'weight_grad' must have shape (4, 3)")
    yield err("weight_grad without grad", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), weight_grad=a(xp, 4, 3),
                                                        compute_grad=False), ValueError,
              "fastnn.arcface_loss: argument 'weight_grad' must be None when compute_grad=False")
    yield err("weight_grad is weight", lambda xp: (lambda wt: op(a(xp, 2, 3), wt, lab(xp), weight_grad=wt))(w(xp)),
              ValueError, "'weight_grad'", "share memory")
    yield err("read-only weight_grad", lambda xp: op(a(xp, 2, 3), w(xp), lab(xp), weight_grad=readonly(xp, (4, 3), dtype)),
              ValueError, "'weight_grad'", "writeable", backends=CPU_ONLY)
    for label_dtype in (np.int64, np.int32):
        # Several bad labels: the first one is named (the GPU finds them in its kernel); the
        # message is softmax_cross_entropy's.
        yield err(f"label high {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            xp.ones((5, 3), dtype), xp.ones((3, 3), dtype), xp.asarray(np.array([0, 1, 3, 2, 7], t))), ValueError,
            "fastnn.arcface_loss: argument 'labels' must lie in [0, 3) for 3 classes; got labels[2] = 3")
        yield err(f"label negative {np.dtype(label_dtype)}", lambda xp, t=label_dtype: op(
            a(xp, 2, 3), w(xp), xp.asarray(np.array([-1, 0], t))), ValueError, "got labels[0] = -1")


# float32: each cosine is a D-term float32 dot product of unit vectors, within ~2^-24 of its
# value; the logits s * cos (s <= 64) then move by ~4e-6 at most, which moves the loss and the
# softmax probabilities by about that relative. Measured on these samples: 3e-7. The bound
# leaves room for a GPU's summation order and still fails on any indexing or margin bug.
ARCFACE_LOSS = Tol(FLOAT32_RTOL_REDUCTION, "logits s * cos (s <= 64), cos a float32 dot product of unit vectors: "
                   "s * 2^-24 absolute on the logits; the loss summed in double")
ARCFACE_GRAD = Tol(FLOAT32_RTOL_REDUCTION, "softmax probabilities of s * cos move by s * 2^-24 relative; the two "
                   "gradient GEMMs (over C and N <= 65 terms) and the normalisation's backward add a few roundings")

op_db: list[OpInfo] = [
    OpInfo("l2_normalize", ops.l2_normalize, ref.l2_normalize, _l2_samples, _l2_errors,
           tol=Tol(FLOAT32_RTOL, "x / norm with the norm summed in double: one rounding of each output"),
           grad_tol=Tol(FLOAT32_RTOL, "the dot product and the projection in double: one rounding of each output"),
           backward=ops.l2_normalize_backward, backward_ref=ref.l2_normalize_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0]), s.kwargs)),
    OpInfo("arcface_loss", ops.arcface_loss, ref.arcface_loss, _arcface_samples, _arcface_errors,
           tol=ARCFACE_LOSS, grad_tol=ARCFACE_GRAD, outputs=("loss", "grad_embeddings", "grad_weight"),
           grad_outputs=("grad_embeddings", "grad_weight"), call_op=_arcface_call, call_ref=_arcface_ref),
]
