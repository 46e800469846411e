"""Reference activations."""

from __future__ import annotations

import math

import numpy as np

from fastnn.reference._util import f64

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def relu(x):
    x = f64(x)
    return np.where(x < 0, 0.0, x)  # NaN stays NaN, as in PyTorch


def relu_backward(x, grad_out):
    return np.where(f64(x) > 0, f64(grad_out), 0.0)


def add_relu(a, b):
    """max(a + b, 0): a residual sum and the ReLU after it (NaN stays NaN)."""
    return relu(f64(a) + f64(b))


def leaky_relu(x, negative_slope=0.01):
    x = f64(x)
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_backward(x, grad_out, negative_slope=0.01):
    return f64(grad_out) * np.where(f64(x) > 0, 1.0, negative_slope)


def sigmoid(x):
    x = f64(x)
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(y, grad_out):
    y = f64(y)
    return f64(grad_out) * y * (1.0 - y)


def tanh(x):
    return np.tanh(f64(x))


def tanh_backward(y, grad_out):
    y = f64(y)
    return f64(grad_out) * (1.0 - y * y)


def _normal_cdf(x):
    # (1 + erf(x / sqrt 2)) / 2, via erfc to keep the left tail accurate.
    return 0.5 * _erfc(-x / math.sqrt(2.0))


def gelu(x):
    x = f64(x)
    return x * _normal_cdf(x)


def gelu_backward(x, grad_out):
    x = f64(x)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return f64(grad_out) * (_normal_cdf(x) + x * pdf)
