"""What is specific to the pooling, batch-norm and dropout CUDA kernels: max pooling bit for bit
equal to the CPU (the GPU picks the same winner and adds the same gradients in the same order,
through the window's gather and plane by plane), dropout masks and outputs bit for bit (one
counter-based hash, common/dropout_mask.h), batch norm over batches larger than the registry's
and its determinism; then the layers after ``.to("cuda")`` against their CPU twins. Each kernel
against the reference and the CPU within the tolerances of tests/opinfo.py is the cuda variant
of tests/test_ops.py."""

from __future__ import annotations

import pytest
from conftest import skip_without_gpu

skip_without_gpu()

import cupy  # noqa: E402
import numpy as np  # noqa: E402

import fastnn
from conftest import FLOAT32_RTOL, FLOAT64_RTOL, ODD_SIZES, assert_close, assert_gpu_matches, to_cpu, to_gpu
from fastnn import nn, ops
from fastnn import reference as ref
from opinfo import POOL2D_CONFIGS, batch_norm_dx_scale, batch_norm_params

RTOL = {np.float32: FLOAT32_RTOL, np.float64: FLOAT64_RTOL}
DTYPES = [np.float32, np.float64]


# ---- pooling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
@pytest.mark.parametrize("shape, kernel_size, stride, padding", POOL2D_CONFIGS)
def test_max_pool2d_equals_cpu(dtype, index_dtype, shape, kernel_size, stride, padding, rng):
    # Rounded values: many ties, which must go to the same (first) element as on the CPU.
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)
    y, idx = ops.max_pool2d(x, kernel_size, stride, padding, index_dtype=index_dtype)
    gy, gidx = ops.max_pool2d(to_gpu(x), kernel_size, stride, padding, index_dtype=index_dtype)
    assert gidx.dtype == np.dtype(index_dtype)
    np.testing.assert_array_equal(to_cpu(gy), y)
    np.testing.assert_array_equal(to_cpu(gidx), idx)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.max_pool2d_backward(g, idx, shape)
    # Through the window (the gather nn.MaxPool2d uses) and without it (plane by plane).
    gathered = ops.max_pool2d_backward(to_gpu(g), gidx, shape, kernel_size, stride, padding)
    scattered = ops.max_pool2d_backward(to_gpu(g), gidx, shape)
    np.testing.assert_array_equal(to_cpu(gathered), dx)
    np.testing.assert_array_equal(to_cpu(scattered), dx)
    assert_close(dx, ref.max_pool2d_backward(g, idx, shape), RTOL[dtype], "dx vs reference")


def test_max_pool2d_nan_and_bad_indices():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1], x[0, 0, 0, 1] = np.nan, 5.0
    y, idx = ops.max_pool2d(to_gpu(x), 2)
    assert np.isnan(to_cpu(y)[0, 0, 0, 0]) and int(to_cpu(idx)[0, 0, 0, 0]) == 5
    bad = cupy.asarray(np.array([[[[0, 16], [0, 0]]]], np.int64))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'indices' must lie in \[0, H \* W = 16\); "
                                         r"got indices.flat\[1\] = 16"):
        ops.max_pool2d_backward(cupy.ones((1, 1, 2, 2), cupy.float32), bad, (1, 1, 4, 4))
    with pytest.raises(ValueError, match="max_pool2d_backward: argument 'grad_out' must have shape"):
        ops.max_pool2d_backward(cupy.ones((1, 1, 3, 3), cupy.float32), idx, (1, 1, 4, 4), 2)


# ---- batch norm ------------------------------------------------------------------------------
# Batches larger than the registry's samples (tests/opinfo.py batch_norm_train), which the GPU
# reduces in several blocks per channel.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(256, 16, 32, 32), (4096, 7)])
def test_batch_norm_train_matches_cpu(dtype, shape, rng):
    rtol = RTOL[dtype]
    x = (rng.standard_normal(shape) * 3.0 + 2.0).astype(dtype)
    weight, bias, running_mean, running_var = batch_norm_params(rng, shape[1], dtype)
    rm, rv = running_mean.copy(), running_var.copy()
    cpu = ops.batch_norm_train(x, weight, bias, rm, rv, momentum=0.3, eps=1e-3)
    grm, grv = to_gpu(running_mean, running_var)
    gpu = ops.batch_norm_train(*to_gpu(x, weight, bias), grm, grv, momentum=0.3, eps=1e-3)
    want = ref.batch_norm_train(x, weight, bias, running_mean, running_var, momentum=0.3, eps=1e-3)
    for got, c, r, what in zip((*gpu, grm, grv), (*cpu, rm, rv), want, ("y", "mean", "inv_std", "rm", "rv")):
        assert_gpu_matches(got, c, r, rtol, what)
    # Backward from the same saved statistics on both sides; dweight / dbias accumulate.
    g = rng.standard_normal(shape).astype(dtype)
    mean, inv_std = cpu[1], cpu[2]
    dw0, db0 = np.full(shape[1], 0.5, dtype), np.full(shape[1], -1.0, dtype)
    dx, dw, db = ops.batch_norm_backward(g, x, weight, mean, inv_std, grad_weight=dw0.copy(), grad_bias=db0.copy())
    gdw, gdb = to_gpu(dw0, db0)
    gdx, gdw_out, gdb_out = ops.batch_norm_backward(*to_gpu(g, x, weight, mean, inv_std), grad_weight=gdw,
                                                    grad_bias=gdb)
    assert gdw_out is gdw and gdb_out is gdb
    dx_ref, dw_ref, db_ref = ref.batch_norm_backward(g, x, weight, mean, inv_std)
    # dx cancels: its error is measured against the size of its terms (and so near the CPU's).
    scale = batch_norm_dx_scale(g, weight, inv_std)
    for want, bound in ((dx_ref, rtol), (dx, 2 * rtol)):
        err = np.linalg.norm(to_cpu(gdx).astype(np.float64) - want) / scale
        assert err <= bound, f"dx: error {err:.3g} relative to the terms' size > {bound:.1g}"
    assert_gpu_matches(gdw, dw, dw_ref + dw0, rtol, "dweight")
    assert_gpu_matches(gdb, db, db_ref + db0, rtol, "dbias")


