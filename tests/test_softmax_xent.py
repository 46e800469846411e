"""Softmax family and fused softmax cross-entropy: special values and properties (the kernels
against the reference on random inputs, float32 and float64, are in tests/opinfo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import ops
from fastnn import reference as ref


@pytest.mark.parametrize("scale", [1e4, 1e20, 3e38])
def test_softmax_cross_entropy_stable_for_huge_logits(scale):
    x = np.array([[scale, 0.0, -scale], [-scale, scale, 0.5 * scale]], dtype=np.float32)
    labels = np.array([0, 2])
    loss, grad = ops.softmax_cross_entropy(x, labels, 0.1)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    loss_ref, grad_ref = ref.softmax_cross_entropy(x, labels, 0.1)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    np.testing.assert_allclose(grad, grad_ref, atol=1e-6)
    assert np.all(np.isfinite(ops.softmax(x)))
    # log_softmax is finite wherever its true value fits in float32 (at 3e38 a spread of 6e38
    # does not, and -inf is then the correctly rounded answer).
    with np.errstate(over="ignore"):
        expected = ref.log_softmax(x).astype(np.float32)
    np.testing.assert_allclose(ops.log_softmax(x), expected, rtol=1e-6)


def test_softmax_cross_entropy_without_grad(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    loss, grad = ops.softmax_cross_entropy(x, np.array([0, 1, 2, 0]), compute_grad=False)
    assert grad is None and loss == pytest.approx(ref.softmax_cross_entropy(x, [0, 1, 2, 0])[0], rel=1e-5)


def test_softmax_rows_sum_to_one(rng):
    y = ops.softmax((rng.standard_normal((5, 11)) * 10).astype(np.float32))
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
