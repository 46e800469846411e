"""Pooling: max_pool2d, avg_pool2d, global_avg_pool2d: the reference against finite differences,
what is specific to the kernels (tie and NaN rules, padding, the 2x2 fast paths at every SIMD
level, thread-count independence) and the layers. The kernels against the reference on a grid of
windows, and their bad input, are the pooling entries of tests/opinfo.py.

Tolerances: max pooling copies input values and picks the same index as the reference, so its
forward must match exactly; its backward adds at most ceil(k/s)^2 float32 terms per input, and
average pooling sums k_h * k_w terms: both stay within FLOAT32_RTOL (a few ulps) in relative
norm. Global average pooling sums in double, so FLOAT32_RTOL holds for any plane size.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops
from fastnn import reference as ref
from conftest import (
    FLOAT32_RTOL,
    FLOAT64_RTOL,
    SIMD_LEVELS,
    assert_close,
    assert_raises_naming,
    numerical_grad,
    run_tests_at_simd_level,
)

RTOL = {np.float32: FLOAT32_RTOL, np.float64: FLOAT64_RTOL}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _windows(shape, kernel_size, stride, padding):
    """Yield (oh, ow, rows, cols): the real input rows/cols under each output's window."""
    _, _, H, W = shape
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(kernel_size if stride is None else stride)
    for oh in range((H + 2 * ph - kh) // sh + 1):
        for ow in range((W + 2 * pw - kw) // sw + 1):
            h0, w0 = oh * sh - ph, ow * sw - pw
            yield oh, ow, range(max(h0, 0), min(h0 + kh, H)), range(max(w0, 0), min(w0 + kw, W))


def _near_kink_inputs(x, kernel_size, stride, padding, margin):
    """Inputs in a window whose two largest values are within `margin`: a max-pool kink."""
    near = np.zeros(x.shape, dtype=bool)
    for _, _, rows, cols in _windows(x.shape, kernel_size, stride, padding):
        block = x[:, :, rows.start : rows.stop, cols.start : cols.stop].reshape(*x.shape[:2], -1)
        top2 = np.sort(block, axis=-1)[..., -2:]
        gap_small = (
            (top2[..., 1] - top2[..., 0] < margin) if block.shape[-1] > 1 else np.zeros(x.shape[:2], bool)
        )
        near[:, :, rows.start : rows.stop, cols.start : cols.stop] |= gap_small[:, :, None, None]
    return near


# --- the reference against finite differences (float64) --------------------------------------


@pytest.mark.parametrize(
    "shape, kernel_size, stride, padding", [((2, 2, 5, 5), 3, 2, 1), ((1, 2, 4, 5), (2, 3), (2, 1), (1, 0))]
)
def test_reference_max_pool2d_matches_finite_differences_away_from_kinks(
    rng, shape, kernel_size, stride, padding
):
    eps = 1e-6
    x = rng.standard_normal(shape)
    x[0, 0, 0, :2] = x.max() + 1.0  # a deliberate tie for a window's max: a kink, skipped
    y, indices = ref.max_pool2d(x, kernel_size, stride, padding)
    g = rng.standard_normal(y.shape)
    analytic = ref.max_pool2d_backward(g, indices, shape)
    numeric = numerical_grad(lambda v: np.sum(g * ref.max_pool2d(v, kernel_size, stride, padding)[0]), x, eps)
    skip = _near_kink_inputs(x, kernel_size, stride, padding, margin=10 * eps)
    assert skip[0, 0, 0, 0] and skip.mean() < 0.5
    np.testing.assert_allclose(analytic[~skip], numeric[~skip], rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "shape, kernel_size, stride, padding", [((2, 2, 5, 5), 3, 2, 1), ((1, 2, 4, 5), (2, 3), (2, 1), (1, 0))]
)
def test_reference_avg_pool2d_matches_finite_differences(rng, shape, kernel_size, stride, padding):
    x = rng.standard_normal(shape)
    g = rng.standard_normal(ref.avg_pool2d(x, kernel_size, stride, padding).shape)
    analytic = ref.avg_pool2d_backward(g, shape, kernel_size, stride, padding)
    numeric = numerical_grad(lambda v: np.sum(g * ref.avg_pool2d(v, kernel_size, stride, padding)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-8)


def test_reference_global_avg_pool2d_matches_finite_differences(rng):
    x = rng.standard_normal((2, 3, 3, 4))
    g = rng.standard_normal((2, 3))
    numeric = numerical_grad(lambda v: np.sum(g * ref.global_avg_pool2d(v)), x)
    np.testing.assert_allclose(ref.global_avg_pool2d_backward(g, x.shape), numeric, rtol=0, atol=1e-8)


def test_reference_avg_pool2d_counts_padding_as_zero():
    # 2x2 ones, kernel 3, padding 1: every window holds all 4 ones and 5 zeros of padding.
    y = ref.avg_pool2d(np.ones((1, 1, 2, 2)), 3, 1, 1)
    np.testing.assert_allclose(y, np.full((1, 1, 2, 2), 4 / 9))


# --- kernels against the reference ----------------------------------------------------------


def test_max_pool2d_int32_indices_agree_with_int64(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    y64, i64 = ops.max_pool2d(x, 3, 2, 1)
    y32, i32 = ops.max_pool2d(x, 3, 2, 1, index_dtype=np.int32)
    assert i32.dtype == np.int32
    np.testing.assert_array_equal(i32, i64)
    g = rng.standard_normal(y64.shape).astype(np.float32)
    np.testing.assert_array_equal(
        ops.max_pool2d_backward(g, i32, x.shape), ops.max_pool2d_backward(g, i64, x.shape)
    )


def test_max_pool2d_padding_never_wins():
    # All inputs negative: a zero from padding would win if padding were not -inf.
    x = -1.0 - np.arange(2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5)
    y, _ = ops.max_pool2d(x, 3, 2, 1)
    assert (y < 0).all()
    np.testing.assert_array_equal(y, ref.max_pool2d(x, 3, 2, 1)[0])


def test_max_pool2d_propagates_nan_from_its_first_occurrence():
    x = np.array([[[[1.0, np.nan, 3.0, 2.0], [5.0, np.nan, 7.0, 8.0]]]], dtype=np.float32)
    y, indices = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 8.0
    np.testing.assert_array_equal(indices, [[[[1, 7]]]])
    np.testing.assert_array_equal(indices, ref.max_pool2d(x, 2)[1])


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool2d_ties_send_each_gradient_to_exactly_one_input(rng, kernel_size, stride, padding):
    # Few distinct values: most windows hold ties (and one plane is constant).
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float32)
    x[1, 1] = 5.0
    y, indices = ops.max_pool2d(x, kernel_size, stride, padding)
    np.testing.assert_array_equal(
        indices, ref.max_pool2d(x, kernel_size, stride, padding)[1]
    )  # first in scan order
    for n, c, oh, ow in np.ndindex(*y.shape):
        one_hot = np.zeros_like(y)
        one_hot[n, c, oh, ow] = 1.0
        dx = ops.max_pool2d_backward(one_hot, indices, x.shape)
        receivers = np.argwhere(dx != 0)
        assert len(receivers) == 1, f"output {(n, c, oh, ow)} sent its gradient to {len(receivers)} inputs"
        h, w = receivers[0][2:]
        assert x[n, c, h, w] == y[n, c, oh, ow]


# 2x2 windows with stride 2 and no padding take the vectorised fast paths (max: float32; avg:
# both dtypes): odd H or W (the last row / column belongs to no window), rows shorter and longer
# than a vector, a single window, a LeNet-sized plane.
# Rows of 8 or more outputs take the AVX2 kernel where the CPU has it: whole vectors, a last
# step of 1-7 outputs (35 = 2 x 16 + 3 columns, odd), and a plane whose last row is the last
# element of the array (its last step is stored element by element, not as a whole vector).
FAST_2X2_SHAPES = [(2, 3, 7, 9), (1, 2, 8, 5), (1, 1, 2, 2), (1, 1, 3, 3), (2, 4, 28, 28), (1, 2, 5, 70),
                   (1, 3, 9, 35), (1, 1, 2, 16)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", FAST_2X2_SHAPES)
def test_2x2_stride_2_pools_match_reference(rng, dtype, index_dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y, indices = ops.max_pool2d(x, 2, index_dtype=index_dtype)
    y_ref, indices_ref = ref.max_pool2d(x, 2)
    assert indices.dtype == index_dtype
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(y, y_ref.astype(dtype))
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.max_pool2d_backward(g, indices, shape)
    np.testing.assert_array_equal(dx, ref.max_pool2d_backward(g, indices_ref, shape).astype(dtype))
    assert_close(ops.avg_pool2d(x, 2), ref.avg_pool2d(x, 2), RTOL[dtype], "avg_pool2d y")
    dx = ops.avg_pool2d_backward(g, shape, 2)
    assert_close(dx, ref.avg_pool2d_backward(g, shape, 2), RTOL[dtype], "avg_pool2d dx")
    if shape[2] % 2:
        assert (dx[:, :, -1, :] == 0).all()  # the dropped row gets no gradient
    if shape[3] % 2:
        assert (dx[:, :, :, -1] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_2x2_max_pool_ties_and_nans_follow_scan_order(rng, dtype):
    # Few distinct values: most windows tie; every 2-of-4 tie pattern occurs in a 33x33 plane.
    x = rng.integers(0, 2, size=(3, 5, 33, 33)).astype(dtype)
    y, indices = ops.max_pool2d(x, 2)
    np.testing.assert_array_equal(indices, ref.max_pool2d(x, 2)[1])
    # NaN after a larger number (bottom-right), two NaNs (the first wins), NaN first.
    x = np.array([[[[1.0, 9.0, 1.0, np.nan, np.nan, 0.0],
                    [2.0, np.nan, np.nan, 5.0, 7.0, np.nan]]]], dtype=dtype)
    y, indices = ops.max_pool2d(x, 2)
    np.testing.assert_array_equal(indices, [[[[7, 3, 4]]]])
    np.testing.assert_array_equal(indices, ref.max_pool2d(x, 2)[1])
    assert np.isnan(y).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_2x2_max_pool_nans_in_wide_rows_follow_scan_order(rng, dtype):
    # The same rule on rows that fill whole vectors (the SIMD kernels): about one element in
    # five a NaN, so windows hold none, one or several, in every position.
    x = rng.standard_normal((2, 3, 28, 37)).astype(dtype)
    x[rng.random(x.shape) < 0.2] = np.nan
    y, indices = ops.max_pool2d(x, 2)
    y_ref, indices_ref = ref.max_pool2d(x, 2)
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(y, y_ref.astype(dtype))  # NaN where the reference has NaN


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_2x2_paths_at_every_simd_level(level):
    """The 2x2 tests under FASTNN_SIMD=level (float32 max pool: AVX-512 or AVX2 kernel, or the
    portable loop)."""
    run_tests_at_simd_level(__file__, "test_2x2_", level)


def test_pool_kernels_do_not_depend_on_thread_count(rng):
    x = rng.standard_normal((8, 16, 33, 33)).astype(np.float32)  # enough work for 2 threads in each kernel
    saved = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            y, indices = ops.max_pool2d(x, 3, 2, 1)
            g = np.ones_like(y)
            results.append(
                (
                    y,
                    ops.max_pool2d_backward(g, indices, x.shape),
                    ops.avg_pool2d_backward(g, x.shape, 3, 2, 1),
                )
            )
    finally:
        fastnn.set_num_threads(saved)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# --- layers -----------------------------------------------------------------------------------


def test_layers_forward_like_the_ops_and_pass_gradcheck(rng):
    # Distinct, well separated values: no max-pool input lies within eps of a kink.
    x = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7).astype(np.float64) * 0.01
    for layer in (
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0)),
        nn.GlobalAvgPool2d(),
    ):
        assert fastnn.gradcheck(layer, x)
    layer = nn.MaxPool2d(2)
    np.testing.assert_array_equal(layer(x.astype(np.float32)), ops.max_pool2d(x.astype(np.float32), 2)[0])
    assert layer.kernel_size == (2, 2) and layer.stride == (2, 2) and layer.padding == (0, 0)
    assert "kernel_size=(2, 2)" in repr(layer)


def test_sequential_max_pool_backward_routes_gradients(rng):
    model = nn.Sequential(nn.MaxPool2d(2), nn.GlobalAvgPool2d())
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = model(x)
    assert y.shape == (2, 3)
    dx = model.backward(np.ones_like(y))
    assert (np.count_nonzero(dx.reshape(2, 3, -1), axis=-1) == 4).all()  # one winner per 2x2 window
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), np.ones((2, 3)), rtol=1e-6)


# --- bad input --------------------------------------------------------------------------------


X = np.zeros((1, 2, 5, 5), dtype=np.float32)


def test_max_pool2d_backward_names_the_first_bad_index():
    indices = np.zeros((1, 2, 2, 2), np.int64)
    indices.flat[5] = 25
    indices.flat[6] = -3
    assert_raises_naming(
        ValueError,
        lambda: ops.max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), indices, X.shape),
        ["max_pool2d_backward", "indices.flat[5] = 25"],
    )


