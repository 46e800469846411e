"""Reference optimiser updates (PyTorch's rules), functional: they return new arrays."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def sgd_step(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, first_step=False):
    """Returns (new_param, new_momentum_buffer or None)."""
    p, g = f64(param), f64(grad)
    g = g + weight_decay * p
    buf = None
    if momentum != 0.0:
        buf = g.copy() if first_step else momentum * f64(momentum_buffer) + (1.0 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    p, g = f64(param), f64(grad)
    if decoupled:
        p = p * (1.0 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * f64(exp_avg) + (1.0 - beta1) * g
    v = beta2 * f64(exp_avg_sq) + (1.0 - beta2) * g * g
    bias1 = 1.0 - beta1**step
    bias2 = 1.0 - beta2**step
    p = p - (lr / bias1) * m / (np.sqrt(v) / np.sqrt(bias2) + eps)
    return p, m, v


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0):
    """Returns (new_param, new_exp_avg, new_exp_avg_sq)."""
    return _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, False)


def adamw_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=1e-2):
    """Returns (new_param, new_exp_avg, new_exp_avg_sq)."""
    return _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, True)
