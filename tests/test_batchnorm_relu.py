"""Batch norm with the ReLU after it fused in (ops.batch_norm_train / batch_norm_eval
``relu=True``, ops.batch_norm_backward ``relu=True``) and the one-pass training statistics.

Tolerances: the kernels against the float64 reference as in tests/test_batchnorm.py (per-channel
sums in double, so float32 results are a few roundings off: FLOAT32_RTOL; the training dx
measured against the size of its terms, batch_norm_dx_scale). The fused ReLU's mask comes from
the float32 output, the reference's from the exact one: they could differ only where |y| is
within a rounding of 0, which random inputs of these sizes do not produce.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn import reference as ref
from conftest import FLOAT32_RTOL, FLOAT64_RTOL, assert_close, numerical_grad
from opinfo import batch_norm_dx_scale

# BatchNorm1d (N, C) and (N, C, L), BatchNorm2d; batch 2 and more; rows shorter and longer than
# the 16 values from which the AVX2 / AVX-512 row loops take over.
SHAPES = [(2, 3), (9, 5), (4, 3, 7), (2, 4, 5, 5), (3, 5, 17, 9), (65, 3, 4, 4)]
TOL = {np.float32: FLOAT32_RTOL, np.float64: FLOAT64_RTOL}


def _affine(rng, channels, dtype):
    """weight of both signs (a negative weight flips which x the ReLU keeps) and bias."""
    weight = rng.standard_normal(channels) + np.where(np.arange(channels) % 2, -0.5, 0.5)
    return weight.astype(dtype), rng.standard_normal(channels).astype(dtype)


def test_reference_relu_backward_matches_finite_differences(rng):
    x = rng.standard_normal((4, 3, 2, 3)) * 2.0 + 0.5
    weight, bias = _affine(rng, 3, np.float64)
    g = rng.standard_normal(x.shape)
    _, mean, inv_std, _, _ = ref.batch_norm_train(x, weight, bias, None, None)
    dx, dweight, dbias = ref.batch_norm_backward(g, x, weight, mean, inv_std, bias=bias, relu=True)

    def loss(x, weight, bias):
        return np.sum(g * ref.batch_norm_train(x, weight, bias, None, None, relu=True)[0])

    # Piecewise smooth: no y lies within 1e-6 of the kink for these inputs, so central
    # differences are as accurate as for the smooth op (~eps^2 + 1e-16 / eps).
    y = ref.batch_norm_train(x, weight, bias, None, None)[0]
    assert np.abs(y).min() > 1e-4 and (y < 0).any() and (y > 0).any()
    tol = dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, numerical_grad(lambda v: loss(v, weight, bias), x), **tol)
    np.testing.assert_allclose(dweight, numerical_grad(lambda v: loss(x, v, bias), weight), **tol)
    np.testing.assert_allclose(dbias, numerical_grad(lambda v: loss(x, weight, v), bias), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_training_forward_and_backward_match_reference(rng, dtype, shape):
    x = (rng.standard_normal(shape) * 2.0 + 3.0).astype(dtype)
    weight, bias = _affine(rng, shape[1], dtype)
    grad_out = rng.standard_normal(shape).astype(dtype)
    rm, rv = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    y, mean, inv_std = ops.batch_norm_train(x, weight, bias, rm, rv, relu=True)
    want = ref.batch_norm_train(x, weight, bias, np.zeros(shape[1]), np.ones(shape[1]), relu=True)
    assert y.dtype == dtype and (y >= 0).all() and (y == 0).any()
    for got, expected, what in zip((y, mean, inv_std, rm, rv), want, ("y", "mean", "inv_std", "running_mean", "running_var")):
        assert_close(got, expected, TOL[dtype], what)
    dx, dweight, dbias = ops.batch_norm_backward(grad_out, x, weight, mean, inv_std, bias=bias, relu=True)
    want_dx, want_dw, want_db = ref.batch_norm_backward(grad_out, x, weight, mean, inv_std, bias=bias, relu=True)
    scale = batch_norm_dx_scale(grad_out, weight, inv_std)
    assert np.linalg.norm(dx - want_dx) <= TOL[dtype] * scale, "dx"
    assert_close(dweight, want_dw, TOL[dtype], "dweight")
    assert_close(dbias, want_db, TOL[dtype], "dbias")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (4, 3, 7), (2, 4, 5, 5), (3, 2, 6, 6)])
def test_fused_eval_forward_and_backward_match_reference(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    weight, bias = _affine(rng, shape[1], dtype)
    rm, rv = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    y = ops.batch_norm_eval(x, weight, bias, rm, rv, relu=True)
    assert_close(y, ref.batch_norm_eval(x, weight, bias, rm, rv, relu=True), TOL[dtype], "y")
    grad_out = rng.standard_normal(shape).astype(dtype)
    inv_std = ((rv + 1e-5) ** -0.5).astype(dtype)
    got = ops.batch_norm_backward(grad_out, x, weight, rm, inv_std, training=False, bias=bias, relu=True)
    want = ref.batch_norm_backward(grad_out, x, weight, rm, inv_std, training=False, bias=bias, relu=True)
    for g, w, what in zip(got, want, ("dx", "dweight", "dbias")):
        assert_close(g, w, TOL[dtype], what)


@pytest.mark.parametrize("shape", [(33, 3, 5), (64, 3, 4, 4), (8, 2, 40)])
def test_fused_backward_masks_exactly_where_the_stored_output_is_positive(rng, shape):
    # Many outputs exactly at the ReLU's kink: x takes 5 values, and each channel's bias puts
    # one of them at y == 0 (or at a rounding residue of either sign, where the compiler fuses
    # the multiply-add). Integer dy makes every dbias sum exact in any order, so dbias equals
    # the unfused ReLU-then-batch-norm backward's bit for bit exactly when the masks agree.
    channels = shape[1]
    x = rng.integers(-2, 3, shape).astype(np.float32)
    weight, _ = _affine(rng, channels, np.float32)
    _, mean, inv_std = ops.batch_norm_train(x, weight, None, None, None)
    xhat = ((np.float32(1) - mean) * (inv_std * weight)).astype(np.float32)
    bias = -xhat  # y(x = 1) == 0 when computed as (x - mean) * scale + bias
    y, mean2, _ = ops.batch_norm_train(x, weight, bias, None, None, relu=True)
    np.testing.assert_array_equal(mean2, mean)
    at_kink = np.abs(ops.batch_norm_train(x, weight, bias, None, None)[0][x == 1])
    assert at_kink.size > x.size // 10 and at_kink.max() < 1e-6
    grad_out = rng.integers(-3, 4, shape).astype(np.float32)
    fused = ops.batch_norm_backward(grad_out, x, weight, mean, inv_std, bias=bias, relu=True)
    unfused = ops.batch_norm_backward(ops.relu_backward(y, grad_out), x, weight, mean, inv_std)
    np.testing.assert_array_equal(fused[2], unfused[2])
    # The other outputs sum non-integers: the same terms, possibly in another order.
    assert_close(fused[1], unfused[1], FLOAT32_RTOL, "dweight")
    assert np.linalg.norm(fused[0] - unfused[0]) <= FLOAT32_RTOL * batch_norm_dx_scale(grad_out, weight, inv_std)
    # And the forward's ReLU is the standalone one on the unfused output, bit for bit.
    np.testing.assert_array_equal(y, ops.relu(ops.batch_norm_train(x, weight, bias, None, None)[0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_one_pass_statistics_keep_their_accuracy_under_a_large_mean(rng, dtype, offset):
    # var = E[d^2] - E[d]^2 with d = x - (the channel's first value): the deviations are O(std),
    # so nothing cancels however large the mean. The textbook E[x^2] - E[x]^2 in double loses
    # offset^2 / var * 1e-16 (1e-8 and 1e-4 relative here), far past the float64 bound below.
    x = (offset + rng.standard_normal((16, 3, 9, 7))).astype(dtype)
    weight, bias = _affine(rng, 3, dtype)
    y, mean, inv_std = ops.batch_norm_train(x, weight, bias, None, None)
    _, want_mean, want_inv_std, _, _ = ref.batch_norm_train(x, weight, bias, None, None)
    # The statistics are rounded to dtype once: a float32 ulp (6e-8), float64 to ~1e-15.
    stat_tol = 1e-7 if dtype == np.float32 else 1e-13
    assert_close(mean, want_mean, stat_tol, "mean")
    assert_close(inv_std, want_inv_std, stat_tol * 10, "inv_std")
    # y is normalised with the mean rounded to dtype (the statistics backward sees): |x - mean|
    # ~ 1 carries the mean's absolute rounding, offset * ulp / 2, times inv_std * |weight|.
    want_y = ref.batch_norm_eval(x, weight, bias, mean, 1.0 / inv_std.astype(np.float64) ** 2 - 1e-5)
    ulp = np.finfo(dtype).eps
    bound = offset * ulp * np.abs(weight).max() * inv_std.max() + 4 * ulp * np.abs(want_y).max()
    assert np.abs(y - want_y).max() <= bound


def test_statistics_do_not_depend_on_thread_count_with_relu(rng):
    x = (rng.standard_normal((8, 16, 32, 32)) + 3.0).astype(np.float32)
    weight, bias = _affine(rng, 16, np.float32)
    grad_out = rng.standard_normal(x.shape).astype(np.float32)
    saved = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            y, mean, inv_std = ops.batch_norm_train(x, weight, bias, None, None, relu=True)
            results.append((y, mean, inv_std,
                            *ops.batch_norm_backward(grad_out, x, weight, mean, inv_std, bias=bias, relu=True)))
    finally:
        fastnn.set_num_threads(saved)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_relu_output_keeps_nan(rng):
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    x[1, 0, 2] = np.nan
    y = ops.batch_norm_eval(x, None, None, rm, rv, relu=True)
    assert np.isnan(y[1, 0, 2]) and np.isnan(y).sum() == 1
    np.testing.assert_array_equal(y, ops.relu(ops.batch_norm_eval(x, None, None, rm, rv)))
