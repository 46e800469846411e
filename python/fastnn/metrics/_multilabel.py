"""Multi-label (attribute) metrics: N samples, A yes/no attributes each.

``y_true`` (N, A) holds 1 (has the attribute), 0 (has not) or -1 (unknown: real attribute
tables have gaps). Unknown entries are left out of every metric here, as if that sample had
not been asked about that attribute. ``y_pred`` (N, A) holds 0/1 decisions; ``y_score``
(N, A) any finite scores, higher = more likely 1. With no unknown entry these agree with
scikit-learn's ``hamming_loss``, ``average_precision_score(average=None / "macro")`` and
``f1_score(average="micro" / "macro")``, except where an attribute has no known positive:
its AP is then undefined, returned as NaN and left out of the mean (scikit-learn gives 0).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from . import _checks
from ._ranking import _average_precision


def _truth_and(fn: str, y_true, other, other_name: str, binary_other: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, the other argument, the mask of known entries), checked."""
    y = _checks.binary_labels(fn, "y_true", y_true, ndim=2, allow_unknown=True)
    if binary_other:
        o = _checks.binary_labels(fn, other_name, other, ndim=2)
        if o.shape != y.shape:
            raise ValueError(f"fastnn.metrics.{fn}: argument '{other_name}' must have shape {y.shape} (that of "
                             f"y_true); got {o.shape}")
    else:
        o = _checks.scores(fn, other_name, other, y.shape)
    known = y >= 0
    if not known.any():
        raise ValueError(f"fastnn.metrics.{fn}: argument 'y_true' must have at least one known (0/1) entry; "
                         f"got shape {y.shape} with every entry unknown (-1) or none at all")
    return y, o, known


def hamming_loss(y_true, y_pred) -> float:
    """Hamming loss: the fraction of (sample, attribute) answers that are wrong (0.0 perfect).

    Counted over the known entries of ``y_true`` only."""
    y, pred, known = _truth_and("hamming_loss", y_true, y_pred, "y_pred", binary_other=True)
    return float(np.count_nonzero((y != pred) & known) / np.count_nonzero(known))


def average_precision_per_label(y_true, y_score) -> np.ndarray:
    """Per attribute, how well the scores rank its positives above its negatives (AP, 1.0 perfect).

    Returns (A,): :func:`fastnn.metrics.average_precision` of each attribute over the samples
    where it is known; NaN for an attribute with no known positive."""
    y, s, known = _truth_and("average_precision_per_label", y_true, y_score, "y_score", binary_other=False)
    ap = np.full(y.shape[1], np.nan)
    for a in range(y.shape[1]):  # one vectorised pass per attribute
        col = known[:, a]
        if (y[col, a] == 1).any():
            ap[a] = _average_precision(y[col, a], s[col, a])
    return ap


def mean_average_precision(y_true, y_score) -> float:
    """mAP: the mean over attributes of their average precision (1.0 perfect).

    The mean of :func:`average_precision_per_label`, leaving out attributes with no known
    positive."""
    ap = average_precision_per_label(y_true, y_score)
    if np.isnan(ap).all():
        raise ValueError("fastnn.metrics.mean_average_precision: argument 'y_true' must have a known positive "
                         "(1) in at least one attribute; got none")
    return float(np.nanmean(ap))


def f1_multilabel(y_true, y_pred, average: Literal["micro", "macro"] = "micro") -> float:
    """F1 of the yes answers: the harmonic mean of their precision and recall (1.0 perfect).

    Over the known entries of ``y_true``. ``"micro"``: from the true/false positives and false negatives pooled over
    all attributes (frequent attributes weigh more). ``"macro"``: the mean of each attribute's
    F1 (each attribute weighs the same; an attribute with no positive, predicted or true,
    scores 0, as scikit-learn's default ``zero_division``)."""
    if average not in ("micro", "macro"):
        raise ValueError(f"fastnn.metrics.f1_multilabel: argument 'average' must be 'micro' or 'macro'; got {average!r}")
    y, pred, known = _truth_and("f1_multilabel", y_true, y_pred, "y_pred", binary_other=True)
    true_pos = np.count_nonzero((y == 1) & (pred == 1), axis=0)
    false_pos = np.count_nonzero((y == 0) & (pred == 1), axis=0)
    false_neg = np.count_nonzero((y == 1) & (pred == 0), axis=0)
    if average == "micro":
        true_pos, false_pos, false_neg = true_pos.sum(), false_pos.sum(), false_neg.sum()
    denom = (2 * true_pos + false_pos + false_neg).astype(np.float64)
    f1 = np.divide(2.0 * true_pos, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(np.mean(f1))
