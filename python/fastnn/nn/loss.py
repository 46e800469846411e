"""Losses. Called as ``loss = fn(logits, targets)`` (a Python float, the batch mean);
``fn.backward()`` then returns dloss/dlogits, computed by the same fused kernel pass."""

from __future__ import annotations

from fastnn import ops
from fastnn._backend import Array
from fastnn._device import to_device_like
from fastnn.nn.module import Module


def _empty_batch(logits: Array, targets: Array, same_shape: bool) -> bool:
    """Whether the call is a well-formed batch of 0: (0, C) logits and matching empty targets
    (the kernels want at least one row; other malformed input still goes to them for their
    error message)."""
    shape, target_shape = getattr(logits, "shape", None), getattr(targets, "shape", None)
    if shape is None or target_shape is None or len(shape) != 2 or shape[0] != 0:
        return False
    return tuple(target_shape) == (tuple(shape) if same_shape else (0,))


class _Loss(Module):
    def __init__(self) -> None:
        super().__init__()
        self._grad: Array | None = None

    def _empty(self, logits: Array) -> float:
        self._grad = logits.copy()  # (0, C), the logits' dtype and device
        return float("nan")

    def backward(self, grad_out: float = 1.0) -> Array:  # type: ignore[override]
        """dloss/dlogits of the last call, scaled by ``grad_out``."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was computed")
        return self._grad if grad_out == 1.0 else self._grad * grad_out


class SoftmaxCrossEntropy(_Loss):
    """Softmax followed by cross-entropy against integer labels (PyTorch's CrossEntropyLoss,
    mean reduction), with optional label smoothing, fused into one kernel."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"fastnn.nn.SoftmaxCrossEntropy: argument 'label_smoothing' must lie in [0, 1]; got {label_smoothing}"
            )
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Array, labels: Array) -> float:  # type: ignore[override]
        """The mean loss over the batch (NaN for a batch of 0, the mean of nothing, as in
        PyTorch; its gradient is then an empty array)."""
        if _empty_batch(logits, labels, same_shape=False):
            return self._empty(logits)
        loss, self._grad = ops.softmax_cross_entropy(logits, labels, self.label_smoothing)
        return loss

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


class BCEWithLogits(_Loss):
    """Binary cross-entropy on logits for binary / multi-label targets (floats in [0, 1] of
    the logits' shape, -1 marking an unknown label: no loss, no gradient, not counted in the
    mean), with optional per-class ``pos_weight``."""

    def __init__(self, pos_weight: Array | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: Array, targets: Array) -> float:  # type: ignore[override]
        """The mean loss over the known targets (NaN for a batch of 0, as in PyTorch; 0.0 when
        every target is -1, unknown)."""
        if _empty_batch(logits, targets, same_shape=True):
            return self._empty(logits)
        pos_weight = self.pos_weight
        if pos_weight is not None:
            # The weights follow the logits' dtype and device (NumPy or CuPy).
            pos_weight = to_device_like(pos_weight, logits)
            if pos_weight.dtype != logits.dtype:
                pos_weight = pos_weight.astype(logits.dtype)
        loss, self._grad = ops.bce_with_logits(logits, targets, pos_weight)
        return loss
