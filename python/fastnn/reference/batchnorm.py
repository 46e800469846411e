"""Reference batch normalisation over x (N, C) or (N, C, *spatial), statistics per channel.

Unlike the kernels, the training forward returns the new running statistics instead of
updating them in place.
"""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast against (N, C, *spatial)."""
    return f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def batch_norm_train(x, weight, bias, running_mean, running_var, *, momentum=0.1, eps=1e-5, relu=False):
    """(y, mean, inv_std, new_running_mean, new_running_var).

    mean, var: per channel over the batch (biased var); inv_std = 1 / sqrt(var + eps);
    y = (x - mean) * inv_std * weight + bias, then max(y, 0) when relu; new_running =
    (1 - momentum) * running + momentum * stat, with the unbiased variance var * M / (M - 1), M values per channel
    (None when the running statistics are None).
    """
    x = f64(x)
    axes = _reduce_axes(x)
    count = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(var + eps)
    y = batch_norm_eval(x, weight, bias, mean, var, eps=eps, relu=relu)
    if running_mean is None:
        return y, mean, inv_std, None, None
    new_mean = (1 - momentum) * f64(running_mean) + momentum * mean
    new_var = (1 - momentum) * f64(running_var) + momentum * var * count / (count - 1)
    return y, mean, inv_std, new_mean, new_var


def batch_norm_eval(x, weight, bias, running_mean, running_var, *, eps=1e-5, relu=False):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias (weight / bias None:
    1 / 0), then max(y, 0) when relu (NaN stays NaN)."""
    x = f64(x)
    y = (x - _per_channel(running_mean, x.ndim)) / np.sqrt(_per_channel(running_var, x.ndim) + eps)
    if weight is not None:
        y = y * _per_channel(weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    return np.where(y < 0, 0.0, y) if relu else y


def batch_norm_backward(grad_out, x, weight, mean, inv_std, *, training=True, bias=None, relu=False):
    """(dx, dweight, dbias), with xhat = (x - mean) * inv_std:
    dbias = sum dy, dweight = sum dy * xhat (both None when weight is None);
    training: dx = weight * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), the means per
    channel (mean and var depend on x); eval: dx = weight * inv_std * dy (constants).
    relu: the backward of relu(y), y = xhat * weight + bias: dy = grad_out where y > 0, else 0.
    """
    x, dy = f64(x), f64(grad_out)
    axes = _reduce_axes(x)
    xhat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    if relu:
        y = xhat * (1.0 if weight is None else _per_channel(weight, x.ndim))
        y = y + (0.0 if bias is None else _per_channel(bias, x.ndim))
        dy = np.where(y > 0, dy, 0.0)
    scale = _per_channel(inv_std, x.ndim)
    if weight is not None:
        scale = scale * _per_channel(weight, x.ndim)
    if training:
        dy_centered = dy - dy.mean(axis=axes, keepdims=True)
        dx = scale * (dy_centered - xhat * (dy * xhat).mean(axis=axes, keepdims=True))
    else:
        dx = scale * dy
    if weight is None:
        return dx, None, None
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
