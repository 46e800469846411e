"""Linear kernels against the reference. Each output is a dot product of K = in_features (or
batch, for dweight) float32 terms: FLOAT32_RTOL_REDUCTION."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, ODD_SIZES, assert_close
from fastnn import ops
from fastnn import reference as ref

SHAPES = [(n, i, o) for n, i, o in [(1, 1, 1), (3, 7, 17), (17, 33, 65), (65, 17, 3), (128, 784, 256), (33, 300, 10), (7, 1, 65)]]


@pytest.mark.parametrize("n,i,o", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, FLOAT32_RTOL_REDUCTION), (np.float64, FLOAT64_RTOL)])
def test_linear_matches_reference(n, i, o, bias, dtype, rtol, rng):
    x = rng.standard_normal((n, i)).astype(dtype)
    w = rng.standard_normal((o, i)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    g = rng.standard_normal((n, o)).astype(dtype)
    assert_close(ops.linear(x, w, b), ref.linear(x, w, b), rtol, "forward")
    dx, dw, db = ops.linear_backward(x, w, g, bias=bias)
    rdx, rdw, rdb = ref.linear_backward(x, w, g, bias=bias)
    assert_close(dx, rdx, rtol, "dx")
    assert_close(dw, rdw, rtol, "dweight")
    if bias:
        assert_close(db, rdb, rtol, "dbias")
    else:
        assert db is None


def test_linear_backward_accumulates_into_given_grads(rng):
    x = rng.standard_normal((9, 5)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    g = rng.standard_normal((9, 4)).astype(np.float32)
    gw0 = rng.standard_normal((4, 5)).astype(np.float32)
    gb0 = rng.standard_normal(4).astype(np.float32)
    gw, gb = gw0.copy(), gb0.copy()
    _, dw, db = ops.linear_backward(x, w, g, grad_weight=gw, grad_bias=gb, input_grad=False)
    assert dw is gw and db is gb  # in place
    _, rdw, rdb = ref.linear_backward(x, w, g)
    assert_close(gw, gw0 + rdw, FLOAT32_RTOL_REDUCTION, "accumulated dweight")
    assert_close(gb, gb0 + rdb, FLOAT32_RTOL_REDUCTION, "accumulated dbias")


def test_linear_batch_of_zero_rows(rng):
    x = np.zeros((0, 5), dtype=np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    assert ops.linear(x, w).shape == (0, 3)
    _, dw, db = ops.linear_backward(x, w, np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("k", ODD_SIZES + [257, 1025])
def test_linear_deep_reductions(k, rng):
    x = rng.standard_normal((5, k)).astype(np.float32)
    w = rng.standard_normal((6, k)).astype(np.float32)
    assert_close(ops.linear(x, w), ref.linear(x, w), FLOAT32_RTOL_REDUCTION, f"K={k}")
