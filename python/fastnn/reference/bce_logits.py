"""Reference BCE-with-logits (mean over all elements)."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def bce_with_logits(logits, targets, pos_weight=None):
    """(loss, dloss/dlogits) of the mean of pw * t * softplus(-x) + (1 - t) * softplus(x) over
    the known targets; a target of -1 is unknown: no loss, zero gradient, not counted. With
    none known the loss is 0 and the gradient zero."""
    x, t = f64(logits), f64(targets)
    pw = 1.0 if pos_weight is None else f64(pos_weight)
    known = t != -1.0
    n_known = int(np.count_nonzero(known))
    if n_known == 0:
        return 0.0, np.zeros_like(x)
    loss_elems = np.where(known, pw * t * _softplus(-x) + (1.0 - t) * _softplus(x), 0.0)
    sig = np.exp(-_softplus(-x))
    grad = np.where(known, (sig * (pw * t + 1.0 - t) - pw * t) / n_known, 0.0)
    return float(loss_elems.sum() / n_known), grad