@pytest.mark.parametrize(
    "build, exc, words",
    [
        (lambda: nn.MaxPool2d(0), ValueError, ["nn.MaxPool2d", "kernel_size", "(0, 0)"]),
        (lambda: nn.AvgPool2d(3, padding=2), ValueError, ["nn.AvgPool2d", "padding", "(2, 2)"]),
        (lambda: nn.MaxPool2d(2, stride=-1), ValueError, ["nn.MaxPool2d", "stride", "(-1, -1)"]),
        (lambda: nn.MaxPool2d(2.0), TypeError, ["nn.MaxPool2d", "kernel_size"]),
        (lambda: nn.AvgPool2d(2, stride="1"), TypeError, ["nn.AvgPool2d", "stride"]),
    ],
)
def test_layers_reject_bad_arguments_when_built(build, exc, words):
    assert_raises_naming(exc, build, words)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.AvgPool2d(2), nn.GlobalAvgPool2d()])
def test_layers_reject_bad_input(layer):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"nn\.{name}: input must be 4-D .*\(2, 5, 5\)"):
        layer(X[0])
    with pytest.raises(RuntimeError, match="before forward"):
        type(layer)(*([2] if name != "GlobalAvgPool2d" else [])).backward(X)


def test_reference_max_pool_never_picks_padding_when_the_window_is_all_minus_inf():
    # Found by the long fuzz run: -inf inputs tie with the -inf padding, and the reference's
    # argmax picked the padding (index -1) where the kernels pick the first real element.
    x = np.array([[[[1.0, -np.inf], [-np.inf, -np.inf]]]], np.float32)
    for kernel, stride, padding in ((2, 1, 1), (3, 1, 1), (2, 2, 1)):
        y, idx = ops.max_pool2d(x, kernel, stride, padding)
        ref_y, ref_idx = ref.max_pool2d(x, kernel, stride, padding)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(y, ref_y)
        assert ref_idx.min() >= 0
