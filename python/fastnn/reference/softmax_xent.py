"""Reference softmax family and losses over (N, C) rows."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def log_softmax(x):
    x = f64(x)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(x):
    return np.exp(log_softmax(x))


def softmax_backward(y, grad_out):
    y, dy = f64(y), f64(grad_out)
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def log_softmax_backward(y, grad_out):
    y, dy = f64(y), f64(grad_out)
    return dy - np.exp(y) * dy.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """(mean loss, dloss/dlogits) with target q = (1 - eps) * onehot + eps / C."""
    logits = f64(logits)
    n, c = logits.shape
    q = np.full((n, c), label_smoothing / c)
    q[np.arange(n), np.asarray(labels)] += 1.0 - label_smoothing
    logp = log_softmax(logits)
    loss = float(-(q * logp).sum() / n)
    return loss, (np.exp(logp) - q) / n
