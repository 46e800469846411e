"""BCE-with-logits for logits far past exp's range (the kernel against the reference on random
inputs, and its bad targets, are in tests/opinfo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import ops
from fastnn import reference as ref


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_bce_stable_for_large_logits(scale):
    x = np.array([[-scale, scale], [scale, -scale]], dtype=np.float32)
    t = np.array([[0, 1], [0, 1]], dtype=np.float32)
    loss, grad = ops.bce_with_logits(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    loss_ref, _ = ref.bce_with_logits(x, t)
    assert loss == pytest.approx(loss_ref, rel=1e-5)


def test_bce_without_grad(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    t = (x > 0).astype(np.float32)
    loss, grad = ops.bce_with_logits(x, t, compute_grad=False)
    assert grad is None and loss == pytest.approx(ref.bce_with_logits(x, t)[0], rel=1e-5)
