"""Metrics against hand-computed cases (and scikit-learn where it is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import metrics

SCORES = np.array([
    [0.1, 0.7, 0.2],   # label 1: top-1 hit
    [0.5, 0.3, 0.2],   # label 2: last place, hit only at k = 3
    [0.2, 0.3, 0.5],   # label 1: second, hit at k = 2
    [0.6, 0.1, 0.3],   # label 0: top-1 hit
])
LABELS = np.array([1, 2, 1, 0])


def test_accuracy_from_scores_and_predictions():
    assert metrics.accuracy(SCORES, LABELS) == 0.5
    assert metrics.accuracy(np.array([1, 0, 2, 0]), LABELS) == 0.5
    assert metrics.accuracy(np.zeros((0, 3)), np.zeros(0, np.int64)) == 0.0


def test_top_k_accuracy():
    assert [metrics.top_k_accuracy(SCORES, LABELS, k) for k in (1, 2, 3)] == [0.5, 0.75, 1.0]
    # ties count in the label's favour: label 0 ties with class 1 for first place
    assert metrics.top_k_accuracy(np.array([[0.5, 0.5, 0.0]]), np.array([0]), 1) == 1.0
    with pytest.raises(ValueError, match="'k'"):
        metrics.top_k_accuracy(SCORES, LABELS, 0)


def test_confusion_matrix_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0],
                         [0, 1, 0],
                         [1, 0, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, preds), expected)
    assert metrics.confusion_matrix(labels, preds, num_classes=4).shape == (4, 4)
    with pytest.raises(ValueError, match="'preds'"):
        metrics.confusion_matrix(labels, preds + 1, num_classes=3)
    with pytest.raises(ValueError, match="1-D integer"):
        metrics.confusion_matrix(labels.astype(float), preds)


def test_precision_recall_f1_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    r = metrics.precision_recall_f1(labels, preds, 4)
    # class 0: tp 1 of 2 predicted, 1 of 2 true; class 1: 1 of 2 predicted, 1 of 1 true;
    # class 2: 2 of 2 predicted, 2 of 3 true; class 3: never seen -> zeros.
    np.testing.assert_allclose(r["precision"], [0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(r["recall"], [0.5, 1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(r["f1"], [0.5, 2 / 3, 0.8, 0.0])
    np.testing.assert_array_equal(r["support"], [2, 1, 3, 0])
    same = metrics.precision_recall_f1(metrics.confusion_matrix(labels, preds, 4))
    np.testing.assert_allclose(same["f1"], r["f1"])


def test_precision_recall_f1_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    labels, preds = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    r = metrics.precision_recall_f1(labels, preds, 7)
    p, rec, f1, support = sk.precision_recall_fscore_support(labels, preds, labels=range(7), zero_division=0)
    np.testing.assert_allclose(r["precision"], p)
    np.testing.assert_allclose(r["recall"], rec)
    np.testing.assert_allclose(r["f1"], f1)
    np.testing.assert_array_equal(r["support"], support)
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, preds, 7),
                                  sk.confusion_matrix(labels, preds, labels=range(7)))
