"""conv2d by Winograd F(4x4, 3x3) (cpu/conv2d_winograd.h): 3x3, stride 1, float32; at least 16
channels in and out for the forward and input gradient, 8 in and 4 out for the weight gradient.
Forward, input gradient (the flipped-kernel convolution of dy, which runs the same forward) and
weight gradient (the sum over tiles of (A dY A^T) .* (B^T d B), then G^T . G) through the public
ops, against the float64 reference, on odd planes (partial tiles at the bottom and right),
paddings 0, 1 and 2, channel counts that are not multiples of any vector width, batches of 1 and
several (several images per block, shares split across threads), bias and ReLU on and off,
gradients accumulated or written.

Tolerance. Every output is compared with the reference relative to its own magnitude scale
s = sum |x| |w| (+ |bias|): a sum of float32 products computed in any order has an error of at
most about K * 2^-24 * s, and directly (9 C products) these layers stay below ~3e-7 s. Winograd
adds the transforms: the inputs are multiplied by B^T's coefficients (up to 5, row sums up to 10
per dimension), the products summed, and the result combined by A^T's (up to 8), so values that
largely cancel are rounded at up to ~100x the output's magnitude: the error grows by one to two
decimal digits. Measured on these shapes, up to 3.5e-6 s (about 60 ulps of s; the portable and
AVX2 paths alike). WINOGRAD_RTOL = 2e-5 leaves a margin of about six for other operation
orders, and stays far below the errors of order s that any indexing, padding or tile-edge bug
gives.

Weight gradient. Each weight's magnitude scale is s = sum |dy| |x| over its products (the
reference's weight gradient of |x| and |dy|); the transforms mix the 9 taps of a channel pair, so
each tap is compared relative to the largest s among them (a tap that reads mostly padding has a
small s of its own but shares the rounding of its neighbours' sums). Per dimension Winograd
computes tap p's sum of 4 products dy[i] d[i + p] as sum_xi G^T[p, xi] (A dy)[xi] (B^T d)[xi];
with every value of magnitude 1 its terms add up in magnitude to
sum_xi |G^T[p, xi]| |A|row(xi) |B^T|row(xi) (row sums of absolute values: A 1 4 4 15 15 1,
B^T 10 10 10 6 6 10): 23, 28 and 53 for p = 0, 1, 2, against 4 for the direct sum: up to 13x
per dimension, 178x in two. The products are rounded at that magnitude, so one rounding of the
largest intermediate is 178 * 2^-24 s = 1.06e-5 s: WGRAD_RTOL = 1e-5. The transforms' and the
sums' roundings are many and of either sign, so they mostly cancel: measured up to 1.8e-6 s on
these shapes and on ResNet-20's at batch 64-128 (the portable and AVX2 paths; a margin of five),
while any indexing, padding, tile-edge or block bug gives errors of order s.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIMD_LEVELS, run_tests_at_simd_level

import fastnn
from fastnn import _cpu, ops, reference

WINOGRAD_RTOL = 2e-5
WGRAD_RTOL = 1e-5

# (N, C_in, H, W, C_out, padding)
# (Winograd needs 512 output pixels in the batch, forward and input gradient: conv2d_plan.cpp.)
SHAPES = [
    (1, 16, 21, 27, 16, 1),  # batch 1: threads inside the image; partial tiles at both edges
    (4, 17, 15, 13, 19, 0),  # no padding: 13x11 outputs; the input gradient pads by 2
    (8, 33, 8, 8, 20, 2),  # padding 2: 10x10 outputs; the input gradient has none
    (6, 24, 17, 6, 40, 1),  # tall and narrow, C_out past two AVX2 vectors and one AVX-512 one
    (33, 16, 4, 4, 18, 1),  # one tile per image: 33 images in a block, 16 + 17 on 2 threads
]


@pytest.fixture
def threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


def assert_within_scale(got, want, scale, what, rtol=WINOGRAD_RTOL):
    """|got - want| <= rtol * scale, element by element (see the module docstring)."""
    err = np.abs(got.astype(np.float64) - want) / np.maximum(scale, np.finfo(np.float64).tiny)
    assert err.max() <= rtol, f"{what}: error {err.max():.3g} of the scale > {rtol:.0e}"


def make(shape, rng):
    n, c_in, h, w, c_out, padding = shape
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    return x, weight, bias, padding


def as64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("shape", SHAPES)
def test_core_winograd_is_planned_for_these_shapes(shape, rng):
    """Each shape below runs Winograd forward and for both gradients (else the tests below
    would check another method); float64 never does."""
    x, weight, _, padding = make(shape, rng)
    plan = _cpu._conv2d_plan(x, weight, (1, 1), (padding, padding), (1, 1), 1)
    assert (plan["forward"], plan["input_grad"], plan["weight_grad"]) == ("winograd",) * 3
    plan64 = _cpu._conv2d_plan(*as64(x, weight), (1, 1), (padding, padding), (1, 1), 1)
    assert "winograd" not in (plan64["forward"], plan64["input_grad"], plan64["weight_grad"])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False])
def test_core_winograd_forward_matches_reference(shape, num_threads, with_bias, rng, threads):
    fastnn.set_num_threads(num_threads)
    x, weight, bias, padding = make(shape, rng)
    b = bias if with_bias else None
    x64, w64, b64 = as64(x, weight, bias)
    ref = reference.conv2d(x64, w64, b64 if with_bias else None, padding=padding)
    scale = reference.conv2d(np.abs(x64), np.abs(w64), np.abs(b64) if with_bias else None, padding=padding)
    assert_within_scale(ops.conv2d(x, weight, b, padding=padding), ref, scale, f"{shape} y")
    assert_within_scale(
        ops.conv2d(x, weight, b, padding=padding, relu=True), np.maximum(ref, 0), scale, f"{shape} relu(y)"
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_core_winograd_input_grad_matches_reference(shape, num_threads, rng, threads):
    fastnn.set_num_threads(num_threads)
    x, weight, _, padding = make(shape, rng)
    y = ops.conv2d(x, weight, None, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, _, _ = ops.conv2d_backward(x, weight, dy, bias=False, padding=padding)
    x64, w64, dy64 = as64(x, weight, dy)
    rdx, _, _ = reference.conv2d_backward(x64, w64, dy64, bias=False, padding=padding)
    scale, _, _ = reference.conv2d_backward(x64, np.abs(w64), np.abs(dy64), bias=False, padding=padding)
    assert_within_scale(dx, rdx, scale, f"{shape} dx")


def weight_grad_reference(x, dy, padding):
    """The float64 weight gradient and its scale: for each channel pair, the largest s of its
    9 taps (module docstring)."""
    x64, dy64 = as64(x, dy)
    weight_shape = (dy.shape[1], x.shape[1], 3, 3)
    w64 = np.zeros(weight_shape)  # the weight gradient does not read it
    _, rdw, _ = reference.conv2d_backward(x64, w64, dy64, bias=False, input_grad=False, padding=padding)
    _, scale, _ = reference.conv2d_backward(
        np.abs(x64), w64, np.abs(dy64), bias=False, input_grad=False, padding=padding
    )
    return rdw, np.broadcast_to(scale.max(axis=(2, 3), keepdims=True), scale.shape)


# Several blocks of images, so the sum runs over chunks (cpu/conv2d_winograd.cpp): 16 tiles per
# image, 16 images per block, 3 blocks of 16, 16 and 8.
MANY_BLOCKS = (40, 16, 15, 16, 17, 1)
# The weight gradient's rule is wider than the forward's (cpu/conv2d_plan.cpp): 8 input
# channels and 4 output ones, planes smaller than a tile, 8 tiles in the batch.
WGRAD_SHAPES = SHAPES + [
    MANY_BLOCKS,
    (3, 8, 9, 11, 5, 1),  # 8 -> 5 channels: less than a vector on either side
    (16, 20, 2, 3, 24, 2),  # 4x5 outputs from a 2x3 plane padded by 2: one tile, two partial
    (8, 9, 1, 1, 16, 1),  # one pixel: each tile holds one real output
]


@pytest.mark.parametrize("shape", WGRAD_SHAPES)
def test_core_winograd_weight_grad_is_planned_for_these_shapes(shape, rng):
    x, weight, _, padding = make(shape, rng)
    plan = _cpu._conv2d_plan(x, weight, (1, 1), (padding, padding), (1, 1), 1)
    assert plan["weight_grad"] == "winograd"
    plan64 = _cpu._conv2d_plan(*as64(x, weight), (1, 1), (padding, padding), (1, 1), 1)
    assert plan64["weight_grad"] != "winograd"


@pytest.mark.parametrize("shape", WGRAD_SHAPES)
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("accumulate", [False, True])
def test_core_winograd_weight_grad_matches_reference(shape, num_threads, accumulate, rng, threads):
    fastnn.set_num_threads(num_threads)
    x, weight, _, padding = make(shape, rng)
    dy = rng.standard_normal(ops.conv2d(x, weight, None, padding=padding).shape).astype(np.float32)
    rdw, scale = weight_grad_reference(x, dy, padding)
    # Written (grad_weight None), or added into an existing gradient of the same order.
    dw0 = rng.standard_normal(weight.shape).astype(np.float32) * np.float32(np.abs(rdw).mean())
    grad_weight = dw0.copy() if accumulate else None
    _, dw, _ = ops.conv2d_backward(
        x, weight, dy, grad_weight=grad_weight, bias=False, input_grad=False, padding=padding
    )
    if accumulate:
        assert dw is grad_weight
        rdw = rdw + dw0
        scale = scale + np.abs(dw0)  # one more float32 addition
    assert_within_scale(dw, rdw, scale, f"{shape} dweight", WGRAD_RTOL)


def test_core_winograd_weight_grad_does_not_depend_on_thread_count(rng, threads):
    """Blocks and chunks are fixed by the shape, the chunks summed in order: bitwise equal."""
    x, weight, _, padding = make(MANY_BLOCKS, rng)
    dy = rng.standard_normal(ops.conv2d(x, weight, None, padding=padding).shape).astype(np.float32)
    grads = []
    for nt in (1, 2, 3):
        fastnn.set_num_threads(nt)
        grads.append(ops.conv2d_backward(x, weight, dy, bias=False, input_grad=False, padding=padding)[1])
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_array_equal(grads[0], grads[2])


def test_core_nonfinite_input_stays_in_its_tiles(rng):
    """An Inf reaches every output the reference makes non-finite, and beyond those only the
    other outputs of the 4x4 tiles whose 6x6 input tiles hold it (the transforms mix a tile);
    every other output stays finite and accurate."""
    x, weight, bias, padding = make((3, 16, 13, 14, 16, 1), rng)
    h, w = 6, 9
    x[0, 3, h, w] = np.inf
    y = ops.conv2d(x, weight, bias, padding=padding)
    x64, w64, b64 = as64(x, weight, bias)
    ref = reference.conv2d(x64, w64, b64, padding=padding)
    bad, ref_bad = ~np.isfinite(y), ~np.isfinite(ref)
    assert ref_bad.any() and (bad | ~ref_bad).all()
    # Input tile i covers padded rows 4i .. 4i + 5 and writes output rows 4i .. 4i + 3.
    reach = np.zeros(y.shape[1:], bool)  # image 0 only
    rows = [i for i in range(4) if 4 * i <= h + padding <= 4 * i + 5]
    cols = [j for j in range(4) if 4 * j <= w + padding <= 4 * j + 5]
    for i in rows:
        for j in cols:
            reach[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = True
    reach = np.stack([reach] + [np.zeros_like(reach)] * (len(y) - 1))
    assert not (bad & ~reach).any()
    scale = reference.conv2d(np.abs(x64), np.abs(w64), np.abs(b64), padding=padding)
    outside = ~reach
    assert_within_scale(y[outside], ref[outside], scale[outside], "outputs outside the Inf's tiles")


def test_core_nonfinite_input_stays_in_its_channel_pairs(rng):
    """In the weight gradient an Inf in x reaches every weight the reference makes non-finite,
    and beyond those at most the other taps of the same channel pairs (the transforms mix a
    pair's 9 taps); every other channel pair stays finite and accurate."""
    shape = (3, 16, 13, 14, 17, 1)
    x, weight, _, padding = make(shape, rng)
    x[1, 3, 6, 9] = np.inf
    dy = rng.standard_normal(ops.conv2d(x, weight, None, padding=padding).shape).astype(np.float32)
    _, dw, _ = ops.conv2d_backward(x, weight, dy, bias=False, input_grad=False, padding=padding)
    with np.errstate(invalid="ignore"):
        rdw, scale = weight_grad_reference(x, dy, padding)
    bad, ref_bad = ~np.isfinite(dw), ~np.isfinite(rdw)
    assert ref_bad.any() and (bad | ~ref_bad).all()
    others = np.ones(shape[1], bool)
    others[3] = False
    assert not bad[:, others].any()
    assert_within_scale(dw[:, others], rdw[:, others], scale[:, others], "other channel pairs", WGRAD_RTOL)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_forced_simd_paths(level):
    """The test_core_* tests under FASTNN_SIMD=level (the transforms are built per ISA)."""
    run_tests_at_simd_level(__file__, "test_core_", level)
