"""Pairwise similarity of embeddings through the GEMM, its gradient, and top-k per row.

Metrics: ``"cosine"`` (rows normalised with eps 1e-12 as ``torch.nn.functional.normalize``,
then ``a_hat @ b_hat.T``), ``"dot"`` (``a @ b.T``) and ``"sqeuclidean"``
(``|a_i|^2 + |b_j|^2 - 2 a_i . b_j``, clamped at 0).

Top-k ranks each row by a strict total order, so results are deterministic and the same on
every backend and thread count: the larger value first (the smaller with ``largest=False``),
NaN counting as larger than any number (as ``torch.topk``), and between equal values the lower
column index.
"""

from __future__ import annotations

from fastnn._args import int_arg
from fastnn._backend import Array, backend_for


def _metric(op: str, metric: object) -> str:
    if not isinstance(metric, str):
        raise TypeError(f"fastnn.{op}: argument 'metric' must be a str; got {metric!r}")
    return metric


def _flag(op: str, arg: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"fastnn.{op}: argument '{arg}' must be a bool; got {value!r}")
    return value


def pairwise_similarity(a: Array, b: Array, metric: str = "cosine") -> Array:
    """(N, M) similarity of the rows of ``a`` (N, D) and ``b`` (M, D) under ``metric``
    (``"cosine"``, ``"dot"`` or ``"sqeuclidean"``), computed by one GEMM with the row norms
    folded into its operands and epilogue."""
    op = "pairwise_similarity"
    return backend_for(op, a).pairwise_similarity(a, b, _metric(op, metric))


def pairwise_similarity_backward(grad: Array, a: Array, b: Array, metric: str = "cosine") -> tuple[Array, Array]:
    """``(grad_a, grad_b)``: the gradients of ``pairwise_similarity(a, b, metric)`` given
    ``grad`` = dL/d(similarity) (N, M), by two GEMMs (written, not accumulated: the op has no
    parameters). sqeuclidean's clamp passes no gradient where the unclamped value is <= 0."""
    op = "pairwise_similarity_backward"
    return backend_for(op, a).pairwise_similarity_backward(grad, a, b, _metric(op, metric))


def topk(scores: Array, k: int, largest: bool = True) -> tuple[Array, Array]:
    """``(values, indices)``, each (N, k): every row's ``k`` best entries of ``scores`` (N, M),
    best first, with their column indices as int64 (ranking rule in the module docstring: ties
    go to the lower column). ``k`` must lie in [1, M]."""
    op = "topk"
    return backend_for(op, scores).topk(scores, int_arg(op, "k", k), _flag(op, "largest", largest))


def similarity_topk(
    query: Array, gallery: Array, k: int, metric: str = "cosine", largest: bool | None = None
) -> tuple[Array, Array]:
    """``topk(pairwise_similarity(query, gallery, metric), k, largest)`` without building the
    (N, M) matrix: blocks of query rows are multiplied with the gallery and reduced to their
    top-k at once, so memory stays O((N + M) * D) (a 10,000 x 10,000 gallery never takes 400 MB).

    ``largest`` defaults by metric: True for cosine and dot (most similar first), False for
    sqeuclidean (nearest first). Returns ``(values, indices)``, each (N, k), indices int64.
    """
    op = "similarity_topk"
    if largest is not None:
        largest = _flag(op, "largest", largest)
    return backend_for(op, query).similarity_topk(query, gallery, int_arg(op, "k", k), _metric(op, metric), largest)
