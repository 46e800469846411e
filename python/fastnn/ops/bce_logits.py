"""Binary cross-entropy on logits for binary and multi-label targets."""

from __future__ import annotations

from fastnn._backend import Array, backend_for


def bce_with_logits(
    logits: Array, targets: Array, pos_weight: Array | None = None, *, compute_grad: bool = True
) -> tuple[float, Array | None]:
    """Mean of ``pw * t * softplus(-x) + (1 - t) * softplus(x)`` over all elements (PyTorch's
    BCEWithLogitsLoss), and its gradient ``(sigmoid(x) * (pw * t + 1 - t) - pw * t) / numel``.

    targets: floats in [0, 1] with the logits' shape; pos_weight: one weight per class (the last
    axis), or None for 1. Stable for any |logits|.
    """
    return backend_for("bce_with_logits", logits).bce_with_logits(
        logits, targets, pos_weight, compute_grad
    )
