"""conv2d: every method the CPU kernels choose between, against the reference.

cpu/conv2d_plan.cpp picks a method per pass from the shape alone (direct kernels for few channels,
GEMMs reading the padded image through tap offsets, column matrices with wide or exact rows,
several images per product, col2im, the input gradient as a flipped-kernel convolution...), and
the passes run that plan. fastnn._cpu._conv2d_plan names the same plan; each case below states the plan it must get, so a
change of heuristics that leaves a method untested fails here instead of passing silently.

Each case is checked in float32 and float64, on 1 and 2 threads (images split across threads,
or threads inside one image for a batch of 1), with accumulation into existing gradients.
Every SIMD path: test_forced_simd_paths re-runs the test_core_* tests in a subprocess per
FASTNN_SIMD level (the direct kernels are built per ISA, like the GEMM's).

Tolerances as in test_conv2d.py: float64 FLOAT64_RTOL (1e-12); float32 sums of up to ~2000
products, FLOAT32_RTOL_REDUCTION (1e-4), while any indexing, padding or blocking bug gives
errors of order 1. Winograd (float32 only) loses one to two digits more than the other methods
(relative errors ~1e-6 here, well within 1e-4); tests/test_conv2d_winograd.py bounds it per
element.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, SIMD_LEVELS, assert_close, run_tests_at_simd_level

import fastnn
from fastnn import _cpu, ops, reference

# name: ((N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups), plan)
# The plan named is float32's. Dense 3x3 stride-1 layers of 8 or more input channels take the
# Winograd weight gradient in float32 (cpu/conv2d_plan.cpp), the tap views in float64: the
# float64 runs below keep those shapes on the tap views.
CASES = {
    # LeNet's first layer: direct forward and weight gradient (few taps); its input gradient
    # (one input channel) by col2im.
    "lenet-conv1": ((3, 1, 12, 13, 6, 5, 1, 2, 1, 1), ("direct", "col2im", "direct")),
    # LeNet's second layer: direct forward and input gradient, weight gradient by columns of
    # several images per block (narrow planes: wide rows would not pay).
    "lenet-conv2": ((5, 6, 14, 14, 16, 5, 1, 0, 1, 1), ("direct", "direct", "columns")),
    # More output channels than one direct block (8) and a ragged last block.
    "direct-ragged-block": ((2, 3, 9, 10, 13, 3, 1, 1, 1, 1), ("direct", "col2im", "direct")),
    # Output channels in blocks of 6 (10 of them: 2 x 6 computes fewer than 2 x 8), rows wider
    # than an AVX-512 vector (whole vectors and a masked tail), a kernel row of 5 taps (a full
    # pass of the weight gradient's taps and a shorter one).
    "direct-blocks-of-six": ((2, 1, 9, 37, 10, 5, 1, 2, 1, 1), ("direct", "col2im", "direct")),
    "direct-dilated": ((2, 2, 13, 21, 6, 3, 1, 2, 2, 1), ("direct", "col2im", "direct")),
    # 16 output channels per group over 9-pixel rows: under AVX-512 the forward puts the
    # channels in the lanes (the pixel-major direct kernel, as for LeNet's second layer).
    "direct-pixel-major-grouped": ((2, 4, 11, 9, 32, 3, 1, 1, 1, 2), ("direct", "col2im", "direct")),
    # A first layer with many output channels: the product writes y in place.
    "first-layer-wide": ((3, 1, 11, 12, 20, 3, 1, 1, 1, 1), ("channel_major", "col2im", "direct")),
    # The 4-conv CNN's shapes, small, in float32: Winograd F(4x4, 3x3) forward, input gradient
    # and weight gradient (10x12 outputs: partial tiles at the bottom and right; 512 output
    # pixels in the batch at least). In float64 the taps are read through offsets (the indirect
    # product) and the weight gradient runs over tap views.
    "winograd": ((5, 20, 10, 12, 24, 3, 1, 1, 1, 1), ("winograd", "winograd", "winograd")),
    # Padding 2, batch 1 (threads inside the image: the tile rows and the products split; the
    # weight gradient's one block on one thread).
    "winograd-batch1-pad2": ((1, 20, 25, 23, 17, 3, 1, 2, 1, 1), ("winograd", "winograd", "winograd")),
    # Fewer than 16 output channels (too few for Winograd): taps read through offsets.
    "indirect": ((2, 24, 10, 12, 12, 3, 1, 1, 1, 1), ("indirect", "indirect", "winograd")),
    "indirect-dilated": ((2, 17, 11, 20, 19, 3, 1, 2, 2, 1), ("indirect", "indirect", "tap_views")),
    "indirect-grouped": ((3, 36, 9, 10, 40, 3, 1, 1, 1, 2), ("indirect", "indirect", "tap_views")),
    # Output rows of 14 and 21 pixels: under AVX-512 the indirect product runs one 14- or
    # 7-row tile per output row (gemm_row_tile) instead of wide rows (fewer than 16 input
    # channels, so not Winograd: the forward's product has the 24 columns; in the second case
    # the input gradient's does).
    "indirect-row-tiles": ((2, 12, 9, 14, 24, 3, 1, 1, 1, 1), ("indirect", "col2im", "winograd")),
    "indirect-row-tiles-input-grad": ((2, 24, 9, 14, 12, 3, 1, 1, 1, 1), ("indirect", "indirect", "winograd")),
    "indirect-row-tiles-grouped": ((3, 36, 5, 14, 40, 3, 1, 1, 1, 2), ("indirect", "indirect", "tap_views")),
    "indirect-row-tiles-of-7": ((2, 12, 6, 21, 20, 3, 1, 1, 1, 1), ("indirect", "col2im", "winograd")),
    # Few output channels (8: the narrow tile's product, which has no row tile) over 14-pixel
    # rows: wide rows again.
    "indirect-few-outputs-14": ((2, 20, 5, 14, 8, 3, 1, 1, 1, 1), ("indirect", "indirect", "winograd")),
    # Strided: pixel rows (channels-last taps, one product per block of images) for all three
    # passes; batch 5 on 2 threads runs the threads inside the products.
    "strided": ((5, 16, 9, 9, 32, 3, 2, 1, 1, 1), ("rows", "rows", "rows")),
    "strided-rect": ((3, 18, 11, 10, 20, (3, 2), (2, 1), (1, 0), 1, 1), ("rows", "rows", "rows")),
    # Stride 3, 5x5 dilated by 2 (one copy per tap, not per kernel row), padding 2, odd planes,
    # 5 input channels (runs shorter than a vector); batch 8 splits across threads.
    "rows-stride3-dilated": ((8, 5, 19, 17, 7, 5, 3, 2, 2, 1), ("rows", "rows", "rows")),
    # Batch 1, a 1x3 kernel at stride (2, 3), padding (0, 1), 9 input channels.
    "rows-batch1-1x3": ((1, 9, 13, 14, 11, (1, 3), (2, 3), (0, 1), 1, 1), ("rows", "rows", "rows")),
    # K = 48 x 9 = 432, beyond the GEMM's K block (384 floats), in all three products.
    "rows-deep-K": ((2, 48, 9, 10, 12, 3, 2, 1, 1, 1), ("rows", "rows", "rows")),
    # Groups, and 1x1 kernels, stay on the columns (and col2im, or channel_major for few taps).
    "strided-grouped": ((3, 16, 9, 11, 24, 3, 2, 1, 1, 2), ("columns", "col2im", "columns")),
    "strided-pointwise": ((4, 16, 9, 9, 40, 1, 2, 0, 1, 1), ("channel_major", "col2im", "columns")),
    "strided-pointwise-deep": ((4, 40, 9, 9, 36, 1, 2, 0, 1, 1), ("columns", "col2im", "columns")),
    # Stride 1 where wide rows would waste too much (narrow output): exact columns; input
    # gradient by the flipped-kernel convolution over columns.
    "stride1-narrow": ((3, 20, 8, 8, 24, 5, 1, 0, 1, 1), ("columns", "columns", "columns")),
    # Padding larger than the kernel's span: no flipped-kernel convolution.
    "overpadded": ((2, 20, 6, 7, 24, 3, 1, 3, 1, 1), ("indirect", "col2im", "tap_views")),
    # 1x1 at stride 1: the image is its own column matrix.
    "pointwise": ((3, 40, 5, 6, 36, 1, 1, 0, 1, 1), ("input_as_columns", "input_as_columns", "input_as_columns")),
    "pointwise-few-channels": ((2, 12, 4, 5, 20, 1, 1, 0, 1, 1), ("channel_major", "input_as_columns_col2im", "input_as_columns")),
    # Few output channels: the input gradient's convolution has few taps (12) too.
    "pointwise-few-outputs": ((2, 20, 4, 5, 12, 1, 1, 0, 1, 1), ("channel_major", "channel_major", "input_as_columns")),
    # K beyond the GEMM's K block (384 floats), batch 1 (threads inside the image).
    "deep-K-batch1": ((1, 48, 9, 9, 12, 3, 1, 1, 1, 1), ("indirect", "indirect", "winograd")),
}


def make(case, dtype, rng):
    (n, c_in, h, w, c_out, k, stride, padding, dilation, groups), _ = CASES[case]
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = (rng.standard_normal((c_out, c_in // groups, kh, kw)) / np.sqrt(c_in * kh * kw)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, args


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case", sorted(CASES))
def test_core_plan_is_the_stated_one(case, rng):
    x, weight, _, args = make(case, np.float32, rng)
    plan = _cpu._conv2d_plan(
        x, weight, pair(args["stride"]), pair(args["padding"]), pair(args["dilation"]), args["groups"]
    )
    assert (plan["forward"], plan["input_grad"], plan["weight_grad"]) == CASES[case][1]


def test_core_sixteen_channels_take_the_gemm_where_they_fill_its_tile(rng):
    # ResNet's first stage (16 -> 16 channels, 3x3, stride 1): Winograd in float32. In float64,
    # the direct kernels unless the 16 output channels fill the GEMM's register tile (nr <= 16),
    # where the indirect product is faster; every way the result is checked against the
    # reference by the cases above and test_conv2d.py.
    x = rng.standard_normal((4, 16, 12, 12))
    weight = rng.standard_normal((16, 16, 3, 3))
    plan32 = _cpu._conv2d_plan(x.astype(np.float32), weight.astype(np.float32), (1, 1), (1, 1), (1, 1), 1)
    assert (plan32["forward"], plan32["input_grad"]) == ("winograd", "winograd")
    plan = _cpu._conv2d_plan(x, weight, (1, 1), (1, 1), (1, 1), 1)
    nr = fastnn.build_info()["gemm_blocking_float64"]["nr"]
    expected = "indirect" if nr <= 16 else "direct"
    assert (plan["forward"], plan["input_grad"]) == (expected, expected), nr


def test_core_winograd_stops_at_256_by_256_channels():
    # Its transformed weights stay in each thread's workspace (3 x 36 floats per channel
    # pair; the weight gradient's sums, 36 per pair and chunk), so wider layers take the other
    # methods (the plan reads shapes only: the arrays are never convolved here).
    x = np.zeros((8, 256, 16, 16), np.float32)
    for c_out, winograd in ((256, True), (257, False)):
        plan = _cpu._conv2d_plan(x, np.zeros((c_out, 256, 3, 3), np.float32), (1, 1), (1, 1), (1, 1), 1)
        assert (plan["forward"] == "winograd") == winograd, (c_out, plan)
        assert (plan["weight_grad"] == "winograd") == winograd, (c_out, plan)


def test_core_winograd_weight_grad_rule():
    # cpu/conv2d_plan.cpp: at least 8 input and 4 output channels and 8 tiles in the batch, in
    # float32, at stride 1 without dilation or groups, padding up to 2 (shapes only: nothing is
    # convolved).
    def weight_grad(n, c_in, hw, c_out, padding=1, dilation=1, groups=1, dtype=np.float32):
        x = np.zeros((n, c_in, hw, hw), dtype)
        weight = np.zeros((c_out, c_in // groups, 3, 3), dtype)
        return _cpu._conv2d_plan(x, weight, (1, 1), (padding, padding), (dilation, dilation), groups)["weight_grad"]

    assert weight_grad(2, 8, 8, 4) == "winograd"  # 2 images of 2x2 tiles
    assert weight_grad(2, 7, 8, 4) != "winograd"
    assert weight_grad(2, 8, 8, 3) != "winograd"
    assert weight_grad(1, 8, 8, 4) != "winograd"  # 4 tiles
    assert weight_grad(2, 8, 8, 4, padding=2) == "winograd"
    assert weight_grad(2, 8, 8, 4, padding=3) != "winograd"
    assert weight_grad(2, 8, 8, 4, dilation=2) != "winograd"
    assert weight_grad(2, 16, 8, 16, groups=2) != "winograd"
    assert weight_grad(2, 8, 8, 4, dtype=np.float64) == "tap_views"


def test_every_method_is_covered():
    methods = {(i, m) for _, plan in CASES.values() for i, m in enumerate(plan)}
    forward = {"direct", "channel_major", "indirect", "columns", "input_as_columns", "winograd", "rows"}
    input_grad = forward | {"col2im", "input_as_columns_col2im"}
    weight_grad = {"direct", "tap_views", "columns", "input_as_columns", "winograd", "rows"}
    # (A strided forward has no flipped-kernel convolution: "rows" as input grad is its own.)
    wanted = {(0, m) for m in forward} | {(1, m) for m in input_grad - {"input_as_columns"}} | {
        (2, m) for m in weight_grad
    }
    assert wanted <= methods, f"not covered: {sorted(wanted - methods)}"


@pytest.fixture
def threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_core_matches_reference(case, dtype, num_threads, rng, threads):
    fastnn.set_num_threads(num_threads)
    rtol = FLOAT32_RTOL_REDUCTION if dtype == np.float32 else FLOAT64_RTOL
    x, weight, bias, args = make(case, dtype, rng)
    y = ops.conv2d(x, weight, bias, **args)
    ry = reference.conv2d(x, weight, bias, **args)
    assert_close(y, ry, rtol, f"{case} y")
    # The ReLU fused into every method's epilogue.
    assert_close(ops.conv2d(x, weight, bias, relu=True, **args), np.maximum(ry, 0), rtol, f"{case} relu(y)")
    dy = rng.standard_normal(y.shape).astype(dtype)
    rdx, rdw, rdb = reference.conv2d_backward(x, weight, dy, **args)
    # Accumulating into existing gradients (the .grad rule) on every path.
    dw0 = rng.standard_normal(weight.shape).astype(dtype)
    db0 = rng.standard_normal(bias.shape).astype(dtype)
    dx, dw, db = ops.conv2d_backward(x, weight, dy, grad_weight=dw0.copy(), grad_bias=db0.copy(), **args)
    assert_close(dx, rdx, rtol, f"{case} dx")
    assert_close(dw, rdw + dw0, rtol, f"{case} dweight")
    assert_close(db, rdb + db0, rtol, f"{case} dbias")


@pytest.mark.parametrize(
    "case", ["indirect", "lenet-conv1", "strided", "rows-stride3-dilated", "winograd", "winograd-batch1-pad2"]
)
def test_core_results_do_not_depend_on_thread_count_in_forward(case, rng, threads):
    """The forward sums each output in one fixed order on every path: bitwise equal."""
    x, weight, bias, args = make(case, np.float32, rng)
    outs = []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        outs.append(ops.conv2d(x, weight, bias, **args))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("case", ["strided", "rows-stride3-dilated", "rows-batch1-1x3"])
def test_core_rows_gradients_do_not_depend_on_thread_count(case, rng, threads):
    """Pixel rows sum the weight gradient in chunks of the batch fixed by the shape (and each
    dx pixel in one fixed order): bitwise equal on 1 and 2 threads, whether the batch is split
    (batch 8), the threads run inside the products (batch 5) or there is one image."""
    x, weight, _, args = make(case, np.float32, rng)
    dy = rng.standard_normal(ops.conv2d(x, weight, None, **args).shape).astype(np.float32)
    grads = []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        grads.append(ops.conv2d_backward(x, weight, dy, bias=False, **args)[:2])
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("case", ["indirect", "indirect-row-tiles", "lenet-conv1", "first-layer-wide", "strided"])
def test_core_nonfinite_input_reaches_only_its_own_gradients(case, rng):
    """Wide rows and the direct kernels read pixels past a row's end; they must not leak: an
    Inf at the image's right edge gives the same non-finite pattern as the reference."""
    x, weight, _, args = make(case, np.float64, rng)
    x[0, 0, 1, -1] = np.inf
    y = ops.conv2d(x, weight, None, **args)
    dy = rng.standard_normal(y.shape)
    _, dw, _ = ops.conv2d_backward(x, weight, dy, bias=False, input_grad=False, **args)
    _, rdw, _ = reference.conv2d_backward(x, weight, dy, bias=False, input_grad=False, **args)
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(rdw))
    finite = np.isfinite(rdw)
    assert finite.any() and not finite.all()
    assert_close(dw[finite], rdw[finite], FLOAT64_RTOL, f"{case} finite dweight")
    ry = reference.conv2d(x, weight, None, **args)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ry))


