"""Classification metrics over NumPy arrays.

``scores`` are (N, K) logits or probabilities (any monotone score per class), ``labels`` (N,)
ints in [0, K). Predictions are ``argmax`` over the class axis (the first maximum on ties).
"""

from __future__ import annotations

import numpy as np


def _as_labels(name: str, labels, n: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"fastnn.metrics: argument '{name}' must be a 1-D integer array; got {labels.dtype} {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"fastnn.metrics: argument '{name}' must have {n} entries; got {labels.shape[0]}")
    return labels.astype(np.int64, copy=False)


def _as_scores(scores) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"fastnn.metrics: argument 'scores' must be 2-D (N, classes); got shape {scores.shape}")
    return scores


def predictions(scores) -> np.ndarray:
    """The predicted class of each row (argmax)."""
    return _as_scores(scores).argmax(axis=1)


def accuracy(scores_or_predictions, labels) -> float:
    """Fraction of rows whose prediction equals the label. Takes (N, K) scores or (N,)
    predicted classes. 0.0 for an empty batch."""
    pred = np.asarray(scores_or_predictions)
    pred = predictions(pred) if pred.ndim == 2 else _as_labels("predictions", pred)
    labels = _as_labels("labels", labels, pred.shape[0])
    return float(np.mean(pred == labels)) if labels.size else 0.0


def top_k_correct(scores, labels, k: int) -> np.ndarray:
    """Per row: is the label among the k highest scores? A label counts as in the top k when
    fewer than k classes score strictly higher (ties resolve in the label's favour)."""
    scores = _as_scores(scores)
    labels = _as_labels("labels", labels, scores.shape[0])
    if not 1 <= k:
        raise ValueError(f"fastnn.metrics.top_k_accuracy: argument 'k' must be >= 1; got {k}")
    true_score = scores[np.arange(scores.shape[0]), labels]
    higher = np.count_nonzero(scores > true_score[:, None], axis=1)
    return higher < k


def top_k_accuracy(scores, labels, k: int = 5) -> float:
    """Fraction of rows whose label is among the k highest scores (see :func:`top_k_correct`)."""
    correct = top_k_correct(scores, labels, k)
    return float(np.mean(correct)) if correct.size else 0.0


def confusion_matrix(labels, preds, num_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts: entry [i, j] is the number of rows of true class i predicted as j."""
    labels = _as_labels("labels", labels)
    preds = _as_labels("preds", preds, labels.shape[0])
    if num_classes is None:
        num_classes = int(max(labels.max(initial=-1), preds.max(initial=-1))) + 1
    for name, arr in (("labels", labels), ("preds", preds)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"fastnn.metrics.confusion_matrix: '{name}' must lie in [0, {num_classes}); "
                             f"got values in [{arr.min()}, {arr.max()}]")
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def precision_recall_f1(labels_or_confusion, preds=None, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support, from ``(labels, preds)`` or from a
    confusion matrix C (when ``preds`` is None).

    precision[j] = C[j, j] / sum_i C[i, j] (of rows predicted j, how many are j);
    recall[i] = C[i, i] / sum_j C[i, j] (of rows of class i, how many were found);
    f1 = 2 p r / (p + r). A ratio with a zero denominator is 0 (scikit-learn's zero_division=0).
    """
    if preds is not None:
        confusion = confusion_matrix(labels_or_confusion, preds, num_classes)
    else:
        confusion = np.asarray(labels_or_confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"fastnn.metrics.precision_recall_f1: argument 'confusion' must be square; got {confusion.shape}")
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}
