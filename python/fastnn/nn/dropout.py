"""Dropout layer (PyTorch's Dropout: inverted, active only in training mode)."""

from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import real
from fastnn._backend import Array
from fastnn.nn.module import Module, forward_cache_missing
from fastnn.random import default_generator


class Dropout(Module):
    """In training mode zeroes each element with probability ``p`` and scales the rest by
    ``1 / (1 - p)``; the identity in eval mode and when ``p == 0``; zeros when ``p == 1``.

    Each training forward draws a fresh mask seed from fastnn's global generator, so
    ``fastnn.manual_seed(s)`` repeats the masks exactly; the mask itself depends only on the
    seed and element index, never on the thread count.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        p = real("nn.Dropout", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"fastnn.nn.Dropout: argument 'p' must lie in [0, 1]; got {p}")
        self.p = p
        self._mask: Array | None = None
        self._identity: bool | None = None  # how the last forward ran; None before any

    def forward(self, x: Array) -> Array:
        self._identity = not self.training or self.p == 0.0
        if self._identity:
            self._mask = None
            return x
        seed = int(default_generator().integers(0, 2**64, dtype=np.uint64))
        y, self._mask = ops.dropout(x, self.p, seed)
        return y

    def backward(self, grad_out: Array) -> Array:
        if self._identity is None:
            raise forward_cache_missing(self)
        if self._identity:
            return grad_out
        return ops.dropout_backward(grad_out, self._mask, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
