"""Binary and verification metrics over scores: ROC and precision-recall curves, their areas,
the equal error rate, the true-accept rate at a false-accept rate, and the LFW protocol's
10-fold threshold accuracy.

``y_true`` (N,) holds 0/1 (bool, integer or float), 1 = positive ("same person", "yes");
``y_score`` (N,) holds any finite score where higher means more likely positive. A threshold t
accepts the samples with score >= t. Every curve is built from one sort of the scores: walking
the distinct scores from high to low, the true and false positives accepted so far are
cumulative sums, and samples with tied scores enter together (a tie is one point of the
curve, never split). The conventions are scikit-learn 1.9's (the version these functions
were checked against): thresholds[0] of the ROC is +inf (the point (0, 0), nothing
accepted), ``drop_intermediate`` drops collinear ROC points, and precision-recall thresholds
rise while recall falls to a final (recall 0, precision 1) point that has no threshold.

Where y_true holds one class only, the ROC (and everything read off it: AUC, EER, TAR)
is undefined and these functions raise ValueError; scikit-learn warns and returns NaN
instead. Precision-recall needs at least one positive (with no negatives, precision is 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _checks


def _binary_inputs(fn: str, y_true, y_score, need: str = "both") -> tuple[np.ndarray, np.ndarray]:
    """Checked (y, s); ``need`` is "both" (both classes present), "positive" (at least one
    positive) or "any"."""
    y = _checks.binary_labels(fn, "y_true", y_true)
    s = _checks.scores(fn, "y_score", y_score, y.shape)
    if need == "both":
        _checks.both_classes(fn, y)
    elif need == "positive" and not (y == 1).any():
        raise ValueError(f"fastnn.metrics.{fn}: argument 'y_true' must contain at least one positive (1); "
                         f"got none of {y.size}")
    return y, s


def _counts_at_thresholds(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, threshold) at each distinct score, highest first:
    the counts of negatives and positives scoring >= that threshold, as float64."""
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted, y_sorted = s[order], y[order].astype(np.float64)
    # The last sample of each run of tied scores: the curve moves only once the whole tie is in.
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = 1.0 + last_of_tie - tps
    return fps, tps, s_sorted[last_of_tie]


