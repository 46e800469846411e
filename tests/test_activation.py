"""Activation special values (their forward and backward against the reference on random inputs
of every size, float32 and float64, are in tests/opinfo.py): finite results for huge inputs, and
ReLU's gradient at exactly zero."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import ops
from fastnn import reference as ref

USES_OUTPUT = {"sigmoid", "tanh"}


def _run(name, x, g):
    y = getattr(ops, name)(x)
    dx = getattr(ops, name + "_backward")(y if name in USES_OUTPUT else x, g)
    return y, dx


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu"])
def test_activation_finite_for_huge_inputs(name):
    x = np.array([-1e30, -1e4, -88.0, 0.0, 88.0, 1e4, 1e30], dtype=np.float32)
    y, dx = _run(name, x, np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(y, getattr(ref, name)(x), rtol=1e-6, atol=1e-30)


def test_relu_gradient_at_zero_is_zero():
    x = np.zeros(3, dtype=np.float32)
    np.testing.assert_array_equal(ops.relu_backward(x, np.ones_like(x)), 0.0)
