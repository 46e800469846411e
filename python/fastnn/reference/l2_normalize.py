"""Reference L2 normalisation of rows (PyTorch's F.normalize(x, p=2, dim=1, eps))."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x * x).sum(axis=1, keepdims=True))


def l2_normalize(x, eps=1e-12):
    """y = x / max(||x||, eps) per row of x (N, D)."""
    x = f64(x)
    return x / np.maximum(_norms(x), eps)


def l2_normalize_backward(grad_y, x, eps=1e-12):
    """dx = (dy - y (dy . y)) / ||x|| where ||x|| > eps; dy / eps where y = x / eps is linear."""
    x, dy = f64(x), f64(grad_y)
    norm = _norms(x)
    y = x / np.maximum(norm, eps)
    scaled = norm > eps
    projected = (dy - y * (dy * y).sum(axis=1, keepdims=True)) / np.where(scaled, norm, 1.0)
    return np.where(scaled, projected, dy / eps)