def roc_curve(y_true, y_score, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: per threshold, the fraction of negatives accepted against that of positives.

    Returns ``(fpr, tpr, thresholds)``: ``fpr`` the false-positive (false-accept) rate,
    ``tpr`` the true-positive rate, one entry per distinct score plus a first point (0, 0)
    at threshold +inf, thresholds falling. ``drop_intermediate`` drops points that lie on
    the straight line between their neighbours (they change neither the plot nor the area),
    as scikit-learn's ``roc_curve`` does. Raises ValueError unless both classes occur.
    """
    return _roc("roc_curve", y_true, y_score, drop_intermediate)


def _roc(fn: str, y_true, y_score, drop_intermediate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, s = _binary_inputs(fn, y_true, y_score)
    fps, tps, thresholds = _counts_at_thresholds(y, s)
    if drop_intermediate and fps.size > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def roc_auc(y_true, y_score) -> float:
    """ROC AUC: the chance that a random positive scores above a random negative (0.5 chance, 1 perfect).

    Ties between a positive and a negative count one half. Matches scikit-learn's
    ``roc_auc_score`` for binary ``y_true``. Raises ValueError unless both classes occur.
    """
    fpr, tpr, _ = _roc("roc_auc", y_true, y_score, drop_intermediate=True)
    # The trapezoid rule written out (numpy.trapezoid is NumPy 2 only; the formula is its own).
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def precision_recall_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per threshold: precision (accepted samples that are positive) and recall (positives accepted).

    Returns ``(precision, recall, thresholds)`` as scikit-learn's ``precision_recall_curve``:
    thresholds rising over the distinct scores, and precision and recall one entry longer,
    ending at (precision 1, recall 0). Raises ValueError when ``y_true`` has no positive.
    """
    y, s = _binary_inputs("precision_recall_curve", y_true, y_score, need="positive")
    fps, tps, thresholds = _counts_at_thresholds(y, s)
    precision = tps / (tps + fps)  # tps + fps >= 1: every threshold accepts its own sample
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    fps, tps, _ = _counts_at_thresholds(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(max(0.0, np.sum(np.diff(np.r_[0.0, recall]) * precision)))


def average_precision(y_true, y_score) -> float:
    """Average precision: how well the scores rank positives first (1.0 = all above every negative).

    The mean, over the positives, of the precision at the threshold that first accepts each
    one: the area under the precision-recall step curve, without interpolation. Matches
    scikit-learn's ``average_precision_score``. Raises ValueError when ``y_true`` has no
    positive.
    """
    y, s = _binary_inputs("average_precision", y_true, y_score, need="positive")
    return _average_precision(y, s)


def equal_error_rate(y_true, y_score) -> tuple[float, float]:
    """Equal error rate: the error rate at the threshold where false accepts equal false rejects.

    There the fraction of negatives accepted (FAR) equals the fraction of positives rejected
    (FRR). Returns ``(eer, threshold)``. The rule: walk the ROC points (every distinct score, highest
    first, after the (0, 0) point at +inf); FRR - FAR falls from +1 to -1. Let i be the first
    point where FRR <= FAR. The EER is where the straight segment from point i-1 to point i
    crosses FAR = FRR (so FRR = FAR there exactly), and the threshold is the score the same
    fraction of the way from threshold i-1 to threshold i (threshold i itself when point i-1
    is the +inf start). Raises ValueError unless both classes occur.
    """
    fpr, tpr, thresholds = _roc("equal_error_rate", y_true, y_score, drop_intermediate=False)
    gap = (1.0 - tpr) - fpr  # FRR - FAR
    i = int(np.argmax(gap <= 0))  # exists: the last point has gap -1; i >= 1 since gap[0] = 1
    frac = gap[i - 1] / (gap[i - 1] - gap[i])
    eer = fpr[i - 1] + frac * (fpr[i] - fpr[i - 1])
    threshold = thresholds[i] if i == 1 else thresholds[i - 1] + frac * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def tar_at_far(y_true, y_score, far: float | Sequence[float]) -> float | np.ndarray:
    """TAR@FAR: the fraction of positives accepted when at most ``far`` of the negatives may be.

    The threshold t is the lowest score such that (negatives with score >= t) / negatives
    <= far; TAR = (positives with score >= t) / positives. Tied scores are accepted or
    rejected together, so the FAR reached may be below ``far``. ``far`` in (0, 1], a number
    (returns a float) or a sequence (returns an array). Raises ValueError unless both classes
    occur.
    """
    rates, scalar = _checks.rates("tar_at_far", "far", far)
    fpr, tpr, _ = _roc("tar_at_far", y_true, y_score, drop_intermediate=False)
    # fpr and tpr rise together: the last point within the budget accepts the most positives.
    tar = tpr[np.searchsorted(fpr, rates, side="right") - 1]
    return float(tar[0]) if scalar else tar


def _best_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The threshold of highest accuracy on (y, s): the highest one where there are several,
    placed halfway into the gap below the last score it accepts (+inf: reject all; -inf:
    accept all)."""
    fps, tps, scores = _counts_at_thresholds(y, s)
    negatives = y.size - tps[-1]
    correct = np.r_[negatives, tps + (negatives - fps)]  # first: reject everything
    best = int(np.argmax(correct))
    if best == 0:
        return np.inf
    if best == scores.size:
        return -np.inf
    return float(scores[best - 1] + (scores[best] - scores[best - 1]) / 2)


def best_threshold_accuracy(y_true, y_score, folds: int = 10, seed: int | None = 0) -> tuple[float, float, np.ndarray]:
    """LFW-protocol accuracy: the fraction judged right by a threshold tuned on the other folds.

    The samples are split into ``folds`` near-equal folds: a seeded random permutation
    (``seed`` an int), or contiguous blocks in the given order (``seed=None``, as LFW's pairs
    file is laid out). For each fold, the threshold of highest accuracy on the other folds
    (the highest such threshold, halfway into the gap below the last score it accepts) is
    applied to that fold: score >= threshold means "positive".

    Returns ``(mean, std, thresholds)``: the mean and the population standard deviation
    (ddof 0, as the LFW evaluation scripts report) of the per-fold accuracies, and the
    (folds,) thresholds chosen.
    """
    y, s = _binary_inputs("best_threshold_accuracy", y_true, y_score, need="any")
    if not isinstance(folds, (int, np.integer)) or not 2 <= folds <= y.size:
        raise ValueError(f"fastnn.metrics.best_threshold_accuracy: argument 'folds' must be an int in "
                         f"[2, {y.size}] (the number of samples); got {folds!r}")
    order = np.arange(y.size) if seed is None else np.random.default_rng(seed).permutation(y.size)
    fold_of = np.empty(y.size, np.int64)
    for k, members in enumerate(np.array_split(order, folds)):
        fold_of[members] = k
    thresholds = np.empty(folds)
    accuracies = np.empty(folds)
    for k in range(folds):
        held_out = fold_of == k
        thresholds[k] = _best_threshold(y[~held_out], s[~held_out])
        accuracies[k] = np.mean((s[held_out] >= thresholds[k]) == (y[held_out] == 1))
    return float(accuracies.mean()), float(accuracies.std()), thresholds
