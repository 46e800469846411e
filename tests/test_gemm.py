"""GEMM (fastnn.ops.matmul, with its fused epilogue) and linear's fused bias against
fastnn.reference, on every SIMD path.

Tolerance: Frobenius error <= 10 * u * sqrt(K + 2) relative to the summed norms of the terms
(the product, beta * out, the biases; see term_scale), u the unit roundoff (2^-24 for
float32, 2^-53 for float64). The rounding errors of a K-term dot product with random-sign terms
add up like a random walk, about sqrt(K) * u relative to the result (the worst-case bound K * u
is not approached with random data); the factor 10 covers the final alpha / beta / bias
operations and the partial sums stored to C between K blocks. An indexing, packing or
blocking bug gives errors of order 1.

Shapes come from the kernel's own blocking (fastnn.build_info()): sizes just below, at and past
the register tile (MR, NR; the short tile for ragged rows; the narrow tile for N <= narrow_nr)
and the cache blocks (KC, NC, MC), plus conftest.ODD_SIZES, in all four transpose combinations.

Every SIMD path: the level is fixed at first use in a process, so test_forced_simd_paths re-runs
the tests named test_core_* in a subprocess per FASTNN_SIMD level, skipping levels the CPU
lacks. matmul's bad-input checks (dtype, ndim, contiguity, alignment, read-only or aliasing
out, beta without out, the epilogue's biases) are its error inputs in tests/opinfo.py.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import fastnn
from conftest import ODD_SIZES, SIMD_LEVELS, rel_error, run_tests_at_simd_level
from fastnn import ops
from fastnn import reference as ref

DTYPES = [np.float32, np.float64]
TRANSPOSES = list(itertools.product([False, True], repeat=2))
def gemm_rtol(k: int, dtype) -> float:
    unit_roundoff = np.finfo(dtype).eps / 2
    return 10 * unit_roundoff * np.sqrt(k + 2)


def blocking(dtype) -> dict:
    return fastnn.build_info()[f"gemm_blocking_{np.dtype(dtype).name}"]


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def term_scale(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, out=None, bias_per_col=None,
               bias_per_row=None, relu=False) -> float:
    """Sum of the norms of the terms added into the result: the error measure's denominator, so
    a result that cancels to near zero (a bias against the product, ReLU) is not judged
    relative to its own tiny norm."""
    m, n = (a.shape[1] if trans_a else a.shape[0]), (b.shape[0] if trans_b else b.shape[1])
    scale = np.linalg.norm(ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha))
    if beta != 0.0:
        scale += abs(beta) * np.linalg.norm(out.astype(np.float64))
    if bias_per_col is not None:
        scale += np.sqrt(m) * np.linalg.norm(bias_per_col.astype(np.float64))
    if bias_per_row is not None:
        scale += np.sqrt(n) * np.linalg.norm(bias_per_row.astype(np.float64))
    return float(scale) or 1.0


def check_matmul(rng, m, n, k, trans_a, trans_b, dtype, **kwargs):
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    if kwargs.get("out") is not None:  # a fresh out of the right shape and dtype
        kwargs["out"] = kwargs["out"](m, n, dtype)
    reference_args = {**kwargs, "out": None if kwargs.get("out") is None else kwargs["out"].copy()}
    expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b, **reference_args)
    scale = term_scale(a, b, trans_a, trans_b, **reference_args)
    got = ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b, **kwargs)
    assert got.dtype == dtype and got.shape == (m, n)
    err = np.linalg.norm(got.astype(np.float64) - expected) / scale
    assert err <= gemm_rtol(k, dtype), (
        f"M={m} N={n} K={k} trans_a={trans_a} trans_b={trans_b} {np.dtype(dtype).name} "
        f"{sorted(name for name in kwargs if name != 'out')}: relative error {err:.3g}"
    )
    return got


def random_out(rng):
    return lambda m, n, dtype: rng.standard_normal((m, n)).astype(dtype)


def boundary_shapes(dtype) -> list[tuple[int, int, int]]:
    """(M, N, K) just below, at and past every tile and cache-block boundary, one dimension at a
    time (the others small and odd), plus a few that cross several at once."""
    bl = blocking(dtype)
    mr, nr, kc, nc, mc = bl["mr"], bl["nr"], bl["kc"], bl["nc"], bl["mc"]
    around = lambda x: [x - 1, x, x + 1]  # noqa: E731
    shorter = [r + d for r in bl["short_mr"] for d in (-1, 0, 1)]  # the ragged-row kernels' limits
    rows = around(mr) + around(2 * mr) + [mr + r for r in shorter] + shorter + around(bl["narrow_mr"])
    cols = around(nr) + around(2 * nr) + around(bl["narrow_nr"])
    shapes = [(m, 7, 5) for m in rows] + [(m, nr + 3, 9) for m in rows]
    shapes += [(5, n, 7) for n in cols] + [(mr + 1, n, 9) for n in cols]
    shapes += [(mr + 1, nr + 3, k) for k in around(kc) + [2 * kc + 1]]
    shapes += [(3, n, 5) for n in around(nc) + [2 * nc + 3]]
    shapes += [(m, 3, 5) for m in around(mc)] + [(m, nr + 1, 3) for m in [mc + 1]]
    shapes += [(2 * mr + 5, nc + nr + 3, kc + 5), (3 * bl["narrow_mr"] + 1, bl["narrow_nr"] - 1, kc + 1)]
    shapes += [(3 * bl["narrow_mr"] + r, max(1, bl["narrow_nr"] - 6), 9) for r in shorter]
    return shapes


# ---- core: correctness on the SIMD path in use (re-run per level by test_forced_simd_paths) ---


def test_core_simd_level_in_use():
    """In a forced-level subprocess, the requested path is the one that runs."""
    expected = os.environ.get("FASTNN_TEST_EXPECT_SIMD")
    info = fastnn.build_info()
    if expected is None:
        assert info["simd"] == info["simd_detected"] or os.environ.get("FASTNN_SIMD")
    else:
        assert info["simd"] == expected
        assert info["gemm_kernel_float32"].startswith(expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_core_odd_sizes(trans_a, trans_b, dtype, rng):
    for m, n, k in itertools.product(ODD_SIZES, repeat=3):
        check_matmul(rng, m, n, k, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_core_blocking_boundaries(trans_a, trans_b, dtype, rng):
    for m, n, k in boundary_shapes(dtype):
        check_matmul(rng, m, n, k, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_packed_transposed_a(dtype, rng):
    # op(A) stored transposed with long rows is packed rather than read in place.
    for m, n, k in [(600, 37, 41), (700, 5, 3)]:
        check_matmul(rng, m, n, k, True, False, dtype)
        check_matmul(rng, m, n, k, True, True, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.5, 0.25), (2.0, 0.0), (0.0, 0.5), (0.0, 0.0)])
def test_core_alpha_beta(alpha, beta, dtype, rng):
    # K past one cache block: beta must apply once, not per K block.
    kc = blocking(dtype)["kc"]
    for m, n, k in [(17, 33, 65), (40, 70, kc + 7), (130, 90, 2 * kc + 1), (65, 10, kc + 3)]:
        for trans_a, trans_b in TRANSPOSES:
            check_matmul(rng, m, n, k, trans_a, trans_b, dtype, alpha=alpha, beta=beta, out=random_out(rng))


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_beta_zero_ignores_nan_in_out(dtype, rng):
    kc = blocking(dtype)["kc"]
    for m, n, k in [(13, 35, 7), (30, 9, kc + 2)]:
        a, b = operands(rng, m, n, k, False, False, dtype)
        out = np.full((m, n), np.nan, dtype=dtype)
        got = ops.matmul(a, b, beta=0.0, out=out)
        assert got is out
        assert np.isfinite(out).all()
        assert rel_error(out, ref.matmul(a, b)) <= gemm_rtol(k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_beta_one_accumulates(dtype, rng):
    a, b = operands(rng, 33, 47, 29, False, True, dtype)
    out = np.zeros((33, 47), dtype=dtype)
    for _ in range(3):
        ops.matmul(a, b, trans_b=True, beta=1.0, out=out)
    assert rel_error(out, 3 * ref.matmul(a, b, trans_b=True)) <= gemm_rtol(29, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_fused_epilogue(dtype, rng):
    bl = blocking(dtype)
    shapes = [(1, 1, 1), (17, 33, 65), (bl["mr"] + 1, bl["narrow_nr"] - 3, bl["kc"] + 5),
              (2 * bl["mr"] + 1, 2 * bl["nr"] + 5, 2 * bl["kc"] + 3), (70, 90, 0)]
    for (m, n, k), (trans_a, trans_b) in itertools.product(shapes, TRANSPOSES):
        col = rng.standard_normal(n).astype(dtype)
        row = rng.standard_normal(m).astype(dtype)
        for kwargs in [
            dict(bias_per_col=col),
            dict(bias_per_row=row, relu=True),
            dict(bias_per_col=col, bias_per_row=row, relu=True, beta=0.5, out=random_out(rng)),
            dict(bias_per_col=col, relu=True, beta=1.0, out=random_out(rng)),
            dict(relu=True, alpha=0.0, beta=-1.0, out=random_out(rng)),
        ]:
            check_matmul(rng, m, n, k, trans_a, trans_b, dtype, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_relu_keeps_nan(dtype):
    # A ragged tile and whole tiles (which take a separate store path).
    bl = blocking(dtype)
    for n in (2, bl["mr"], 2 * bl["nr"]):
        a = -np.ones((n, n), dtype=dtype)
        a[0, 0], a[n - 1, 1 % n] = np.nan, 1.0
        got = ops.matmul(a, np.eye(n, dtype=dtype), relu=True, bias_per_col=np.zeros(n, dtype))
        assert np.isnan(got[0, 0]) and got[n - 1, 1 % n] == 1.0
        assert (got[1:, 2:] == 0.0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_zero_sizes(dtype, rng):
    for m, n, k in [(0, 5, 3), (4, 0, 3), (0, 0, 0)]:
        got = ops.matmul(np.zeros((m, k), dtype), np.zeros((k, n), dtype))
        assert got.shape == (m, n) and got.dtype == dtype
    # K == 0: the product is empty, so out = beta * out (+ epilogue).
    out = rng.standard_normal((3, 4)).astype(dtype)
    expected = 0.5 * out.astype(np.float64) + 1.0
    ops.matmul(np.zeros((3, 0), dtype), np.zeros((0, 4), dtype), beta=0.5, out=out,
               bias_per_col=np.ones(4, dtype))
    assert rel_error(out, expected) <= gemm_rtol(0, dtype)
    assert (ops.matmul(np.zeros((3, 0), dtype), np.zeros((0, 4), dtype)) == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_linear_fused_bias(dtype, rng):
    # linear's bias rides on the GEMM epilogue: the narrow tile (few outputs), one and several
    # K blocks, ragged rows.
    bl = blocking(dtype)
    for batch, in_f, out_f in [(1, 1, 1), (7, 3, bl["narrow_nr"]), (128, 256, 10),
                               (bl["mr"] + 1, bl["kc"] + 3, bl["nr"] + 1), (33, 2 * bl["kc"] + 1, 65)]:
        x = rng.standard_normal((batch, in_f)).astype(dtype)
        w = rng.standard_normal((out_f, in_f)).astype(dtype)
        b = rng.standard_normal(out_f).astype(dtype)
        for bias in (b, None):
            err = rel_error(ops.linear(x, w, bias), ref.linear(x, w, bias))
            assert err <= gemm_rtol(in_f, dtype), f"linear {batch}x{in_f}->{out_f}: {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_core_results_do_not_depend_on_thread_count(dtype, rng):
    # Threads split C into blocks; each element sums over K in the same order regardless.
    shapes = [(200, 300, 100), (40, 700, 500), (600, 20, 90)]
    before = fastnn.get_num_threads()
    try:
        for (m, n, k), (trans_a, trans_b) in itertools.product(shapes, TRANSPOSES):
            a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
            results = []
            for threads in (1, 2, 3):
                fastnn.set_num_threads(threads)
                results.append(ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b))
            assert all(np.array_equal(results[0], r) for r in results[1:]), (m, n, k, trans_a, trans_b)
    finally:
        fastnn.set_num_threads(before)


# ---- once per test run -----------------------------------------------------------------------


def test_out_argument_is_filled_and_returned(rng):
    a, b = operands(rng, 5, 9, 4, False, False, np.float32)
    out = np.empty((5, 9), np.float32)
    assert ops.matmul(a, b, out=out) is out
    assert rel_error(out, ref.matmul(a, b)) <= gemm_rtol(4, np.float32)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_forced_simd_paths(level):
    """The test_core_* tests under FASTNN_SIMD=level, in a fresh process."""
    run_tests_at_simd_level(__file__, "test_core_", level)
