"""The reference (the spec) against finite differences, in float64.

Central differences with eps = 1e-6 have truncation error O(eps^2 * f''') and rounding error
O(1e-16 / eps) ~ 1e-10, so agreement to 1e-6 relative proves the analytic backward formulas.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close, numerical_grad
from fastnn import reference as ref

GRAD_RTOL = 1e-6


def _away_from_zero(rng, shape, margin=1e-3):
    """Random values at least `margin` from 0, so kinks (ReLU) are not straddled by eps."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, margin, x)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
def test_activation_backward_matches_finite_differences(name, rng):
    x = _away_from_zero(rng, (3, 7))
    g = rng.standard_normal(x.shape)
    fwd = getattr(ref, name)
    bwd = getattr(ref, name + "_backward")
    saved = fwd(x) if name in ("sigmoid", "tanh") else x
    analytic = bwd(saved, g)
    numeric = numerical_grad(lambda v: float(np.sum(g * fwd(v))), x)
    assert_close(analytic, numeric, GRAD_RTOL, name)


def test_leaky_relu_slope_is_used(rng):
    x = _away_from_zero(rng, (4, 5))
    g = rng.standard_normal(x.shape)
    analytic = ref.leaky_relu_backward(x, g, 0.2)
    numeric = numerical_grad(lambda v: float(np.sum(g * ref.leaky_relu(v, 0.2))), x)
    assert_close(analytic, numeric, GRAD_RTOL, "leaky_relu(0.2)")


@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_matches_finite_differences(log, rng):
    x = rng.standard_normal((4, 6)) * 3
    g = rng.standard_normal(x.shape)
    fwd = ref.log_softmax if log else ref.softmax
    bwd = ref.log_softmax_backward if log else ref.softmax_backward
    analytic = bwd(fwd(x), g)
    numeric = numerical_grad(lambda v: float(np.sum(g * fwd(v))), x)
    assert_close(analytic, numeric, GRAD_RTOL, "log_softmax" if log else "softmax")


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_softmax_cross_entropy_grad_matches_finite_differences(smoothing, rng):
    x = rng.standard_normal((5, 7)) * 2
    labels = rng.integers(0, 7, size=5)
    _, analytic = ref.softmax_cross_entropy(x, labels, smoothing)
    numeric = numerical_grad(lambda v: ref.softmax_cross_entropy(v, labels, smoothing)[0], x)
    assert_close(analytic, numeric, GRAD_RTOL, "softmax_cross_entropy")


def test_softmax_cross_entropy_matches_definition(rng):
    # Independent transcription of PyTorch's definition with explicit probabilities.
    x = rng.standard_normal((3, 4))
    labels = np.array([0, 3, 1])
    eps = 0.2
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    nll = -np.log(p[np.arange(3), labels])
    smooth = -np.log(p).mean(1)
    expected = ((1 - eps) * nll + eps * smooth).mean()
    loss, _ = ref.softmax_cross_entropy(x, labels, eps)
    assert loss == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_with_logits_grad_matches_finite_differences(with_pos_weight, rng):
    x = rng.standard_normal((4, 3)) * 3
    t = rng.uniform(0, 1, size=x.shape)
    pw = rng.uniform(0.5, 3, size=3) if with_pos_weight else None
    _, analytic = ref.bce_with_logits(x, t, pw)
    numeric = numerical_grad(lambda v: ref.bce_with_logits(v, t, pw)[0], x)
    assert_close(analytic, numeric, GRAD_RTOL, "bce_with_logits")


def test_bce_with_logits_matches_definition(rng):
    x = rng.standard_normal((2, 3))
    t = (rng.uniform(size=x.shape) > 0.5).astype(float)
    pw = np.array([1.0, 2.0, 0.5])
    s = 1 / (1 + np.exp(-x))
    expected = np.mean(-(pw * t * np.log(s) + (1 - t) * np.log(1 - s)))
    assert ref.bce_with_logits(x, t, pw)[0] == pytest.approx(expected, rel=1e-12)


def test_linear_backward_matches_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((4, 5))
    b = rng.standard_normal(4)
    g = rng.standard_normal((3, 4))
    dx, dw, db = ref.linear_backward(x, w, g)
    assert_close(dx, numerical_grad(lambda v: float(np.sum(g * ref.linear(v, w, b))), x), GRAD_RTOL, "dx")
    assert_close(dw, numerical_grad(lambda v: float(np.sum(g * ref.linear(x, v, b))), w), GRAD_RTOL, "dw")
    assert_close(db, numerical_grad(lambda v: float(np.sum(g * ref.linear(x, w, v))), b), GRAD_RTOL, "db")


def test_matmul_reference_transposes(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((5, 4))
    c = rng.standard_normal((3, 5))
    out = ref.matmul(a, b, trans_b=True, alpha=2.0, beta=0.5, out=c)
    expected = np.einsum("ik,jk->ij", a, b) * 2.0 + 0.5 * c
    np.testing.assert_allclose(out, expected, rtol=1e-12)
