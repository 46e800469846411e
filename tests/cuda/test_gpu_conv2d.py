"""conv2d on the GPU (implicit GEMM) where it is specific to the GPU: layers large enough for the
64 x 64 tiles and split-K against the CPU kernel and the reference, split-K bitwise repeatable,
and the layer on the GPU. The grid of shapes and hyper-parameters (strides, padding, dilation,
groups, depthwise, 1x1, deep K: tests/opinfo.py CONV2D_CONFIGS), with gradient accumulation, is
the cuda variant of tests/test_ops.py, with the same tolerances."""

from __future__ import annotations

import pytest
from conftest import skip_without_gpu

skip_without_gpu()

import cupy  # noqa: E402
import numpy as np  # noqa: E402

from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, assert_gpu_matches, to_cpu, to_gpu
from fastnn import nn, ops, reference
from opinfo import conv2d_case


def _check(x, weight, bias, args, dtype, rng, what):
    rtol = FLOAT32_RTOL_REDUCTION if dtype == np.float32 else FLOAT64_RTOL
    gx, gw, gb = to_gpu(x, weight, bias)
    y = ops.conv2d(gx, gw, gb, **args)
    assert isinstance(y, cupy.ndarray)
    assert_gpu_matches(y, ops.conv2d(x, weight, bias, **args), reference.conv2d(x, weight, bias, **args), rtol,
                       f"{what} y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    gpu = ops.conv2d_backward(gx, gw, to_gpu(dy), bias=bias is not None, **args)
    cpu = ops.conv2d_backward(x, weight, dy, bias=bias is not None, **args)
    ref = reference.conv2d_backward(x, weight, dy, bias=bias is not None, **args)
    for name, g, c, r in zip(("dx", "dweight", "dbias"), gpu, cpu, ref):
        if r is None:
            assert g is None
        else:
            assert_gpu_matches(g, c, r, rtol, f"{what} {name}")


# Layer shapes of the benchmark networks (batch 8): C_out > 32 takes the 64 x 64 tiles, and the
# weight gradient's long reduction over N * H_out * W_out is split.
LAYERS = {
    "lenet-conv1": (8, 1, 28, 28, 6, 5, 1, 2, 1, 1, True),
    "resnet-16": (8, 16, 32, 32, 16, 3, 1, 1, 1, 1, False),
    "resnet-32-stride2": (8, 16, 32, 32, 32, 3, 2, 1, 1, 1, False),
    "vgg-64": (4, 64, 16, 16, 64, 3, 1, 1, 1, 1, True),
    "wide-130": (2, 40, 9, 9, 130, 3, 1, 1, 1, 1, True),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_conv2d_network_layers_match_cpu(name, rng):
    x, weight, bias, args = conv2d_case(LAYERS[name], np.float32, rng)
    _check(x, weight, bias, args, np.float32, rng, name)


def test_conv2d_gradients_accumulate_and_repeat(rng):
    x, weight, bias, args = conv2d_case(LAYERS["resnet-16"], np.float32, rng)
    dy = rng.standard_normal(ops.conv2d(x, weight, None, **args).shape).astype(np.float32)
    gw0 = rng.standard_normal(weight.shape).astype(np.float32)
    gb0 = rng.standard_normal(weight.shape[0]).astype(np.float32)
    gw, gb = to_gpu(gw0, gb0)
    _, dw, db = ops.conv2d_backward(*to_gpu(x, weight, dy), grad_weight=gw, grad_bias=gb, input_grad=False, **args)
    assert dw is gw and db is gb
    _, rdw, rdb = reference.conv2d_backward(x, weight, dy, **args)
    cpu = ops.conv2d_backward(x, weight, dy, grad_weight=gw0.copy(), grad_bias=gb0.copy(), input_grad=False, **args)
    assert_gpu_matches(gw, cpu[1], gw0 + rdw, FLOAT32_RTOL_REDUCTION, "accumulated dweight")
    assert_gpu_matches(gb, cpu[2], gb0 + rdb, FLOAT32_RTOL_REDUCTION, "accumulated dbias")
    # Split-K partial sums are added in split order: bitwise repeatable.
    runs = [to_cpu(ops.conv2d_backward(*to_gpu(x, weight, dy), **args)[1]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_conv2d_layer_on_gpu_matches_cpu(rng):
    layer = nn.Conv2d(3, 8, 3, padding=1)
    x = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    g = rng.standard_normal((4, 8, 10, 10)).astype(np.float32)
    y_cpu, dx_cpu = layer(x), layer.backward(g)
    dw_cpu = layer.weight.grad.copy()
    layer.zero_grad(set_to_none=True)
    layer.to("cuda")
    y_gpu, dx_gpu = layer(to_gpu(x)), layer.backward(to_gpu(g))
    np.testing.assert_allclose(to_cpu(y_gpu), y_cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_cpu(dx_gpu), dx_cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_cpu(layer.weight.grad), dw_cpu, rtol=1e-4, atol=1e-4)