def random_layer(rng):
    """A random layer shape over the ranges where every method and tile is chosen: up to 24
    input and 40 output channels per group (so the direct kernels, the narrow and wide product
    tiles and the row tiles all occur), planes up to 30 x 40, strides, dilations, groups."""
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 24)), groups * int(rng.integers(1, 40))
    kh = int(rng.choice([1, 2, 3, 5]))
    kw = int(rng.choice([kh, kh, 3]))
    stride, dilation = int(rng.choice([1, 1, 1, 2])), int(rng.choice([1, 1, 2]))
    padding = int(rng.integers(0, 3))
    h = int(rng.integers(max(1, (kh - 1) * dilation + 1 - 2 * padding), 30))
    w = int(rng.integers(max(1, (kw - 1) * dilation + 1 - 2 * padding), 40))
    shape = (int(rng.integers(1, 5)), c_in, h, w, c_out, (kh, kw))
    return shape, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("seed", range(4))
def test_core_random_layers_match_reference(seed, threads):
    """Random shapes against the reference, the method and tile chosen by each shape: the named
    cases above pin every method, this sweep reaches the combinations between them (it found a
    row tile run over a narrow product's packing)."""
    rng = np.random.default_rng(seed)
    for _ in range(30):
        (n, c_in, h, w, c_out, (kh, kw)), args = random_layer(rng)
        fastnn.set_num_threads(int(rng.choice([1, 2])))
        x = rng.standard_normal((n, c_in, h, w))
        weight = rng.standard_normal((c_out, c_in // args["groups"], kh, kw)) / np.sqrt(c_in * kh * kw)
        bias = rng.standard_normal(c_out)
        what = f"{(n, c_in, h, w, c_out, kh, kw)} {args}"
        ry = reference.conv2d(x, weight, bias, **args)
        dy = rng.standard_normal(ry.shape)
        reference_grads = reference.conv2d_backward(x, weight, dy, **args)
        for dtype, rtol in ((np.float64, FLOAT64_RTOL), (np.float32, FLOAT32_RTOL_REDUCTION)):
            cast = [a.astype(dtype) for a in (x, weight, bias, dy)]
            assert_close(ops.conv2d(*cast[:3], **args), ry, rtol, f"{what} {dtype.__name__} y")
            grads = ops.conv2d_backward(cast[0], cast[1], cast[3], **args)
            for name, got, want in zip(("dx", "dweight", "dbias"), grads, reference_grads):
                assert_close(got, want, rtol, f"{what} {dtype.__name__} {name}")


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_forced_simd_paths(level):
    """The test_core_* tests under FASTNN_SIMD=level, in a fresh process."""
    run_tests_at_simd_level(__file__, "test_core_", level)
