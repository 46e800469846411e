"""Multi-label metrics (fastnn.metrics: hamming_loss, average_precision_per_label,
mean_average_precision, f1_multilabel) against scikit-learn with every label known, and
against scikit-learn on the known entries alone when some labels are unknown (-1).

Tolerance 1e-9 absolute: both sides divide the same integer counts in float64, so they differ
only in the order of a few additions; a miscounted entry moves a result by >= 1 / entries.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import assert_raises_naming

from fastnn import metrics

TOL = 1e-9


def _attributes(rng, n, a, unknown=0.0):
    """(y_true with a fraction of -1, y_pred, tied y_score), every attribute with a known 0 and 1."""
    y = rng.integers(0, 2, (n, a))
    y[0], y[1] = 0, 1
    y[2:][rng.random((n - 2, a)) < unknown] = -1
    pred = rng.integers(0, 2, (n, a))
    score = rng.integers(0, 5, (n, a)) / 4 + 0.3 * y  # tied, and informative
    return y, pred, score


# At least 2 attributes: scikit-learn reads an (N, 1) y_true as one binary column, not multi-label.
@pytest.mark.parametrize("n, a", [(3, 2), (17, 3), (65, 7), (200, 40)])
def test_match_sklearn_when_every_label_is_known(rng, n, a):
    sk = pytest.importorskip("sklearn.metrics")
    y, pred, score = _attributes(rng, n, a)
    assert metrics.hamming_loss(y, pred) == pytest.approx(sk.hamming_loss(y, pred), abs=TOL)
    np.testing.assert_allclose(metrics.average_precision_per_label(y, score),
                               sk.average_precision_score(y, score, average=None), rtol=0, atol=TOL)
    assert metrics.mean_average_precision(y, score) == pytest.approx(
        sk.average_precision_score(y, score, average="macro"), abs=TOL)
    for average in ("micro", "macro"):
        assert metrics.f1_multilabel(y, pred, average) == pytest.approx(
            sk.f1_score(y, pred, average=average, zero_division=0), abs=TOL), average


def test_unknown_entries_are_left_out(rng):
    sk = pytest.importorskip("sklearn.metrics")
    y, pred, score = _attributes(rng, 60, 5, unknown=0.3)
    known = y >= 0
    assert (~known).sum() > 20  # the case exercises the mask
    assert metrics.hamming_loss(y, pred) == pytest.approx(sk.hamming_loss(y[known], pred[known]), abs=TOL)
    per_label = [sk.average_precision_score(y[known[:, j], j], score[known[:, j], j]) for j in range(5)]
    np.testing.assert_allclose(metrics.average_precision_per_label(y, score), per_label, rtol=0, atol=TOL)
    assert metrics.mean_average_precision(y, score) == pytest.approx(np.mean(per_label), abs=TOL)
    assert metrics.f1_multilabel(y, pred, "micro") == pytest.approx(sk.f1_score(y[known], pred[known]), abs=TOL)
    per_label_f1 = [sk.f1_score(y[known[:, j], j], pred[known[:, j], j], zero_division=0) for j in range(5)]
    assert metrics.f1_multilabel(y, pred, "macro") == pytest.approx(np.mean(per_label_f1), abs=TOL)


def test_by_hand():
    y = np.array([[1, 0, -1],
                  [0, -1, -1],
                  [1, 1, 0]])
    pred = np.array([[1, 1, 1],
                     [1, 0, 0],
                     [0, 1, 0]])
    # Known entries: 6. Wrong among them: (0,1), (1,0), (2,0) -> 3 / 6.
    assert metrics.hamming_loss(y, pred) == 0.5
    # Pooled over known entries: TP (0,0), (2,1) = 2; FP (0,1), (1,0) = 2; FN (2,0) = 1 -> 4 / 7.
    assert metrics.f1_multilabel(y, pred) == pytest.approx(4 / 7, abs=TOL)
    # Per attribute: col 0 TP 1 FP 1 FN 1 -> 1/2; col 1 TP 1 FP 1 -> 2/3; col 2 nothing positive -> 0.
    assert metrics.f1_multilabel(y, pred, "macro") == pytest.approx((1 / 2 + 2 / 3 + 0) / 3, abs=TOL)
    score = np.array([[0.9, 0.2, 0.5],
                      [0.8, 0.1, 0.5],
                      [0.4, 0.7, 0.1]])
    # Col 0: ranking 0.9(+) 0.8(-) 0.4(+): AP = (1 + 2/3) / 2. Col 1: 0.7(+) first of two: 1.
    # Col 2: its only known entry is a negative: undefined (NaN), left out of the mean.
    ap = metrics.average_precision_per_label(y, score)
    np.testing.assert_allclose(ap, [5 / 6, 1.0, np.nan], rtol=0, atol=TOL)
    assert metrics.mean_average_precision(y, score) == pytest.approx((5 / 6 + 1) / 2, abs=TOL)


@pytest.mark.parametrize("call, words", [
    (lambda: metrics.hamming_loss(np.array([[0, 2]]), np.array([[0, 1]])), ["hamming_loss", "'y_true'", "[2]"]),
    (lambda: metrics.hamming_loss(np.array([[0, 1]]), np.array([[0, -1]])), ["hamming_loss", "'y_pred'", "(0, 1)"]),
    (lambda: metrics.hamming_loss(np.array([0, 1]), np.array([0, 1])), ["hamming_loss", "'y_true'", "2-D"]),
    (lambda: metrics.f1_multilabel(np.ones((2, 3)), np.ones((2, 2))), ["f1_multilabel", "'y_pred'", "(2, 3)"]),
    (lambda: metrics.f1_multilabel(np.ones((2, 3)), np.ones((2, 3)), "weighted"), ["f1_multilabel", "'average'"]),
    (lambda: metrics.average_precision_per_label(np.ones((2, 3)), np.ones((3, 3))),
     ["average_precision_per_label", "'y_score'", "(2, 3)", "(3, 3)"]),
    (lambda: metrics.hamming_loss(-np.ones((2, 2)), np.ones((2, 2))), ["hamming_loss", "'y_true'", "known"]),
    (lambda: metrics.mean_average_precision(np.zeros((2, 2)), np.ones((2, 2))),
     ["mean_average_precision", "'y_true'", "positive"]),
], ids=["y_true-2", "y_pred-unknown", "1-D", "shape", "average", "score-shape", "all-unknown", "no-positive"])
def test_bad_input_names_the_function_and_argument(call, words):
    assert_raises_naming(ValueError, call, words)


def test_multilabel_metrics_take_y_true_first():
    for fn in (metrics.hamming_loss, metrics.average_precision_per_label, metrics.mean_average_precision,
               metrics.f1_multilabel):
        assert list(inspect.signature(fn).parameters)[0] == "y_true", fn.__name__
        assert inspect.getdoc(fn) and inspect.signature(fn).return_annotation is not inspect.Signature.empty
