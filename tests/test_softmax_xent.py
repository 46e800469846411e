"""Softmax family and fused softmax cross-entropy against the reference.

Tolerances: row reductions over C terms in float32; C <= 1000 here, so rounding stays below
FLOAT32_RTOL_REDUCTION (1e-4) relative; the scalar loss is accumulated in double and checked
to 1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, ODD_SIZES, assert_close
from fastnn import ops
from fastnn import reference as ref

SHAPES = [(1, 1), (1, 10), (3, 7), (17, 33), (65, 10), (128, 1000), (7, 65)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, FLOAT32_RTOL_REDUCTION), (np.float64, FLOAT64_RTOL)])
def test_softmax_family_matches_reference(shape, log, dtype, rtol, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    fwd, bwd = (ops.log_softmax, ops.log_softmax_backward) if log else (ops.softmax, ops.softmax_backward)
    rfwd, rbwd = (ref.log_softmax, ref.log_softmax_backward) if log else (ref.softmax, ref.softmax_backward)
    y = fwd(x)
    assert_close(y, rfwd(x), rtol, "forward")
    # Backward at the kernel's own y: dy - sum(dy * y) cancels, so a float64 y would measure
    # forward rounding rather than the backward kernel.
    assert_close(bwd(y, g), rbwd(y, g), rtol, "backward")


@pytest.mark.parametrize("n", ODD_SIZES)
@pytest.mark.parametrize("classes", [1, 2, 10, 33])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
def test_softmax_cross_entropy_matches_reference(n, classes, smoothing, label_dtype, rng):
    x = (rng.standard_normal((n, classes)) * 3).astype(np.float32)
    labels = rng.integers(0, classes, size=n).astype(label_dtype)
    loss, grad = ops.softmax_cross_entropy(x, labels, smoothing)
    loss_ref, grad_ref = ref.softmax_cross_entropy(x, labels, smoothing)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-6)
    assert_close(grad, grad_ref, FLOAT32_RTOL_REDUCTION, "grad")


def test_softmax_cross_entropy_float64_is_tight(rng):
    x = rng.standard_normal((9, 5))
    labels = rng.integers(0, 5, size=9)
    loss, grad = ops.softmax_cross_entropy(x, labels, 0.3)
    loss_ref, grad_ref = ref.softmax_cross_entropy(x, labels, 0.3)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    assert_close(grad, grad_ref, FLOAT64_RTOL, "grad")


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
    assert grad is None and loss > 0


def test_softmax_rows_sum_to_one(rng):
    y = ops.softmax((rng.standard_normal((5, 11)) * 10).astype(np.float32))
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
