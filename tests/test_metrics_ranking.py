"""Binary and verification metrics (fastnn.metrics: roc_curve, roc_auc, precision_recall_curve,
average_precision, equal_error_rate, tar_at_far, best_threshold_accuracy) against
scikit-learn, hand-solved cases and brute-force threshold sweeps.

Tolerance: 1e-9 absolute, as the issue asks. Both sides compute in float64 from the same
integer counts, so the only differences are the order of a few float64 additions (~1e-16);
any error in tie handling or threshold choice moves a result by at least 1 / N (>= 1e-3 here).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import assert_raises_naming

from fastnn import metrics

TOL = 1e-9


def _labels(rng, n):
    """Random 0/1 labels of length n with both classes present."""
    y = rng.integers(0, 2, n)
    y[0], y[-1] = 0, 1
    return y


# (name, scores from rng and n): continuous, heavily tied integers, two values, all equal.
SCORE_KINDS = {
    "continuous": lambda rng, n: rng.standard_normal(n),
    "ties": lambda rng, n: rng.integers(0, 4, n).astype(np.float64) / 4,
    "integers": lambda rng, n: rng.integers(-2, 3, n),
    "two-values": lambda rng, n: rng.integers(0, 2, n) * 0.5,
    "all-equal": lambda rng, n: np.full(n, 0.3),
}
SIZES = [2, 3, 7, 17, 33, 65, 500]


@pytest.mark.parametrize("kind", SCORE_KINDS)
@pytest.mark.parametrize("n", SIZES)
def test_curves_and_areas_match_sklearn(rng, kind, n):
    sk = pytest.importorskip("sklearn.metrics")
    y, s = _labels(rng, n), SCORE_KINDS[kind](rng, n)
    for drop in (True, False):
        ours, theirs = metrics.roc_curve(y, s, drop_intermediate=drop), sk.roc_curve(y, s, drop_intermediate=drop)
        for name, a, b in zip(("fpr", "tpr", "thresholds"), ours, theirs):
            np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=f"roc {name}, drop={drop}")
    assert metrics.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=TOL)
    for name, a, b in zip(("precision", "recall", "thresholds"), metrics.precision_recall_curve(y, s),
                          sk.precision_recall_curve(y, s)):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=f"pr {name}")
    assert metrics.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=TOL)


def test_precision_recall_with_positives_only_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    y, s = np.ones(5, np.int64), np.array([0.1, 0.4, 0.4, 0.9, 0.2])
    assert metrics.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=TOL) == 1.0
    for a, b in zip(metrics.precision_recall_curve(y, s), sk.precision_recall_curve(y, s)):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_roc_auc_is_the_probability_a_positive_outscores_a_negative(rng, kind):
    # Independent of any curve: every (positive, negative) pair, ties counting one half.
    y, s = _labels(rng, 41), SCORE_KINDS[kind](rng, 41)
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    pairs = np.mean((pos > neg) + 0.5 * (pos == neg))
    assert metrics.roc_auc(y, s) == pytest.approx(pairs, abs=TOL)


def test_bool_and_float_labels_are_accepted():
    y, s = np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.4, 0.5])
    ref = metrics.roc_auc(y, s)
    assert metrics.roc_auc(y.astype(bool), s) == ref == metrics.roc_auc(y.astype(np.float32), s) == 0.75


@pytest.mark.parametrize("fn", [metrics.roc_curve, metrics.roc_auc, metrics.equal_error_rate])
def test_one_class_is_a_value_error(fn):
    for y in (np.zeros(4, np.int64), np.ones(4, np.int64)):
        assert_raises_naming(ValueError, lambda: fn(y, np.arange(4.0)), [fn.__name__, "'y_true'", "both classes"])
    assert_raises_naming(ValueError, lambda: metrics.tar_at_far(np.ones(3), np.arange(3.0), 0.1),
                         ["tar_at_far", "'y_true'", "both classes"])


@pytest.mark.parametrize("fn", [metrics.precision_recall_curve, metrics.average_precision])
def test_precision_recall_without_positives_is_a_value_error(fn):
    assert_raises_naming(ValueError, lambda: fn(np.zeros(4, np.int64), np.arange(4.0)),
                         [fn.__name__, "'y_true'", "positive"])


@pytest.mark.parametrize("y, s, words", [
    (np.array([0, 1, 2]), np.zeros(3), ["'y_true'", "(0, 1)", "[2]"]),
    (np.array([[0, 1]]), np.zeros((1, 2)), ["'y_true'", "1-D", "(1, 2)"]),
    (np.array([0, 1, 1]), np.zeros(4), ["'y_score'", "(3,)", "(4,)"]),
    (np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), ["'y_score'", "finite"]),
    (np.array(["a", "b"]), np.zeros(2), ["'y_true'", "dtype"]),
], ids=["not-binary", "2-D", "length", "nan", "strings"])
def test_bad_input_names_the_function_and_argument(y, s, words):
    for fn in (metrics.roc_curve, metrics.average_precision, metrics.equal_error_rate):
        assert_raises_naming(ValueError, lambda: fn(y, s), [f"fastnn.metrics.{fn.__name__}"] + words)


# --- equal error rate ---------------------------------------------------------------------

@pytest.mark.parametrize("y, s, eer, threshold", [
    # Sorted high to low: +(0.9) -(0.5)/+(0.5) tie -(0.1). Points (FAR, FRR): (0, .5) at 0.9,
    # then the tie moves both to (.5, 0) at 0.5: the segment crosses FAR = FRR halfway, at
    # 0.25, and the threshold is halfway from 0.9 to 0.5.
    ([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1], 0.25, 0.7),
    # +(0.9) -(0.6) +(0.4) -(0.1): at 0.6, FAR = FRR = 0.5 exactly, on a point.
    ([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5, 0.6),
    # Separable: at 0.8 every positive is accepted and no negative: both rates 0.
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.0, 0.8),
    # Inverted: both negatives (0.9, 0.8) outscore both positives. Points (FAR, FRR): (0, 1)
    # at +inf, (.5, 1) at 0.9, (1, 1) at 0.8: FRR <= FAR first at 0.8, on the point itself.
    ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 1.0, 0.8),
], ids=["tie-crossing", "on-a-point", "separable", "inverted"])
def test_equal_error_rate_by_hand(y, s, eer, threshold):
    got_eer, got_threshold = metrics.equal_error_rate(np.array(y), np.array(s))
    assert got_eer == pytest.approx(eer, abs=TOL)
    assert got_threshold == pytest.approx(threshold, abs=TOL)


def _brute_rates(y, s, t):
    """(FAR, FRR) of accepting score >= t, by counting."""
    far = sum(1 for yi, si in zip(y, s) if yi == 0 and si >= t) / sum(1 for yi in y if yi == 0)
    frr = sum(1 for yi, si in zip(y, s) if yi == 1 and si < t) / sum(1 for yi in y if yi == 1)
    return far, frr


@pytest.mark.parametrize("kind", ["continuous", "ties", "integers"])
def test_equal_error_rate_against_a_threshold_sweep(rng, kind):
    y, s = _labels(rng, 57), SCORE_KINDS[kind](rng, 57)
    thresholds = [np.inf] + sorted(set(s.tolist()), reverse=True)
    points = [_brute_rates(y, s, t) for t in thresholds]
    for i in range(1, len(points)):
        (far0, frr0), (far1, frr1) = points[i - 1], points[i]
        if frr1 <= far1:  # the first point past the crossing
            break
    frac = (frr0 - far0) / ((frr0 - far0) - (frr1 - far1))
    eer, threshold = metrics.equal_error_rate(y, s)
    assert eer == pytest.approx(far0 + frac * (far1 - far0), abs=TOL)
    assert eer == pytest.approx(frr0 + frac * (frr1 - frr0), abs=TOL)  # FAR = FRR there
    expected_t = thresholds[i] if i == 1 else thresholds[i - 1] + frac * (thresholds[i] - thresholds[i - 1])
    assert threshold == pytest.approx(expected_t, abs=TOL)
    # The EER lies between the two rates at either end of the crossing segment.
    assert min(far0, frr1) - TOL <= eer <= max(frr0, far1) + TOL


# --- TAR at FAR ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["continuous", "ties", "all-equal"])
def test_tar_at_far_against_a_threshold_sweep(rng, kind):
    y, s = _labels(rng, 73), SCORE_KINDS[kind](rng, 73)
    fars = [1e-3, 0.05, 0.1, 0.25, 0.5, 0.999, 1.0]
    candidates = [np.inf] + sorted(set(s.tolist()))
    expected = []
    for far in fars:
        best = 0.0
        for t in candidates:
            false_accept, false_reject = _brute_rates(y, s, t)
            if false_accept <= far:
                best = max(best, 1.0 - false_reject)
        expected.append(best)
    np.testing.assert_allclose(metrics.tar_at_far(y, s, fars), expected, rtol=0, atol=TOL)
    assert isinstance(metrics.tar_at_far(y, s, 0.1), float)
    assert metrics.tar_at_far(y, s, 0.1) == pytest.approx(expected[2], abs=TOL)


def test_tar_at_far_by_hand():
    # Negatives 0.1..0.9 step 0.1 plus 0.95 (10 of them); positives 0.85, 0.92, 0.97, 0.3.
    neg = np.r_[np.arange(1, 10) / 10, 0.95]
    pos = np.array([0.85, 0.92, 0.97, 0.3])
    y, s = np.r_[np.zeros(10), np.ones(4)], np.r_[neg, pos]
    # FAR 0.1 allows one negative (0.95): lowest threshold 0.92 accepts 0.92, 0.97 -> TAR 0.5.
    # FAR 0.2 allows 0.95 and 0.9: threshold 0.85 accepts 3 positives -> 0.75.
    # FAR 0.05 allows none: threshold 0.97 -> 0.25.
    np.testing.assert_allclose(metrics.tar_at_far(y, s, [0.05, 0.1, 0.2]), [0.25, 0.5, 0.75], rtol=0, atol=TOL)


@pytest.mark.parametrize("far", [0.0, -0.1, 1.5, np.nan, [0.1, 2.0], [[0.1]]])
def test_tar_at_far_rejects_rates_outside_zero_one(far):
    assert_raises_naming(ValueError, lambda: metrics.tar_at_far([0, 1], [0.1, 0.2], far), ["tar_at_far", "'far'"])


# --- LFW-protocol accuracy ----------------------------------------------------------------

def _brute_best_training_accuracy(y, s):
    """Highest accuracy of any threshold on (y, s), trying one in every gap of the scores."""
    values = sorted(set(s.tolist()))
    candidates = [values[0] - 1] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1]
    return max(np.mean((s >= t) == (y == 1)) for t in candidates)


@pytest.mark.parametrize("seed", [0, 7, None])
@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_best_threshold_accuracy_against_brute_force(rng, seed, kind):
    y, s = _labels(rng, 83), SCORE_KINDS[kind](rng, 83) + 0.5 * _labels(rng, 83)
    folds = 10
    mean, std, thresholds = metrics.best_threshold_accuracy(y, s, folds=folds, seed=seed)
    order = np.arange(y.size) if seed is None else np.random.default_rng(seed).permutation(y.size)
    accuracies = []
    for k, held_out_idx in enumerate(np.array_split(order, folds)):
        held_out = np.zeros(y.size, bool)
        held_out[held_out_idx] = True
        train_y, train_s = y[~held_out], s[~held_out]
        # The chosen threshold is as good as any on the training folds ...
        assert np.mean((train_s >= thresholds[k]) == (train_y == 1)) == pytest.approx(
            _brute_best_training_accuracy(train_y, train_s), abs=TOL)
        # ... and is scored on the held-out fold.
        accuracies.append(np.mean((s[held_out] >= thresholds[k]) == (y[held_out] == 1)))
    assert mean == pytest.approx(np.mean(accuracies), abs=TOL)
    assert std == pytest.approx(np.std(accuracies), abs=TOL)


def test_best_threshold_accuracy_by_hand():
    # Separable: every positive scores above every negative, so each fold is judged perfectly
    # and each threshold sits in the gap between 0.4 and 0.6.
    y = np.array([0, 1] * 10)
    s = np.where(y == 1, 0.6, 0.4) + np.linspace(0, 0.01, 20)
    mean, std, thresholds = metrics.best_threshold_accuracy(y, s, folds=5, seed=None)
    assert (mean, std) == (1.0, 0.0)
    assert ((thresholds > 0.41) & (thresholds < 0.6)).all()
    # Contiguous folds (seed=None): fold 0 is the first 4 samples, the only positives, and they
    # score below every negative. Fold 0's training folds hold negatives only, so its threshold
    # rejects everything (+inf) and fold 0 scores 0; the other folds train on 4 positives and
    # 12 negatives, where rejecting everything is again best (12 of 16), and score 1.
    y2 = np.r_[np.ones(4), np.zeros(16)].astype(np.int64)
    s2 = np.r_[np.zeros(4), np.ones(16)]
    mean2, std2, thresholds2 = metrics.best_threshold_accuracy(y2, s2, folds=5, seed=None)
    assert (thresholds2 == np.inf).all()
    assert mean2 == pytest.approx(0.8, abs=TOL) and std2 == pytest.approx(0.4, abs=TOL)  # folds [0, 1, 1, 1, 1]


@pytest.mark.parametrize("folds", [1, 0, 21, 2.5])
def test_best_threshold_accuracy_rejects_bad_folds(folds):
    assert_raises_naming(ValueError, lambda: metrics.best_threshold_accuracy(np.arange(20) % 2, np.arange(20.0), folds),
                         ["best_threshold_accuracy", "'folds'", "[2, 20]"])


def test_new_binary_metrics_take_y_true_first_and_say_what_they_mean():
    for fn in (metrics.roc_curve, metrics.roc_auc, metrics.precision_recall_curve, metrics.average_precision,
               metrics.equal_error_rate, metrics.tar_at_far, metrics.best_threshold_accuracy):
        assert list(inspect.signature(fn).parameters)[:2] == ["y_true", "y_score"], fn.__name__
        assert inspect.getdoc(fn) and len(inspect.getdoc(fn).splitlines()[0]) > 20, fn.__name__
        assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, fn.__name__
