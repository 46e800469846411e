"""2-D pooling layers over NCHW input (PyTorch's MaxPool2d / AvgPool2d, ceil_mode=False)."""

from __future__ import annotations

from fastnn import ops
from fastnn._args import IntPair
from fastnn._backend import Array
from fastnn.nn.module import Module, forward_cache_missing
from fastnn.ops.pool2d import checked_pool2d_window

_INT32_MAX = 2**31 - 1


def _require_4d(layer: Module, x: Array) -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"fastnn.nn.{type(layer).__name__}: input must be 4-D (N, C, H, W); got shape "
            f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}"
        )


class _Pool2d(Module):
    """Holds the window (as (h, w) pairs, checked when built) and the input shape."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        kh, kw, sh, sw, ph, pw = checked_pool2d_window(
            f"nn.{type(self).__name__}", kernel_size, stride, padding
        )
        self.kernel_size, self.stride, self.padding = (kh, kw), (sh, sw), (ph, pw)
        self._input_shape: tuple[int, ...] | None = None

    def _cached_input_shape(self) -> tuple[int, ...]:
        if self._input_shape is None:
            raise forward_cache_missing(self)
        return self._input_shape

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over each ``kernel_size`` window (padding never wins); backward routes each
    output's gradient to the one input that won (the first in scan order on ties)."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__(kernel_size, stride, padding)
        self._indices: Array | None = None
        self._y: Array | None = None  # the next layer keeps it as its input anyway

    def forward(self, x: Array) -> Array:
        _require_4d(self, x)
        # int32 argmax indices halve the cached bytes; planes past 2**31 elements need int64.
        index_dtype = "int32" if x.shape[2] * x.shape[3] <= _INT32_MAX else "int64"
        y, self._indices = ops.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, index_dtype=index_dtype
        )
        self._input_shape = tuple(x.shape)
        self._y = y
        return y

    def backward(self, grad_out: Array) -> Array:
        shape = self._cached_input_shape()
        # The window lets the GPU gather gradients per input without atomics.
        return ops.max_pool2d_backward(grad_out, self._indices, shape, self.kernel_size, self.stride, self.padding)

    def backward_through_relu(self, grad_out: Array) -> Array:
        """The backward of a ReLU followed by this pool, in one step: the gradient reaches only
        each window's winner, which is positive exactly where this pool's output is, so the
        ReLU's mask applies to ``grad_out`` (a quarter the size for 2x2 windows) instead of to
        the full input gradient. Used by :class:`fastnn.nn.Sequential`; bitwise the same result."""
        self._cached_input_shape()
        return self.backward(ops.relu_backward(self._y, grad_out))


class AvgPool2d(_Pool2d):
    """Mean over each ``kernel_size`` window, padding counted as zeros
    (count_include_pad=True, PyTorch's default)."""

    def forward(self, x: Array) -> Array:
        _require_4d(self, x)
        self._input_shape = tuple(x.shape)
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_out: Array) -> Array:
        shape = self._cached_input_shape()
        return ops.avg_pool2d_backward(grad_out, shape, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C) (PyTorch's AdaptiveAvgPool2d(1) + Flatten)."""

    def __init__(self) -> None:
        super().__init__()
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        _require_4d(self, x)
        self._input_shape = tuple(x.shape)
        return ops.global_avg_pool2d(x)

    def backward(self, grad_out: Array) -> Array:
        if self._input_shape is None:
            raise forward_cache_missing(self)
        return ops.global_avg_pool2d_backward(grad_out, self._input_shape)
