"""Activation layers (elementwise, any shape)."""

from __future__ import annotations

from fastnn import ops
from fastnn._backend import Array
from fastnn.nn.module import Module, forward_cache_missing


class _Activation(Module):
    """Caches the forward input (or output, for sigmoid/tanh) that backward needs."""

    def __init__(self) -> None:
        super().__init__()
        self._saved: Array | None = None

    def _saved_or_raise(self) -> Array:
        if self._saved is None:
            raise forward_cache_missing(self)
        return self._saved


class ReLU(_Activation):
    """``max(x, 0)``."""

    def forward(self, x: Array) -> Array:
        self._saved = x
        return ops.relu(x)

    def keep_fused_output(self, y: Array) -> None:
        """Takes the place of :meth:`forward` when the layer before computed ``y = relu(x)``
        itself (:meth:`fastnn.nn.Linear.forward_relu`): backward needs only the sign of x, and
        ``y > 0`` exactly where ``x > 0``, so it reads y instead (and gives the same gradient)."""
        self._saved = y

    def backward(self, grad_out: Array) -> Array:
        return ops.relu_backward(self._saved_or_raise(), grad_out)


class LeakyReLU(_Activation):
    """``x if x > 0 else negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        self._saved = x
        return ops.leaky_relu(x, self.negative_slope)

    def backward(self, grad_out: Array) -> Array:
        return ops.leaky_relu_backward(self._saved_or_raise(), grad_out, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x: Array) -> Array:
        self._saved = ops.sigmoid(x)
        return self._saved

    def backward(self, grad_out: Array) -> Array:
        return ops.sigmoid_backward(self._saved_or_raise(), grad_out)


class Tanh(_Activation):
    """Hyperbolic tangent."""

    def forward(self, x: Array) -> Array:
        self._saved = ops.tanh(x)
        return self._saved

    def backward(self, grad_out: Array) -> Array:
        return ops.tanh_backward(self._saved_or_raise(), grad_out)


class GELU(_Activation):
    """Exact (erf) GELU, PyTorch's default."""

    def forward(self, x: Array) -> Array:
        self._saved = x
        return ops.gelu(x)

    def backward(self, grad_out: Array) -> Array:
        return ops.gelu_backward(self._saved_or_raise(), grad_out)
