"""Registry entries (tests/opinfo.py) of the similarity family: pairwise_similarity (+ its
backward), topk and similarity_topk."""

from __future__ import annotations

import numpy as np

from conftest import FLOAT32_RTOL_REDUCTION
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import EXACT, OpInfo, Sample, Tol, err, other_dtype, randn

METRICS = ("cosine", "dot", "sqeuclidean")
# (N, M, D): single rows and columns, D = 1, tails past the GEMM's micro-tiles, an empty query.
SHAPES = [(1, 1, 1), (3, 7, 17), (17, 33, 7), (65, 17, 33), (7, 65, 1), (33, 1, 65), (0, 5, 3)]

SIMILARITY = Tol(FLOAT32_RTOL_REDUCTION, "each output a D-term dot product (D <= 65) plus, for sqeuclidean, two "
                 "squared norms: sqrt(D) * 2^-24 growth")
SIMILARITY_GRAD = Tol(FLOAT32_RTOL_REDUCTION, "sums of N or M products (<= 65) through two GEMMs and a row pass")


def _pairwise_samples(rng, dtype):
    for i, (metric, (n, m, d)) in enumerate((metric, shape) for shape in SHAPES for metric in METRICS):
        a, b = randn(rng, (n, d), dtype), randn(rng, (m, d), dtype, 2.0)
        if metric == "cosine" and n > 1 and i % 2:
            a[1] = 0  # a zero row: the clamped norm (eps) path
        yield Sample(f"{metric} N={n} M={m} D={d}", (a, b), dict(metric=metric), grad_out=randn(rng, (n, m), dtype))


def _cosine_grad_scale(sample, args):
    """cosine's gradients cancel (for D = 1 they are exactly 0): measure their errors against
    d x_hat / |x|, the size of the terms."""
    if sample.kwargs["metric"] != "cosine":
        return {}
    g, a, b = (np.asarray(x, np.float64) for x in args)
    norm = lambda x: np.maximum(np.linalg.norm(x, axis=1, keepdims=True), ref.similarity.COSINE_EPS)  # noqa: E731
    return {"da": float(np.linalg.norm(g @ (b / norm(b)) / norm(a))) or 1.0,
            "db": float(np.linalg.norm(g.T @ (a / norm(a)) / norm(b))) or 1.0}


def _pairwise_errors(dtype):
    op, bwd = ops.pairwise_similarity, ops.pairwise_similarity_backward
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("int a", lambda xp: op(xp.ones((2, 3), np.int32), a(xp, 2, 3)), TypeError,
              "fastnn.pairwise_similarity: argument 'a' must be float32 or float64; got int32")
    yield err("mixed", lambda xp: op(a(xp, 2, 3), xp.ones((2, 3), other_dtype(dtype))), TypeError,
              "argument 'b' must have the dtype of 'a'")
    yield err("1-D a", lambda xp: op(a(xp, 3), a(xp, 2, 3)), ValueError, "fastnn.pairwise_similarity: argument 'a' must be 2-D")
    yield err("dim mismatch", lambda xp: op(a(xp, 2, 3), a(xp, 4, 5)), ValueError,
              "fastnn.pairwise_similarity: argument 'b' must have 3 columns (the dim of 'a'); got shape (4, 5)")
    yield err("dim 0", lambda xp: op(a(xp, 2, 0), a(xp, 4, 0)), ValueError, "argument 'a' must have at least one column")
    yield err("unknown metric", lambda xp: op(a(xp, 2, 3), a(xp, 2, 3), "euclidean"), ValueError,
              "fastnn.pairwise_similarity: argument 'metric' must be 'cosine', 'dot' or 'sqeuclidean'; got 'euclidean'")
    yield err("metric not a str", lambda xp: op(a(xp, 2, 3), a(xp, 2, 3), 2), TypeError,
              "fastnn.pairwise_similarity: argument 'metric' must be a str")
    yield err("transposed b", lambda xp: op(a(xp, 2, 3), a(xp, 3, 4).T), ValueError, "argument 'b' must be C-contiguous")
    yield err("grad shape", lambda xp: bwd(a(xp, 2, 5), a(xp, 2, 3), a(xp, 4, 3)), ValueError,
              "fastnn.pairwise_similarity_backward: argument 'grad' must have shape (2, 4)")
    yield err("grad dtype", lambda xp: bwd(xp.ones((2, 4), other_dtype(dtype)), a(xp, 2, 3), a(xp, 4, 3)), TypeError,
              "fastnn.pairwise_similarity_backward: argument 'grad' must have the dtype of 'a'")
    yield err("backward metric", lambda xp: bwd(a(xp, 2, 4), a(xp, 2, 3), a(xp, 4, 3), "cos"), ValueError,
              "fastnn.pairwise_similarity_backward: argument 'metric'")


def _topk_samples(rng, dtype):
    for rows, cols, ks in ((1, 1, (1,)), (3, 7, (1, 3, 7)), (17, 65, (5,)), (5, 200, (33, 200)), (0, 4, (2,))):
        for k in ks:
            for largest in (True, False):
                yield Sample(f"({rows}, {cols}) k={k} largest={largest}", (randn(rng, (rows, cols), dtype), k, largest))
    # Ties everywhere (small integers) and NaN: the order is the ranking rule's, exactly.
    ties = rng.integers(0, 4, size=(9, 40)).astype(dtype)
    ties[::2, ::5] = np.nan
    for k in (1, 6, 40):
        for largest in (True, False):
            yield Sample(f"ties and NaN k={k} largest={largest}", (ties.copy(), k, largest))


