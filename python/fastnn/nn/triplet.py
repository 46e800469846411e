"""Triplet margin loss for metric learning: embeddings of the same label pulled together,
of different labels pushed at least ``margin`` further apart."""

from __future__ import annotations

from fastnn import ops
from fastnn._backend import Array
from fastnn.nn.loss import _empty_batch, _Loss
from fastnn.ops.triplet import checked_triplet_params


class TripletMarginLoss(_Loss):
    """Triplet margin loss over a batch of embeddings (N, D) and integer labels (N,), with
    Euclidean distances and batch-hard (``mining="batch_hard"``, Hermans et al. 2017) or
    all-triplet (``mining="all"``, PyTorch's TripletMarginLoss over every valid triplet, with
    eps=0) mining; see :func:`fastnn.ops.triplet_margin_loss`.

    Called as ``loss = fn(embeddings, labels)`` (a Python float); ``fn.backward()`` returns
    dloss/dembeddings. A batch without any triplet (a single class, or classes of one sample)
    gives 0.0 and a zero gradient; a batch of 0 gives NaN, as every loss here does.
    """

    def __init__(self, margin: float = 1.0, mining: str = "batch_hard") -> None:
        super().__init__()
        self.margin, self.mining = checked_triplet_params("nn.TripletMarginLoss", margin, mining)

    def forward(self, embeddings: Array, labels: Array) -> float:  # type: ignore[override]
        """The mean hinge over the mined triplets (NaN for a batch of 0, with an empty
        gradient)."""
        if _empty_batch(embeddings, labels, same_shape=False):
            return self._empty(embeddings)
        loss, self._grad = ops.triplet_margin_loss(embeddings, labels, self.margin, self.mining)
        return loss

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"
