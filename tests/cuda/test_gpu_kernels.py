"""What is specific to the GPU kernels of matmul, linear, the activations, the losses and the
optimisers: GEMM shapes that take the large tiles and split-K, TF32, bitwise repeatability, tall
batches, multi-tensor chunking, special values, and the errors the GPU finds in its kernels. Each
of these ops against the CPU kernel and the float64 reference on the registry's samples, float32
and float64, is the cuda variant of tests/test_ops.py (entries in tests/opinfo.py), with the
same tolerances: the GPU sums in a different order, not with less precision. TF32 products get
their own, looser bound (operands rounded to 10-bit mantissas)."""

from __future__ import annotations

import pytest
from conftest import skip_without_gpu

skip_without_gpu()

import cupy  # noqa: E402
import numpy as np  # noqa: E402

import fastnn
from conftest import (
    FLOAT32_RTOL,
    FLOAT32_RTOL_REDUCTION,
    FLOAT64_RTOL,
    ODD_SIZES,
    assert_gpu_matches,
    rel_error,
    to_cpu,
    to_gpu,
)
from fastnn import ops
from fastnn import reference as ref
from opinfo import USES_OUTPUT

DTYPES = [(np.float32, FLOAT32_RTOL_REDUCTION), (np.float64, FLOAT64_RTOL)]
# TF32 keeps 10 mantissa bits: each product is off by up to ~2^-11 relative, and a K-term sum
# of such errors stays around 1e-3 of the result's norm.
TF32_RTOL = 5e-3


# ---- GEMM ------------------------------------------------------------------------------------
GEMM_SHAPES = [(m, n, k) for m in ODD_SIZES for n in (1, 17, 65) for k in (1, 33)] + [
    (128, 128, 128), (257, 129, 1025), (1, 300, 4096), (4096, 1, 64), (520, 384, 8)]


@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_matmul_matches_cpu(m, n, k, trans_a, trans_b, dtype, rtol, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    kw = dict(trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=2.0)
    cpu = ops.matmul(a, b, out=c.copy(), **kw)
    gpu = ops.matmul(*to_gpu(a, b), out=to_gpu(c), **kw)
    expected = 0.5 * ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b) + 2.0 * c.astype(np.float64)
    assert_gpu_matches(gpu, cpu, expected, rtol, f"matmul {m}x{n}x{k}")