def test_batch_norm_is_deterministic_on_the_gpu(rng):
    x = to_gpu(rng.standard_normal((64, 8, 16, 16)).astype(np.float32))
    first = [to_cpu(a) for a in ops.batch_norm_train(x, None, None, None, None)]
    for _ in range(3):
        again = [to_cpu(a) for a in ops.batch_norm_train(x, None, None, None, None)]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


# ---- dropout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(n,) for n in ODD_SIZES] + [(3, 7, 17), (2, 3, 5, 5), (0, 4), (1 << 20,)])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_dropout_drops_the_cpu_elements(dtype, shape, p, rng):
    x = rng.standard_normal(shape).astype(dtype)
    seed = 2**64 - 12345  # high bits set: the 64-bit arithmetic must match
    y, mask = ops.dropout(x, p, seed)
    gy, gmask = ops.dropout(to_gpu(x), p, seed)
    assert gmask.dtype == np.uint8
    np.testing.assert_array_equal(to_cpu(gmask), mask)
    np.testing.assert_array_equal(to_cpu(gy), y)  # the same single rounding of x * scale
    g = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(to_cpu(ops.dropout_backward(to_gpu(g), gmask, p)), ops.dropout_backward(g, mask, p))


def test_dropout_rejects_bad_input_like_the_cpu():
    x = cupy.ones((3, 4), cupy.float32)
    with pytest.raises(ValueError, match="dropout: argument 'p' must lie in"):
        ops.dropout(x, 1.5, 0)
    with pytest.raises(TypeError, match="dropout: argument 'seed' must be an int"):
        ops.dropout(x, 0.5, 1.5)
    with pytest.raises(TypeError, match="dropout_backward: argument 'mask' must be uint8"):
        ops.dropout_backward(x, cupy.ones((3, 4), cupy.float32), 0.5)


# ---- layers after .to("cuda") ----------------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda: nn.MaxPool2d(3, 2, 1), (4, 3, 9, 9)),
    (lambda: nn.AvgPool2d(2), (4, 3, 8, 8)),
    (lambda: nn.GlobalAvgPool2d(), (4, 3, 5, 5)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda: nn.BatchNorm1d(6), (8, 6)),
    (lambda: nn.Dropout(0.3), (4, 33)),
])
@pytest.mark.parametrize("training", [True, False])
def test_layers_on_the_gpu_match_their_cpu_twins(make, shape, training, rng):
    cpu_layer, gpu_layer = make(), make()
    gpu_layer.to("cuda")
    cpu_layer.train(training), gpu_layer.train(training)
    x = rng.standard_normal(shape).astype(np.float32)
    for step in range(2):  # the second step sees the updated running statistics
        fastnn.manual_seed(step)
        y = cpu_layer(x)
        fastnn.manual_seed(step)
        gy = gpu_layer(to_gpu(x))
        assert isinstance(gy, cupy.ndarray)
        assert_close(to_cpu(gy), y, 1e-5, f"{type(cpu_layer).__name__} forward")
        g = rng.standard_normal(y.shape).astype(np.float32)
        assert_close(to_cpu(gpu_layer.backward(to_gpu(g))), cpu_layer.backward(g), 1e-5, "backward")
    for (name, a), (_, b) in zip(cpu_layer.state_dict().items(), gpu_layer.state_dict().items()):
        assert isinstance(b, cupy.ndarray), name
        if a.dtype.kind == "f":
            assert_close(to_cpu(b), a, 1e-5, name)
        else:
            np.testing.assert_array_equal(to_cpu(b), a)  # num_batches_tracked
    for p, q in zip(cpu_layer.parameters(), gpu_layer.parameters()):
        assert_close(to_cpu(q.grad), p.grad, 1e-5, "parameter gradient")
