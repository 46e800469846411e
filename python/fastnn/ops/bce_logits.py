"""Binary cross-entropy on logits for binary and multi-label targets."""

from __future__ import annotations

from fastnn._backend import Array, backend_for


def bce_with_logits(
    logits: Array, targets: Array, pos_weight: Array | None = None, *, compute_grad: bool = True
) -> tuple[float, Array | None]:
    """Mean of ``pw * t * softplus(-x) + (1 - t) * softplus(x)`` over the known targets
    (PyTorch's BCEWithLogitsLoss when all are known), and its gradient
    ``(sigmoid(x) * (pw * t + 1 - t) - pw * t) / n_known``.

    targets: floats in [0, 1] with the logits' shape, or exactly -1 for an unknown label (a
    missing attribute): it adds no loss, gets a zero gradient and is left out of the mean. With
    every target unknown the loss is 0.0 and the gradient zero: such a batch teaches nothing,
    and a 0 / 0 NaN would stop training. Other values outside [0, 1] raise ValueError.
    pos_weight: one weight per class (the last axis, e.g. per attribute of (N, A) targets), or
    None for 1. Stable for any |logits|.
    """
    return backend_for("bce_with_logits", logits).bce_with_logits(
        logits, targets, pos_weight, compute_grad
    )