@pytest.mark.parametrize("m,n,k", [(64, 64, 64), (130, 70, 300), (1024, 1024, 1024), (33, 2048, 4096)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_tf32_matmul_is_close(m, n, k, trans_a, trans_b, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    try:
        fastnn.set_matmul_precision("high")
        got = to_cpu(ops.matmul(*to_gpu(a, b), trans_a=trans_a, trans_b=trans_b))
        # Leading dimensions that are not multiples of 4 rule out cp.async: the exact kernel runs.
        odd_a = rng.standard_normal((m, 33)).astype(np.float32)
        odd_b = rng.standard_normal((33, n)).astype(np.float32)
        exact = ops.matmul(*to_gpu(odd_a, odd_b))
    finally:
        fastnn.set_matmul_precision("highest")
    err = rel_error(got, expected)
    assert err <= TF32_RTOL, f"TF32 relative error {err:.3g}"
    assert_gpu_matches(exact, ops.matmul(odd_a, odd_b), ref.matmul(odd_a, odd_b), FLOAT32_RTOL_REDUCTION, "fallback")


def test_matmul_beta_zero_ignores_nan_and_is_deterministic(rng):
    a, b = to_gpu(rng.standard_normal((300, 700)).astype(np.float32), rng.standard_normal((700, 90)).astype(np.float32))
    out = cupy.full((300, 90), cupy.nan, dtype=cupy.float32)
    first = to_cpu(ops.matmul(a, b, out=out))
    assert np.all(np.isfinite(first))
    for _ in range(3):  # split-K sums in split order: bitwise repeatable
        np.testing.assert_array_equal(to_cpu(ops.matmul(a, b)), first)


def test_matmul_empty_and_k_zero():
    a, b = cupy.zeros((0, 4), cupy.float32), cupy.zeros((4, 3), cupy.float32)
    assert ops.matmul(a, b).shape == (0, 3)
    c = cupy.ones((2, 3), cupy.float32)
    ops.matmul(cupy.zeros((2, 0), cupy.float32), cupy.zeros((0, 3), cupy.float32), beta=2.0, out=c)
    np.testing.assert_array_equal(to_cpu(c), 2.0)


# ---- linear ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 300, 5000, 70_000])
def test_linear_backward_accumulates_and_bias_sums_tall_batches(rows, rng):
    x = rng.standard_normal((rows, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    g = rng.standard_normal((rows, 3)).astype(np.float32)
    gw0, gb0 = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    gw, gb = to_gpu(gw0, gb0)
    _, dw, db = ops.linear_backward(*to_gpu(x, w, g), grad_weight=gw, grad_bias=gb, input_grad=False)
    assert dw is gw and db is gb
    _, rdw, rdb = ref.linear_backward(x, w, g)
    cpu = ops.linear_backward(x, w, g, grad_weight=gw0.copy(), grad_bias=gb0.copy(), input_grad=False)
    assert_gpu_matches(gw, cpu[1], gw0 + rdw, FLOAT32_RTOL_REDUCTION, "accumulated dweight")
    assert_gpu_matches(gb, cpu[2], gb0 + rdb, FLOAT32_RTOL_REDUCTION, "accumulated dbias")


# ---- activations -----------------------------------------------------------------------------
def _run_on_gpu(name, x, g):
    """(y, dx) of one activation on CuPy arrays, backward at the GPU's own saved tensor."""
    kw = {"negative_slope": 0.1} if name == "leaky_relu" else {}
    y = getattr(ops, name)(x, **kw)
    dx = getattr(ops, name + "_backward")(y if name in USES_OUTPUT else x, g, **kw)
    return y, dx


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu"])
def test_activation_finite_for_huge_inputs(name):
    x = np.array([-1e30, -1e4, -88.0, 0.0, 88.0, 1e4, 1e30], dtype=np.float32)
    y, dx = _run_on_gpu(name, to_gpu(x), to_gpu(np.ones_like(x)))
    assert np.all(np.isfinite(to_cpu(y))) and np.all(np.isfinite(to_cpu(dx)))
    np.testing.assert_allclose(to_cpu(y), getattr(ref, name)(x), rtol=1e-6, atol=1e-30)


# ---- softmax family and losses ---------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e4, 1e20, 3e38])
def test_softmax_cross_entropy_stable_for_huge_logits(scale):
    x = np.array([[scale, 0.0, -scale], [-scale, scale, 0.5 * scale]], dtype=np.float32)
    labels = np.array([0, 2])
    loss, grad = ops.softmax_cross_entropy(*to_gpu(x, labels), 0.1)
    loss_ref, grad_ref = ref.softmax_cross_entropy(x, labels, 0.1)
    assert np.isfinite(loss) and loss == pytest.approx(loss_ref, rel=1e-5)
    np.testing.assert_allclose(to_cpu(grad), grad_ref, atol=1e-6)
    assert np.all(np.isfinite(to_cpu(ops.softmax(to_gpu(x)))))


@pytest.mark.parametrize("bad", [-1, 3])
def test_softmax_cross_entropy_rejects_labels_found_on_the_gpu(bad):
    labels = np.array([0, 1, bad, 2, bad])
    expected = f"fastnn.softmax_cross_entropy: argument 'labels' must lie in \\[0, 3\\) for 3 classes; got labels\\[2\\] = {bad}"
    for label_dtype in (np.int64, np.int32):
        with pytest.raises(ValueError, match=expected):
            ops.softmax_cross_entropy(cupy.zeros((5, 3), cupy.float32), to_gpu(labels.astype(label_dtype)))
        with pytest.raises(ValueError, match=expected):
            ops.softmax_cross_entropy(np.zeros((5, 3), np.float32), labels.astype(label_dtype))


def test_bce_rejects_targets_found_on_the_gpu():
    t = np.array([[0, 1], [2, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"fastnn.bce_with_logits: argument 'targets' must lie in \[0, 1\]; got targets.flat\[2\] = 2"):
        ops.bce_with_logits(cupy.zeros((2, 2), cupy.float32), to_gpu(t))


# ---- optimisers ------------------------------------------------------------------------------
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_multi_tensor_matches_cpu(decoupled, rng):
    # 60 tensors (past the 48 tensor slots of one launch) and one of 21.3M elements (past the 320
    # blocks of 64 Ki elements): the chunk tables must split and resume correctly.
    sizes = [int(s) for s in rng.integers(1, 3000, size=60)] + [21_300_000]
    params = [rng.random(s, dtype=np.float32) - 0.5 for s in sizes]
    gparams = [to_gpu(p) for p in params]
    m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    gm, gv = [cupy.zeros_like(p) for p in gparams], [cupy.zeros_like(p) for p in gparams]
    step = ops.adamw_step_multi if decoupled else ops.adam_step_multi
    for t in (1, 2):
        grads = [rng.random(s, dtype=np.float32) - 0.5 for s in sizes]
        kw = dict(step=t, lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=0.1)
        step(params, grads, m, v, **kw)
        step(gparams, [to_gpu(g) for g in grads], gm, gv, **kw)
    for got, want in zip(gparams + gm + gv, params + m + v):
        # Elementwise float32 updates: a few ulps apart after two steps.
        assert float(np.abs(to_cpu(got) - want).max()) <= 1e-6 + 5 * FLOAT32_RTOL * float(np.abs(want).max())


# ---- argument checks: the CPU bindings' messages ---------------------------------------------
def test_gpu_bindings_reject_bad_arguments():
    a = cupy.ones((2, 3), cupy.float32)
    with pytest.raises(TypeError, match="fastnn.matmul: argument 'b' must be a cupy.ndarray .*; got numpy.ndarray"):
        ops.matmul(a, np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="fastnn.relu: argument 'x' must be float32 or float64; got int32"):
        ops.relu(cupy.arange(3, dtype=cupy.int32))
    with pytest.raises(ValueError, match="fastnn.matmul: argument 'a' must be C-contiguous; .*cupy.ascontiguousarray"):
        ops.matmul(cupy.ones((4, 4), cupy.float32)[:, ::2], cupy.ones((2, 2), cupy.float32))
    with pytest.raises(ValueError, match="fastnn.linear: argument 'weight' must have 3 columns"):
        ops.linear(a, cupy.ones((4, 5), cupy.float32))
    with pytest.raises(ValueError, match="argument 'out' must not share memory with 'a'"):
        x = cupy.ones((2, 2), cupy.float32)
        ops.matmul(x, cupy.ones((2, 2), cupy.float32), out=x)
