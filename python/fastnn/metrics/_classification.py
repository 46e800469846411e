"""Multiclass metrics over NumPy arrays, in scikit-learn's argument order: the true labels
first (``y_true``), then the predictions (``y_pred``) or scores (``y_score``).

``y_score`` is (N, K) logits or probabilities (any monotone score per class), ``y_true`` (N,)
ints in [0, K). Predictions are ``argmax`` over the class axis (the first maximum on ties).

Older releases took ``accuracy(scores, labels)`` and ``top_k_accuracy(scores, labels, k)``
(scores first). That order keeps working for now, with a DeprecationWarning, and is recognised
without guessing: ``y_true`` is always 1-D, so a 2-D first argument can only be old-order
scores. (``accuracy`` of two 1-D arrays compares them element-wise, which is the same in either
order, so it needs no warning.) The old keyword names (``scores_or_predictions=``, ``scores=``,
``labels=``, ``preds=``, ``labels_or_confusion=``) still work too, with a DeprecationWarning.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, TypeVar

import numpy as np

_F = TypeVar("_F", bound=Callable[..., Any])


def _renamed_keywords(**renames: str) -> Callable[[_F], _F]:
    """Accepts each old keyword name (``old=new``) in place of the new one, with a
    DeprecationWarning; passing both is a TypeError."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"fastnn.metrics.{fn.__name__}: pass '{new}' only, not also its old name '{old}'")
                    warnings.warn(f"fastnn.metrics.{fn.__name__}: argument '{old}' is now called '{new}' "
                                  f"(scikit-learn's names); the old name will be removed",
                                  DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _old_order(fn: str, y_true: Any, y_other: Any) -> bool:
    """Whether the call used the old (scores, labels) order: a 2-D first argument (y_true is
    always 1-D) with a 1-D second. Warns when so."""
    if np.ndim(y_true) == 2 and np.ndim(y_other) == 1:
        warnings.warn(f"fastnn.metrics.{fn}: the scores came first; the order is now ({fn}(y_true, y_score), "
                      f"scikit-learn's): swap the arguments. The old order will stop working",
                      DeprecationWarning, stacklevel=4)  # past the keyword-renaming wrapper
        return True
    return False


def _as_labels(name: str, labels, n: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"fastnn.metrics: argument '{name}' must be a 1-D integer array; got {labels.dtype} {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"fastnn.metrics: argument '{name}' must have {n} entries; got {labels.shape[0]}")
    return labels.astype(np.int64, copy=False)


def _as_scores(scores, name: str = "y_score") -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"fastnn.metrics: argument '{name}' must be 2-D (N, classes); got shape {scores.shape}")
    return scores


def predictions(y_score) -> np.ndarray:
    """The predicted class of each row of (N, K) scores (argmax)."""
    return _as_scores(y_score).argmax(axis=1)


@_renamed_keywords(scores_or_predictions="y_pred", labels="y_true")
def accuracy(y_true, y_pred) -> float:
    """Fraction of rows whose prediction equals the true label. ``y_pred`` is (N,) predicted
    classes or (N, K) scores (their argmax is the prediction). 0.0 for an empty batch."""
    if _old_order("accuracy", y_true, y_pred):
        y_true, y_pred = y_pred, y_true
    pred = np.asarray(y_pred)
    pred = predictions(pred) if pred.ndim == 2 else _as_labels("y_pred", pred)
    labels = _as_labels("y_true", y_true, pred.shape[0])
    return float(np.mean(pred == labels)) if labels.size else 0.0


@_renamed_keywords(scores="y_score", labels="y_true")
def top_k_correct(y_true, y_score, k: int) -> np.ndarray:
    """Per row: is the true label among the k highest scores? A label counts as in the top k
    when fewer than k classes score strictly higher (ties resolve in the label's favour)."""
    if _old_order("top_k_correct", y_true, y_score):
        y_true, y_score = y_score, y_true
    scores = _as_scores(y_score)
    labels = _as_labels("y_true", y_true, scores.shape[0])
    if not 1 <= k:
        raise ValueError(f"fastnn.metrics.top_k_accuracy: argument 'k' must be >= 1; got {k}")
    true_score = scores[np.arange(scores.shape[0]), labels]
    higher = np.count_nonzero(scores > true_score[:, None], axis=1)
    return higher < k


@_renamed_keywords(scores="y_score", labels="y_true")
def top_k_accuracy(y_true, y_score, k: int = 5) -> float:
    """Fraction of rows whose true label is among the k highest scores (see
    :func:`top_k_correct`; scikit-learn's ``top_k_accuracy_score``)."""
    if _old_order("top_k_accuracy", y_true, y_score):
        y_true, y_score = y_score, y_true
    correct = top_k_correct(y_true, y_score, k)
    return float(np.mean(correct)) if correct.size else 0.0


@_renamed_keywords(labels="y_true", preds="y_pred")
def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts: entry [i, j] is the number of rows of true class i predicted as j."""
    labels = _as_labels("y_true", y_true)
    preds = _as_labels("y_pred", y_pred, labels.shape[0])
    if num_classes is None:
        num_classes = int(max(labels.max(initial=-1), preds.max(initial=-1))) + 1
    for name, arr in (("y_true", labels), ("y_pred", preds)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"fastnn.metrics.confusion_matrix: '{name}' must lie in [0, {num_classes}); "
                             f"got values in [{arr.min()}, {arr.max()}]")
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@_renamed_keywords(labels_or_confusion="y_true", preds="y_pred")
def precision_recall_f1(y_true, y_pred=None, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support, from ``(y_true, y_pred)`` labels, or from a
    confusion matrix C passed alone (as ``y_true``, with ``y_pred`` None).

    precision[j] = C[j, j] / sum_i C[i, j] (of rows predicted j, how many are j);
    recall[i] = C[i, i] / sum_j C[i, j] (of rows of class i, how many were found);
    f1 = 2 p r / (p + r). A ratio with a zero denominator is 0 (scikit-learn's zero_division=0).
    """
    if y_pred is not None:
        confusion = confusion_matrix(y_true, y_pred, num_classes)
    else:
        confusion = np.asarray(y_true)
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
