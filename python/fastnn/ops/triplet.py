"""Triplet margin loss over a batch of embeddings, with batch-hard or all-triplet mining."""

from __future__ import annotations

from fastnn import _cpu
from fastnn._args import real
from fastnn._backend import Array, backend_for

MINING = ("batch_hard", "all")


def _mining_name(owner: str, mining: object) -> str:
    """``mining`` if it is a str (its value is checked by the kernels' rule); TypeError otherwise."""
    if isinstance(mining, str):
        return mining
    raise TypeError(f"fastnn.{owner}: argument 'mining' must be a str ('batch_hard' or 'all'); got {mining!r}")


def checked_triplet_params(owner: str, margin: float, mining: str) -> tuple[float, str]:
    """``(margin, mining)`` as a float and a str, checked now by the kernels' own rule (a finite
    margin > 0, mining ``"batch_hard"`` or ``"all"``): lets a layer reject them when built.
    TypeError / ValueError naming ``fastnn.<owner>``."""
    value, name = real(owner, "margin", margin), _mining_name(owner, mining)
    _cpu.triplet_check_params(owner, value, name)
    return value, name


def triplet_margin_loss(
    embeddings: Array,
    labels: Array,
    margin: float = 1.0,
    mining: str = "batch_hard",
    *,
    compute_grad: bool = True,
) -> tuple[float, Array | None]:
    """Triplet margin loss of ``embeddings`` (N, D) grouped by integer ``labels`` (N,), and its
    gradient.

    Distances are Euclidean, ``d[i, j] = sqrt(max(|e_i|^2 + |e_j|^2 - 2 e_i.e_j, 0))``, from one
    GEMM; where a distance is 0 its gradient is taken as 0. A triplet (a, p, n) has
    ``labels[p] == labels[a]``, ``p != a`` and ``labels[n] != labels[a]``; its term is
    ``max(margin + d[a, p] - d[a, n], 0)``.

    * ``mining="batch_hard"`` (Hermans et al. 2017): each anchor takes its farthest positive and
      its closest negative (equal distances: the lower index); the loss is the mean over the
      anchors that have both.
    * ``mining="all"``: the mean over every triplet, which is PyTorch's
      ``TripletMarginLoss(margin, p=2, eps=0)`` over the enumerated triplets (never listed in
      memory: each (a, p) pair runs over all n).

    A batch without any triplet gives loss 0.0 and a zero gradient. A triplet whose hinge is
    exactly 0 passes the gradient (PyTorch's rule). Returns ``(loss, dloss/dembeddings)``, the
    gradient None when ``compute_grad`` is False. labels: int64 or int32, any values; margin: a
    finite number > 0 (as PyTorch requires).
    """
    op = "triplet_margin_loss"
    return backend_for(op, embeddings).triplet_margin_loss(
        embeddings, labels, real(op, "margin", margin), _mining_name(op, mining), bool(compute_grad)
    )
