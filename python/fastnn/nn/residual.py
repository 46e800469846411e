"""Residual connection: ``y = block(x) + shortcut(x)``."""

from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._backend import Array
from fastnn.nn.container import _FUSING_NORMS, Sequential, _unpatched, backward_done
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
        main, skip = self._paths(x)
        return main + skip

    def forward_relu(self, x: Array) -> Array:
        """``relu(forward(x))`` with the sum and the ReLU in one pass (:func:`fastnn.ops.add_relu`),
        written over the block's output where nothing else holds it: used by
        :class:`fastnn.nn.Sequential` for a Residual followed by :class:`fastnn.nn.ReLU` (ResNet's
        basic block)."""
        main, skip = self._paths(x)
        out = main if self._owns_block_output(main, skip, x) else None
        return ops.add_relu(main, skip, out=out)

    def _paths(self, x: Array) -> tuple[Array, Array]:
        """The block's and the shortcut's outputs, checked to match."""
        main = self.block(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if tuple(main.shape) != tuple(skip.shape):
            raise ValueError(
                f"fastnn.nn.Residual: block output shape {tuple(main.shape)} differs from shortcut "
                f"output shape {tuple(skip.shape)}; give a shortcut that maps the input to the block's shape"
            )
        return main, skip

    def _owns_block_output(self, main: Array, skip: Array, x: Array) -> bool:
        """Whether ``main`` may be overwritten: a fresh NumPy array from a training-mode block
        ending in a plain BatchNorm, which keeps its input, not its output (a ReLU, a pool or a
        sigmoid would keep the output for its backward; an eval plan may reuse its buffers)."""
        block = self.block
        if not (self.training and type(block) is Sequential and len(block) > 0):
            return False
        last = block[-1]
        return (type(last) in _FUSING_NORMS and last.training and _unpatched(last)
                and _fresh_numpy(main, skip, x))

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
