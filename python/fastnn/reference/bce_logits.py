"""Reference BCE-with-logits (mean over all elements)."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def bce_with_logits(logits, targets, pos_weight=None):
    """(loss, dloss/dlogits) of mean(pw * t * softplus(-x) + (1 - t) * softplus(x))."""
    x, t = f64(logits), f64(targets)
    pw = 1.0 if pos_weight is None else f64(pos_weight)
    loss_elems = pw * t * _softplus(-x) + (1.0 - t) * _softplus(x)
    sig = np.exp(-_softplus(-x))
    grad = (sig * (pw * t + 1.0 - t) - pw * t) / x.size
    return float(loss_elems.mean()), grad
