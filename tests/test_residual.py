"""nn.Residual: y = block(x) + shortcut(x); gradcheck with identity and learned shortcuts, the
gradient through both paths, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import fastnn
from fastnn import nn


def test_residual_identity_shortcut_gradcheck(rng):
    fastnn.manual_seed(0)
    block = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 5))
    assert fastnn.gradcheck(nn.Residual(block), rng.standard_normal((3, 5)))


def test_residual_conv_block_with_conv_shortcut_gradcheck(rng):
    fastnn.manual_seed(0)
    block = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1)
    )
    shortcut = nn.Conv2d(3, 4, 1, stride=2, bias=False)
    model = nn.Residual(block, shortcut)
    assert fastnn.gradcheck(model, rng.standard_normal((2, 3, 6, 5)))


def test_residual_forward_and_backward_sum_both_paths(rng):
    fastnn.manual_seed(0)
    block, shortcut = nn.Linear(4, 3), nn.Linear(4, 3)
    model = nn.Residual(block, shortcut)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = model(x)
    assert_close(y, block(x) + shortcut(x), 1e-7, "y")
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = model.backward(g)
    expected = g @ (block.weight.data + shortcut.weight.data)
    assert_close(dx, expected, 1e-6, "dx")
    names = [name for name, _ in model.named_parameters()]
    assert names == ["block.weight", "block.bias", "shortcut.weight", "shortcut.bias"]


def test_residual_identity_backward_adds_upstream_gradient(rng):
    model = nn.Residual(nn.Identity())
    x = rng.standard_normal((2, 3))
    assert_close(model(x), 2 * x, 0, "y")
    g = rng.standard_normal((2, 3))
    dx = model.backward(g)
    assert_close(dx, 2 * g, 0, "dx")
    assert dx is not g


def test_residual_rejects_bad_arguments_and_shape_mismatch(rng):
    with pytest.raises(TypeError, match=r"fastnn.nn.Residual: argument 'block' must be a Module; got function"):
        nn.Residual(lambda x: x)
    with pytest.raises(TypeError, match=r"fastnn.nn.Residual: argument 'shortcut'.*got int"):
        nn.Residual(nn.Identity(), 3)
    model = nn.Residual(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"fastnn.nn.Residual: block output shape \(2, 3\) differs from "
                                         r"shortcut output shape \(2, 4\)"):
        model(rng.standard_normal((2, 4)).astype(np.float32))


def test_residual_backward_sums_in_place_without_touching_the_callers_gradient(rng):
    # Nested in a Sequential the block returns a fresh NumPy gradient, which takes the skip
    # path's sum in place; grad_out (the caller's) and the shortcut's gradient must stay as they were.
    fastnn.manual_seed(0)
    linear = nn.Linear(4, 4)
    model = nn.Sequential(nn.Residual(nn.Sequential(linear)), nn.Tanh())
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = model(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    kept = g.copy()
    dx = np.asarray(model.backward(g))
    dh = g.astype(np.float64) * (1 - y.astype(np.float64) ** 2)
    assert_close(dx, dh @ linear.weight.data + dh, 1e-6, "dx")  # float32 sums of 4 products
    np.testing.assert_array_equal(g, kept)
