"""Residual connection: ``y = block(x) + shortcut(x)``."""

from __future__ import annotations

import numpy as np

from fastnn._backend import Array
from fastnn.nn.container import backward_done
from fastnn.nn.module import Module


class Residual(Module):
    """``y = block(x) + shortcut(x)``, with the identity as shortcut when it is None (ResNet's
    skip connection; pass e.g. a 1x1 strided Conv2d as ``shortcut`` when shapes change).

    Backward sends ``grad_out`` through both paths and returns the sum of their input gradients.
    """

    def __init__(self, block: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"fastnn.nn.Residual: argument 'block' must be a Module; got {type(block).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(
                f"fastnn.nn.Residual: argument 'shortcut' must be a Module or None; got {type(shortcut).__name__}"
            )
        self.block = block
        self.shortcut = shortcut

    def forward(self, x: Array) -> Array:
        main = self.block(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if tuple(main.shape) != tuple(skip.shape):
            raise ValueError(
                f"fastnn.nn.Residual: block output shape {tuple(main.shape)} differs from shortcut "
                f"output shape {tuple(skip.shape)}; give a shortcut that maps the input to the block's shape"
            )
        return main + skip

    def backward(self, grad_out: Array) -> Array:
        grad_in = self.block.backward(grad_out)
        backward_done(self.block)
        skip = grad_out
        if self.shortcut is not None:
            skip = self.shortcut.backward(grad_out)
            backward_done(self.shortcut)
        if _fresh_numpy(grad_in, grad_out, skip):
            grad_in += skip  # no new activation-sized array (and its page faults) per block
            return grad_in
        return grad_in + skip


def _fresh_numpy(grad: object, *others: Array) -> bool:
    """Whether ``grad`` is a NumPy array that can take a sum in place: no layer keeps an input
    gradient it returned, so only aliasing matters (an Identity or eval-mode Dropout block hands
    back the caller's ``grad_out`` itself; a Flatten, a view of it)."""
    return (type(grad) is np.ndarray and grad.flags.writeable
            and all(type(o) is np.ndarray and o.dtype == grad.dtype and o.shape == grad.shape
                    and not np.may_share_memory(grad, o) for o in others))
