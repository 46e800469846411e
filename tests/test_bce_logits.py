"""BCE-with-logits for logits far past exp's range, and unknown targets (-1) in (N, A) attribute
batches (the kernel against the reference on random inputs, and its bad targets, are in
tests/opinfo.py)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import assert_close, numerical_grad
from fastnn import nn, ops
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


# ---- unknown targets (-1) ------------------------------------------------------------------------

# Finite differences of the float64 reference (central, step 1e-6): truncation and rounding
# errors about 1e-9 relative, far inside this bound.
GRAD_RTOL = 1e-6


def _attribute_batch(rng, n=6, attrs=4, unknown=0.3):
    """(logits, 0/1 targets with -1 for unknown, pos_weight per attribute), float64."""
    x = rng.standard_normal((n, attrs)) * 3
    t = (rng.uniform(size=x.shape) > 0.5).astype(float)
    t[rng.uniform(size=x.shape) < unknown] = -1
    t[0, 0] = 1.0
    return x, t, rng.uniform(0.5, 3, size=attrs)


def test_reference_masked_matches_definition(rng):
    # Independent of the reference's masking: PyTorch's unmasked definition written out over the
    # known entries only (a 1-D selection, each with its attribute's pos_weight).
    x, t, pw = _attribute_batch(rng)
    known = t != -1
    xs, ts, ps = x[known], t[known], np.broadcast_to(pw, x.shape)[known]
    s = 1 / (1 + np.exp(-xs))
    expected = np.mean(-(ps * ts * np.log(s) + (1 - ts) * np.log(1 - s)))
    loss, grad = ref.bce_with_logits(x, t, pw)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert np.all(grad[~known] == 0)


def test_reference_masked_grad_matches_finite_differences(rng):
    x, t, pw = _attribute_batch(rng)
    _, analytic = ref.bce_with_logits(x, t, pw)
    numeric = numerical_grad(lambda v: ref.bce_with_logits(v, t, pw)[0], x)
    assert_close(analytic, numeric, GRAD_RTOL, "masked bce_with_logits")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_equals_the_known_entries_alone(threads, dtype, rng, restore_threads):
    # The kernel on (N, A) with unknowns against the same kernel on only the known entries, each
    # with its attribute's pos_weight (a 1-D batch of per-element weights: classes = 1 would not
    # carry them, so the known entries are laid out as one row of their own columns): the loss
    # must agree to float32 rounding (1e-5), unknown entries' gradients must be exactly 0.
    x, t, pw = (a.astype(dtype) for a in _attribute_batch(rng, n=5_000, attrs=7))
    known = t != -1
    fastnn.set_num_threads(threads)
    loss, grad = ops.bce_with_logits(x, t, pw)
    alone, grad_alone = ops.bce_with_logits(
        np.ascontiguousarray(x[known][None, :]), np.ascontiguousarray(t[known][None, :]),
        np.ascontiguousarray(np.broadcast_to(pw, x.shape)[known]))
    assert loss == pytest.approx(alone, rel=1e-5)
    assert np.all(grad[~known] == 0)
    np.testing.assert_allclose(grad[known], grad_alone[0], rtol=1e-5, atol=0)


def test_all_unknown_gives_zero_loss_and_gradient():
    x = np.ones((3, 2), np.float32)
    loss, grad = ops.bce_with_logits(x, np.full((3, 2), -1, np.float32))
    assert loss == 0.0 and grad.dtype == np.float32 and np.all(grad == 0)


def test_layer_with_unknown_targets(rng):
    x, t, pw = (a.astype(np.float32) for a in _attribute_batch(rng))
    layer = nn.BCEWithLogits(pos_weight=pw)
    loss = layer(x, t)
    want_loss, want_grad = ref.bce_with_logits(x, t, pw)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert_close(layer.backward(), want_grad, 1e-5, "BCEWithLogits.backward with unknowns")