def _topk_errors(dtype):
    op = ops.topk
    s = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("k > cols", lambda xp: op(s(xp, 2, 7), 8), ValueError,
              "fastnn.topk: argument 'k' must lie in [1, 7] (the columns of 'scores'); got 8")
    yield err("k = 0", lambda xp: op(s(xp, 2, 7), 0), ValueError, "fastnn.topk: argument 'k' must lie in [1, 7]")
    yield err("float k", lambda xp: op(s(xp, 2, 7), 2.0), TypeError, "fastnn.topk: argument 'k' must be an int")
    yield err("largest not a bool", lambda xp: op(s(xp, 2, 7), 2, "yes"), TypeError, "fastnn.topk: argument 'largest' must be a bool")
    yield err("int scores", lambda xp: op(xp.ones((2, 3), np.int64), 1), TypeError, "fastnn.topk: argument 'scores' must be float32 or float64")
    yield err("1-D scores", lambda xp: op(s(xp, 7), 1), ValueError, "fastnn.topk: argument 'scores' must be 2-D")
    yield err("strided scores", lambda xp: op(s(xp, 4, 6)[:, ::2], 1), ValueError, "argument 'scores' must be C-contiguous")


def _similarity_topk_samples(rng, dtype):
    # D >= 2 random embeddings: the similarities have no near-ties that rounding could reorder.
    for metric in METRICS:
        for n, m, d, k in ((1, 1, 3, 1), (7, 33, 5, 1), (17, 65, 17, 5), (33, 9, 2, 9), (70, 2100, 8, 4),
                           (5, 300, 4, 40), (0, 3, 2, 2)):
            yield Sample(f"{metric} N={n} M={m} D={d} k={k}", (randn(rng, (n, d), dtype), randn(rng, (m, d), dtype), k),
                         dict(metric=metric))
        # The other order than the metric's own.
        yield Sample(f"{metric} reversed", (randn(rng, (5, 4), dtype), randn(rng, (30, 4), dtype), 3),
                     dict(metric=metric, largest=metric == "sqeuclidean"))
    # Exact ties: small-integer embeddings (dot and sqeuclidean are then exact integers), and
    # repeated gallery rows for cosine (equal columns, computed alike).
    q, g = rng.integers(-2, 3, size=(11, 3)).astype(dtype), rng.integers(-2, 3, size=(40, 3)).astype(dtype)
    for metric in ("dot", "sqeuclidean"):
        yield Sample(f"{metric} integer ties", (q, g, 7), dict(metric=metric))
    g = np.repeat(randn(rng, (10, 6), dtype), 4, axis=0)
    yield Sample("cosine repeated gallery rows", (randn(rng, (9, 6), dtype), g, 6), dict(metric="cosine"))


def _similarity_topk_errors(dtype):
    op = ops.similarity_topk
    e = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("k > gallery rows", lambda xp: op(e(xp, 2, 3), e(xp, 4, 3), 5), ValueError,
              "fastnn.similarity_topk: argument 'k' must lie in [1, 4] (the columns of 'gallery'); got 5")
    yield err("dim mismatch", lambda xp: op(e(xp, 2, 3), e(xp, 4, 2), 1), ValueError,
              "fastnn.similarity_topk: argument 'gallery' must have 3 columns (the dim of 'query'); got shape (4, 2)")
    yield err("unknown metric", lambda xp: op(e(xp, 2, 3), e(xp, 4, 3), 1, "l2"), ValueError,
              "fastnn.similarity_topk: argument 'metric' must be 'cosine', 'dot' or 'sqeuclidean'; got 'l2'")
    yield err("int query", lambda xp: op(xp.ones((2, 3), np.int32), e(xp, 4, 3), 1), TypeError,
              "fastnn.similarity_topk: argument 'query' must be float32 or float64")
    yield err("largest not a bool", lambda xp: op(e(xp, 2, 3), e(xp, 4, 3), 1, "dot", 1), TypeError,
              "fastnn.similarity_topk: argument 'largest' must be a bool")
    yield err("strided gallery", lambda xp: op(e(xp, 2, 3), e(xp, 8, 3)[::2], 1), ValueError,
              "argument 'gallery' must be C-contiguous")


op_db: list[OpInfo] = [
    OpInfo("pairwise_similarity", ops.pairwise_similarity, ref.pairwise_similarity, _pairwise_samples, _pairwise_errors,
           tol=SIMILARITY, grad_tol=SIMILARITY_GRAD,
           backward=ops.pairwise_similarity_backward, backward_ref=ref.pairwise_similarity_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, *s.args), s.kwargs),
           grad_names=("da", "db"), grad_scale=_cosine_grad_scale),
    OpInfo("topk", ops.topk, ref.topk, _topk_samples, _topk_errors, tol=EXACT, outputs=("values", "indices")),
    OpInfo("similarity_topk", ops.similarity_topk, ref.similarity_topk, _similarity_topk_samples,
           _similarity_topk_errors, tol=SIMILARITY, outputs=("values", "indices")),
]
