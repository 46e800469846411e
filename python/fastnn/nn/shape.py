"""Layers that only move data: Flatten and Identity."""

from __future__ import annotations

import math

from fastnn._backend import Array
from fastnn.nn.module import Module, forward_cache_missing


class Flatten(Module):
    """Flattens every axis from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W). No copy."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        if start_dim < 1:
            raise ValueError(f"fastnn.nn.Flatten: argument 'start_dim' must be >= 1; got {start_dim}")
        self.start_dim = int(start_dim)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        if x.ndim < self.start_dim:
            raise ValueError(
                f"fastnn.nn.Flatten: input must have at least {self.start_dim} axes; got shape {tuple(x.shape)}"
            )
        self._shape = tuple(x.shape)
        # The flattened size spelled out, not -1: NumPy cannot infer -1 when the batch is empty.
        return x.reshape(self._shape[: self.start_dim] + (math.prod(self._shape[self.start_dim:]),))

    def backward(self, grad_out: Array) -> Array:
        if self._shape is None:
            raise forward_cache_missing(self)
        return grad_out.reshape(self._shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Identity(Module):
    """Returns its input; backward returns its gradient."""

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, grad_out: Array) -> Array:
        return grad_out
