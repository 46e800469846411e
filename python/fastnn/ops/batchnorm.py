"""Batch normalisation over (N, C) or (N, C, H, W) arrays, per channel C (PyTorch's
BatchNorm1d / BatchNorm2d).

Training normalises with the batch's mean and *biased* variance and moves the running
estimates towards the batch mean and *unbiased* variance; evaluation normalises with the
running estimates. The math is in :mod:`fastnn.reference.batchnorm`.
"""

from __future__ import annotations

from fastnn._args import real
from fastnn._backend import Array, backend_for


def batch_norm_train(
    x: Array,
    weight: Array | None,
    bias: Array | None,
    running_mean: Array | None,
    running_var: Array | None,
    *,
    momentum: float = 0.1,
    eps: float = 1e-5,
    relu: bool = False,
) -> tuple[Array, Array, Array]:
    """Training-mode forward. Returns ``(y, save_mean, save_inv_std)``:
    ``y = (x - mean) * inv_std * weight + bias`` with the batch's per-channel ``mean`` and
    ``inv_std = 1 / sqrt(var + eps)`` (biased var), which backward needs. ``relu=True`` returns
    ``max(y, 0)`` instead, in the same pass (BatchNorm followed by ReLU).

    ``running_mean`` / ``running_var`` (C,), when given, are updated in place:
    ``r = (1 - momentum) * r + momentum * batch_stat`` with the unbiased batch variance.
    weight / bias None mean 1 / 0 (affine=False). Needs more than one value per channel.
    """
    return backend_for("batch_norm_train", x).batch_norm_train(
        x,
        weight,
        bias,
        running_mean,
        running_var,
        real("batch_norm_train", "momentum", momentum),
        real("batch_norm_train", "eps", eps),
        bool(relu),
    )


def batch_norm_eval(
    x: Array,
    weight: Array | None,
    bias: Array | None,
    running_mean: Array,
    running_var: Array,
    *,
    eps: float = 1e-5,
    relu: bool = False,
) -> Array:
    """Evaluation-mode forward: ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``
    (then ``max(., 0)`` in the same pass when ``relu``)."""
    return backend_for("batch_norm_eval", x).batch_norm_eval(
        x, weight, bias, running_mean, running_var, real("batch_norm_eval", "eps", eps), bool(relu)
    )


def batch_norm_backward(
    grad_out: Array,
    x: Array,
    weight: Array | None,
    mean: Array,
    inv_std: Array,
    *,
    training: bool = True,
    grad_weight: Array | None = None,
    grad_bias: Array | None = None,
    input_grad: bool = True,
    bias: Array | None = None,
    relu: bool = False,
) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients of the forward given ``grad_out`` = dL/dy. Returns ``(dx, dweight, dbias)``.

    ``mean`` / ``inv_std``: what the training forward saved (``training=True``), or the
    running mean and ``1 / sqrt(running_var + eps)`` for an evaluation-mode forward
    (``training=False``, where the statistics are constants). With ``xhat = (x - mean) * inv_std``:
    ``dbias = sum dy``, ``dweight = sum dy * xhat`` (None when ``weight`` is None); training
    ``dx = weight * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))``, evaluation
    ``dx = weight * inv_std * dy`` (None when ``input_grad`` is False). Given ``grad_weight`` /
    ``grad_bias`` arrays are *added* into in place and returned.

    ``relu=True``: the backward of ``relu(batch_norm(x))`` (the forward's ``relu=True``):
    ``grad_out`` is the gradient of the ReLU's output, and ``dy`` above is ``grad_out`` where
    ``y = (x - mean) * inv_std * weight + bias > 0``, else 0. The sign of y is recomputed from x
    with the forward's own arithmetic, so ``mean``, ``inv_std``, ``weight`` and ``bias`` must be
    the arrays that forward used (the saved statistics of a training forward): then the mask is
    exactly the forward output's ``y > 0``.
    """
    return backend_for("batch_norm_backward", x).batch_norm_backward(
        grad_out, x, weight, mean, inv_std, grad_weight, grad_bias, bool(training), bool(input_grad),
        bias, bool(relu)
    )
