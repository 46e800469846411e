"""Reference fully connected layer."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def linear(x, weight, bias=None) -> np.ndarray:
    """y[n, o] = sum_i x[n, i] * weight[o, i] + bias[o]."""
    y = f64(x) @ f64(weight).T
    return y if bias is None else y + f64(bias)


def linear_backward(x, weight, grad_out, *, bias=True, input_grad=True):
    """(dx, dweight, dbias) = (dy @ W, dy.T @ x, dy.sum(0)); each freshly computed."""
    x, weight, dy = f64(x), f64(weight), f64(grad_out)
    dx = dy @ weight if input_grad else None
    return dx, dy.T @ x, (dy.sum(axis=0) if bias else None)
