"""Row-wise softmax family over (N, C) arrays and the fused softmax cross-entropy loss."""

from __future__ import annotations

from fastnn._args import real
from fastnn._backend import Array, backend_for


def softmax(x: Array) -> Array:
    """``exp(x - max) / sum(exp(x - max))`` along the last axis of an (N, C) array."""
    return backend_for("softmax", x).softmax(x)


def softmax_backward(y: Array, grad_out: Array) -> Array:
    """``y * (grad_out - sum(grad_out * y, axis=1))`` where ``y = softmax(x)``."""
    return backend_for("softmax_backward", y).softmax_backward(y, grad_out)


def log_softmax(x: Array) -> Array:
    """``x - max - log(sum(exp(x - max)))`` along the last axis of an (N, C) array."""
    return backend_for("log_softmax", x).log_softmax(x)


def log_softmax_backward(y: Array, grad_out: Array) -> Array:
    """``grad_out - exp(y) * sum(grad_out, axis=1)`` where ``y = log_softmax(x)``."""
    return backend_for("log_softmax_backward", y).log_softmax_backward(y, grad_out)


def softmax_cross_entropy(
    logits: Array, labels: Array, label_smoothing: float = 0.0, *, compute_grad: bool = True
) -> tuple[float, Array | None]:
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``, and its gradient.

    logits: (N, C) float; labels: (N,) int64 or int32 in ``[0, C)``. With label smoothing
    ``eps`` the target distribution is ``(1 - eps) * onehot + eps / C`` (PyTorch's
    definition). Returns ``(loss, dloss/dlogits)``; the gradient is ``(softmax - target) / N``
    (None when ``compute_grad`` is False). Stable for logits of any finite size.
    """
    return backend_for("softmax_cross_entropy", logits).softmax_cross_entropy(
        logits, labels, real("softmax_cross_entropy", "label_smoothing", label_smoothing), bool(compute_grad)
    )
