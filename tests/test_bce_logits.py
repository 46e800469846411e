"""BCE-with-logits against the reference (elementwise terms, mean accumulated in double:
loss to 1e-5 relative; the gradient is elementwise, FLOAT32_RTOL)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL, ODD_SIZES, assert_close
from fastnn import ops
from fastnn import reference as ref


@pytest.mark.parametrize("n", ODD_SIZES)
@pytest.mark.parametrize("classes", [1, 3, 40])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_matches_reference(n, classes, with_pos_weight, rng):
    x = (rng.standard_normal((n, classes)) * 4).astype(np.float32)
    t = (rng.uniform(size=x.shape) > 0.5).astype(np.float32)
    pw = rng.uniform(0.5, 4, size=classes).astype(np.float32) if with_pos_weight else None
    loss, grad = ops.bce_with_logits(x, t, pw)
    loss_ref, grad_ref = ref.bce_with_logits(x, t, pw)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    assert_close(grad, grad_ref, FLOAT32_RTOL, "grad")


def test_bce_soft_targets_and_1d(rng):
    x = rng.standard_normal(33).astype(np.float32)
    t = rng.uniform(size=33).astype(np.float32)
    loss, grad = ops.bce_with_logits(x, t)
    loss_ref, grad_ref = ref.bce_with_logits(x, t)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    assert_close(grad, grad_ref, FLOAT32_RTOL, "grad")


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_bce_stable_for_large_logits(scale):
    x = np.array([[-scale, scale], [scale, -scale]], dtype=np.float32)
    t = np.array([[0, 1], [0, 1]], dtype=np.float32)
    loss, grad = ops.bce_with_logits(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    loss_ref, _ = ref.bce_with_logits(x, t)
    assert loss == pytest.approx(loss_ref, rel=1e-5)


def test_bce_rejects_targets_outside_unit_interval():
    x = np.zeros((2, 2), dtype=np.float32)
    t = np.array([[0, 1], [2, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"fastnn.bce_with_logits: argument 'targets' must lie in \[0, 1\]"):
        ops.bce_with_logits(x, t)
    t[1, 0] = np.nan
    with pytest.raises(ValueError, match="targets"):
        ops.bce_with_logits(x, t)
