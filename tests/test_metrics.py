"""Metrics against hand-computed cases (and scikit-learn where it is installed)."""

from __future__ import annotations

import re

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
    assert metrics.accuracy(LABELS, SCORES) == 0.5
    assert metrics.accuracy(LABELS, np.array([1, 0, 2, 0])) == 0.5
    assert metrics.accuracy(np.zeros(0, np.int64), np.zeros((0, 3))) == 0.0


def test_top_k_accuracy():
    assert [metrics.top_k_accuracy(LABELS, SCORES, k) for k in (1, 2, 3)] == [0.5, 0.75, 1.0]
    # ties count in the label's favour: label 0 ties with class 1 for first place
    assert metrics.top_k_accuracy(np.array([0]), np.array([[0.5, 0.5, 0.0]]), 1) == 1.0
    with pytest.raises(ValueError, match="'k'"):
        metrics.top_k_accuracy(LABELS, SCORES, 0)


def test_confusion_matrix_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0],
                         [0, 1, 0],
                         [1, 0, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, preds), expected)
    assert metrics.confusion_matrix(labels, preds, num_classes=4).shape == (4, 4)
    with pytest.raises(ValueError, match="'y_pred'"):
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


def test_every_metric_takes_y_true_first_like_scikit_learn():
    import inspect

    for fn in (metrics.accuracy, metrics.top_k_accuracy, metrics.top_k_correct, metrics.confusion_matrix,
               metrics.precision_recall_f1):
        assert list(inspect.signature(fn).parameters)[0] == "y_true", fn.__name__


def test_top_k_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    labels, scores = rng.integers(0, 5, 300), rng.standard_normal((300, 5))
    for k in (1, 2, 4):
        assert metrics.top_k_accuracy(labels, scores, k) == pytest.approx(
            sk.top_k_accuracy_score(labels, scores, k=k, labels=range(5)))
    assert metrics.accuracy(labels, scores) == pytest.approx(sk.accuracy_score(labels, scores.argmax(1)))


@pytest.mark.parametrize("call", [
    lambda: metrics.accuracy(SCORES, LABELS),
    lambda: metrics.top_k_accuracy(SCORES, LABELS, 2),
    lambda: metrics.top_k_correct(SCORES, LABELS, 2).mean(),
    lambda: metrics.accuracy(scores_or_predictions=SCORES, labels=LABELS),
    lambda: metrics.top_k_accuracy(scores=SCORES, labels=LABELS, k=2),
], ids=["accuracy", "top_k_accuracy", "top_k_correct", "accuracy-keywords", "top_k-keywords"])
def test_old_scores_first_order_still_works_with_a_deprecation_warning(call):
    with pytest.warns(DeprecationWarning) as caught:  # every warning, so none leaks out
        old = call()
    assert any(re.search("y_true|swap", str(w.message)) for w in caught)
    assert old in (0.5, 0.75)


def test_old_keyword_names_of_confusion_matrix_still_work_with_a_deprecation_warning():
    labels, preds = np.array([0, 1, 1]), np.array([0, 1, 0])
    with pytest.warns(DeprecationWarning) as caught:
        old = metrics.confusion_matrix(labels=labels, preds=preds)
    messages = [str(w.message) for w in caught]
    assert any("'labels' is now called 'y_true'" in m for m in messages)
    assert any("'preds' is now called 'y_pred'" in m for m in messages)
    np.testing.assert_array_equal(old, metrics.confusion_matrix(labels, preds))
    with pytest.warns(DeprecationWarning):
        r = metrics.precision_recall_f1(labels_or_confusion=old)
    np.testing.assert_array_equal(r["support"], [1, 2])
    with pytest.raises(TypeError, match="not also"):
        metrics.confusion_matrix(labels, y_true=labels, labels=labels)


def test_new_order_gives_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.accuracy(LABELS, SCORES)
        metrics.accuracy(LABELS, np.array([1, 0, 2, 0]))
        metrics.top_k_accuracy(LABELS, SCORES, 2)
        metrics.confusion_matrix(LABELS, np.array([1, 0, 2, 0]))
