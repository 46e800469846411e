"""Reference pairwise similarity (cosine, dot, squared Euclidean), its gradient, and top-k.

Top-k ranks by a strict total order: the larger value (the smaller with ``largest=False``), NaN
above any number, and between equal values the lower column index.
"""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64

COSINE_EPS = 1e-12
METRICS = ("cosine", "dot", "sqeuclidean")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _normalize(x):
    """(x / max(|x|, eps) per row, the norms)."""
    norm = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    return x / np.maximum(norm, COSINE_EPS), norm


def pairwise_similarity(a, b, metric="cosine"):
    """(N, M) similarity of the rows of a (N, D) and b (M, D): cosine (a_hat b_hat^T), dot
    (a b^T) or sqeuclidean (max(|a_i|^2 + |b_j|^2 - 2 a_i . b_j, 0))."""
    _check_metric(metric)
    a, b = f64(a), f64(b)
    if metric == "cosine":
        return _normalize(a)[0] @ _normalize(b)[0].T
    if metric == "dot":
        return a @ b.T
    return np.maximum(_sq_unclamped(a, b), 0.0)


def _sq_unclamped(a, b):
    return np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)


def _normalize_backward(dx_hat, x):
    x_hat, norm = _normalize(x)
    clamped = norm <= COSINE_EPS
    through = (dx_hat - x_hat * np.sum(x_hat * dx_hat, axis=1, keepdims=True)) / np.maximum(norm, COSINE_EPS)
    return np.where(clamped, dx_hat / COSINE_EPS, through)


def pairwise_similarity_backward(grad, a, b, metric="cosine"):
    """(dL/da, dL/db) given dL/d(similarity) ``grad`` (N, M). The squared distance's clamp at 0
    passes no gradient where the unclamped value is <= 0."""
    _check_metric(metric)
    g, a, b = f64(grad), f64(a), f64(b)
    if metric == "dot":
        return g @ b, g.T @ a
    if metric == "cosine":
        a_hat, b_hat = _normalize(a)[0], _normalize(b)[0]
        return _normalize_backward(g @ b_hat, a), _normalize_backward(g.T @ a_hat, b)
    h = np.where(_sq_unclamped(a, b) > 0, g, 0.0)
    da = 2.0 * h.sum(axis=1)[:, None] * a - 2.0 * (h @ b)
    db = 2.0 * h.sum(axis=0)[:, None] * b - 2.0 * (h.T @ a)
    return da, db


def topk(scores, k, largest=True):
    """(values (N, k), indices (N, k) int64): each row's k best, best first (order above)."""
    x = f64(scores)
    if not 1 <= k <= x.shape[1]:
        raise ValueError(f"k must lie in [1, {x.shape[1]}]; got {k}")
    nan = np.isnan(x)
    primary = np.where(nan, 0.0, -x if largest else x)
    nan_rank = np.where(nan, 0, 1) if largest else np.where(nan, 1, 0)
    columns = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    order = np.lexsort((columns, primary, nan_rank), axis=-1)[:, :k].astype(np.int64)
    return np.take_along_axis(x, order, axis=1), order


def similarity_topk(query, gallery, k, metric="cosine", largest=None):
    """topk(pairwise_similarity(query, gallery, metric), k, largest); ``largest`` defaults to
    True for the similarities and False for sqeuclidean (the nearest are the smallest)."""
    if largest is None:
        largest = metric != "sqeuclidean"
    return topk(pairwise_similarity(query, gallery, metric), k, largest)
