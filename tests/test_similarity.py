"""The similarity family's own checks (the kernels against the reference on random inputs, odd
shapes, ties and bad input are registry entries in tests/opinfo_similarity.py): the reference
against the definitions and finite differences, similarity_topk against topk of the full matrix,
both thread paths, the metric's default order, and gradients written rather than accumulated."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import assert_close, numerical_grad
from fastnn import ops
from fastnn import reference as ref

METRICS = ("cosine", "dot", "sqeuclidean")
# Central finite differences of the float64 reference with step 1e-6: truncation and rounding
# errors about 1e-9 relative, far inside this bound.
GRAD_RTOL = 1e-6


# ---- the reference is the spec ---------------------------------------------------------------


def test_reference_matches_definitions(rng):
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((5, 6)) * 3
    # Written independently of the reference: per-pair loops over the textbook formulas.
    cos = np.array([[x @ y / (np.linalg.norm(x) * np.linalg.norm(y)) for y in b] for x in a])
    sq = np.array([[np.sum((x - y) ** 2) for y in b] for x in a])
    np.testing.assert_allclose(ref.pairwise_similarity(a, b, "cosine"), cos, rtol=1e-12)
    np.testing.assert_allclose(ref.pairwise_similarity(a, b, "dot"), a @ b.T, rtol=1e-12)
    np.testing.assert_allclose(ref.pairwise_similarity(a, b, "sqeuclidean"), sq, rtol=1e-10)
    # A zero row: F.normalize leaves it zero, so its cosines are 0 (not NaN).
    a[0] = 0
    assert np.all(ref.pairwise_similarity(a, b, "cosine")[0] == 0)


@pytest.mark.parametrize("metric", METRICS)
def test_reference_backward_matches_finite_differences(metric, rng):
    a, b, g = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((3, 5))
    da, db = ref.pairwise_similarity_backward(g, a, b, metric)
    loss = lambda x, y: float(np.sum(g * ref.pairwise_similarity(x, y, metric)))  # noqa: E731
    assert_close(da, numerical_grad(lambda x: loss(x, b), a), GRAD_RTOL, f"{metric} da")
    assert_close(db, numerical_grad(lambda y: loss(a, y), b), GRAD_RTOL, f"{metric} db")


def test_reference_topk_rule():
    # Written out by hand: NaN first when largest, last otherwise; ties to the lower column.
    x = np.array([[1.0, 3.0, np.nan, 3.0, -0.0, 0.0]])
    values, indices = ref.topk(x, 6)
    assert indices.tolist() == [[2, 1, 3, 0, 4, 5]] and indices.dtype == np.int64
    assert ref.topk(x, 6, largest=False)[1].tolist() == [[4, 5, 0, 1, 3, 2]]


# ---- kernels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_similarity_topk_is_topk_of_the_full_matrix_on_both_thread_paths(metric, rng, restore_threads):
    # 200 query rows (4 blocks of 64), 3,000 gallery rows (3 column tiles of 1,024) and enough
    # work for 2 threads. The blocked path multiplies the same operands with the same GEMM, which
    # sums every element in the same order whatever the blocking and thread count: the results
    # are bitwise those of topk(pairwise_similarity(...)), the same on 1 and 2 threads.
    q = rng.standard_normal((200, 16)).astype(np.float32)
    g = rng.standard_normal((3_000, 16)).astype(np.float32)
    results = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        full = ops.topk(ops.pairwise_similarity(q, g, metric), 5, largest=metric != "sqeuclidean")
        blocked = ops.similarity_topk(q, g, 5, metric)
        for got, want in zip(blocked, full):
            np.testing.assert_array_equal(got, want)
        results.append(blocked)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    # And the float64 reference picks the same columns (random data: no near-ties).
    want_values, want_indices = ref.similarity_topk(q, g, 5, metric)
    np.testing.assert_array_equal(results[0][1], want_indices)
    assert_close(results[0][0], want_values, 1e-5, f"{metric} values")


@pytest.mark.parametrize("k", [3, 40])  # the insertion path and the partial-sort path (k > 32)
def test_topk_on_both_thread_paths(k, rng, restore_threads):
    # 300 x 500 scores with ties (integers) are enough work for 2 threads; the rows are split
    # between them, each computed alone: identical results, equal to the reference.
    scores = rng.integers(0, 50, size=(300, 500)).astype(np.float64)
    want = ref.topk(scores, k)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        values, indices = ops.topk(scores, k)
        np.testing.assert_array_equal(indices, want[1])
        np.testing.assert_array_equal(values, want[0])


def test_sqeuclidean_ranks_nearest_first_by_default(rng):
    q = rng.standard_normal((6, 5)).astype(np.float32)
    g = np.concatenate([q[::-1] + 1e-3, rng.standard_normal((20, 5)).astype(np.float32) + 5])
    values, indices = ops.similarity_topk(q, g, 2, "sqeuclidean")
    assert indices[:, 0].tolist() == [5, 4, 3, 2, 1, 0]  # each query's own near copy
    assert np.all(values[:, 0] <= values[:, 1])
    farthest = ops.similarity_topk(q, g, 1, "sqeuclidean", largest=True)[1]
    assert np.all(farthest >= 6)


def test_backward_writes_new_gradients(rng):
    # No parameters: both gradients are new arrays, the same on a second call (nothing summed into).
    a, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    g = rng.standard_normal((4, 6)).astype(np.float32)
    first = ops.pairwise_similarity_backward(g, a, b, "sqeuclidean")
    second = ops.pairwise_similarity_backward(g, a, b, "sqeuclidean")
    for x, y, like in zip(first, second, (a, b)):
        assert x is not y and x.shape == like.shape
        np.testing.assert_array_equal(x, y)


def test_duplicate_rows_have_zero_distance_and_no_gradient_through_the_clamp():
    # Equal rows: |a|^2 + |b|^2 - 2ab may round below 0; the clamp makes it 0 and passes nothing.
    a = np.array([[0.1, 0.7, -0.3]], np.float32)
    d = ops.pairwise_similarity(a, a.copy(), "sqeuclidean")
    assert d.shape == (1, 1) and 0 <= d[0, 0] <= 1e-6
    da, db = ops.pairwise_similarity_backward(np.ones((1, 1), np.float32), a, a.copy(), "sqeuclidean")
    want_da, want_db = ref.pairwise_similarity_backward(np.ones((1, 1)), a, a, "sqeuclidean")
    # Exactly equal rows: the true gradient is 2(a - b) = 0 whichever side of the clamp.
    assert np.all(np.abs(da) <= 1e-6) and np.all(np.abs(db) <= 1e-6)
    assert np.all(want_da == 0) and np.all(want_db == 0)
