"""Elementwise activations and their backward passes (any shape).

Backward functions take what the derivative needs: the forward *input* ``x`` for relu,
leaky_relu and gelu, the forward *output* ``y`` for sigmoid and tanh.
"""

from __future__ import annotations

from fastnn._args import real
from fastnn._backend import Array, backend_for


def _forward(name: str, x: Array, negative_slope: float = 0.0) -> Array:
    return backend_for(name, x).activation_forward(name, x, real(name, "negative_slope", negative_slope))


def _backward(name: str, saved: Array, grad_out: Array, negative_slope: float = 0.0) -> Array:
    return backend_for(name, saved).activation_backward(
        name, saved, grad_out, real(f"{name}_backward", "negative_slope", negative_slope)
    )


def relu(x: Array) -> Array:
    """``max(x, 0)``; NaN stays NaN (as in PyTorch, and as the ReLU fused into linear/conv2d)."""
    return _forward("relu", x)


def relu_backward(x: Array, grad_out: Array) -> Array:
    """``grad_out * (x > 0)`` (the gradient at exactly 0 is 0, as in PyTorch)."""
    return _backward("relu", x, grad_out)


def add_relu(a: Array, b: Array, *, out: Array | None = None) -> Array:
    """``max(a + b, 0)`` in one pass (a residual sum and the ReLU after it); the same values as
    ``relu(a + b)``. ``out``: where to write it (a new array when None); it may be ``a`` or
    ``b`` itself, but no other array overlapping them."""
    return backend_for("add_relu", a).add_relu(a, b, out)


def leaky_relu(x: Array, negative_slope: float = 0.01) -> Array:
    """``x if x > 0 else negative_slope * x``."""
    return _forward("leaky_relu", x, negative_slope)


def leaky_relu_backward(x: Array, grad_out: Array, negative_slope: float = 0.01) -> Array:
    """``grad_out * (1 if x > 0 else negative_slope)``."""
    return _backward("leaky_relu", x, grad_out, negative_slope)


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, computed without overflow for any finite x."""
    return _forward("sigmoid", x)


def sigmoid_backward(y: Array, grad_out: Array) -> Array:
    """``grad_out * y * (1 - y)`` where ``y = sigmoid(x)``."""
    return _backward("sigmoid", y, grad_out)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent."""
    return _forward("tanh", x)


def tanh_backward(y: Array, grad_out: Array) -> Array:
    """``grad_out * (1 - y**2)`` where ``y = tanh(x)``."""
    return _backward("tanh", y, grad_out)


def gelu(x: Array) -> Array:
    """Exact GELU: ``x * Phi(x)`` with ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` (PyTorch's default)."""
    return _forward("gelu", x)


def gelu_backward(x: Array, grad_out: Array) -> Array:
    """``grad_out * (Phi(x) + x * phi(x))`` with ``phi`` the standard normal density."""
    return _backward("gelu", x, grad_out)
