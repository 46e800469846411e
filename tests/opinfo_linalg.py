"""Registry entries (tests/opinfo.py) of the GEMM-based ops: matmul, linear and conv2d."""

from __future__ import annotations

import itertools

import numpy as np

from conftest import FLOAT32_RTOL_REDUCTION
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import (
    CPU_ONLY,
    OpInfo,
    Sample,
    Tol,
    err,
    misaligned,
    other_dtype,
    randn,
    readonly,
)


# ---- matmul, linear, conv2d -------------------------------------------------------------------

DOT_PRODUCTS = Tol(FLOAT32_RTOL_REDUCTION, "each output a K-term dot product (K <= 1025 here): sqrt(K) * 2^-24 growth")


def _matmul_samples(rng, dtype):
    shapes = [(1, 1, 1), (3, 7, 17), (17, 33, 7), (65, 17, 33), (7, 65, 1), (33, 1, 65), (0, 5, 3), (4, 3, 0)]
    epilogues = [
        lambda m, n: {},
        lambda m, n: dict(alpha=0.5, beta=2.0, out=randn(rng, (m, n), dtype)),
        lambda m, n: dict(bias_per_col=randn(rng, n, dtype), relu=True),
        lambda m, n: dict(bias_per_row=randn(rng, m, dtype), alpha=-1.5),
        lambda m, n: dict(bias_per_col=randn(rng, n, dtype), bias_per_row=randn(rng, m, dtype), relu=True,
                          beta=0.5, out=randn(rng, (m, n), dtype)),
        lambda m, n: dict(beta=1.0, out=randn(rng, (m, n), dtype)),  # how backward passes accumulate
    ]
    for i, ((m, n, k), (ta, tb)) in enumerate(itertools.product(shapes, itertools.product([False, True], repeat=2))):
        a = randn(rng, (k, m) if ta else (m, k), dtype)
        b = randn(rng, (n, k) if tb else (k, n), dtype)
        kwargs = dict(trans_a=ta, trans_b=tb, **epilogues[i % len(epilogues)](m, n))
        yield Sample(f"M={m} N={n} K={k} {sorted(kwargs)}", (a, b), kwargs)


def _matmul_errors(dtype):
    op = ops.matmul
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("int", lambda xp: op(xp.ones((2, 2), np.int32), a(xp, 2, 2)), TypeError,
              "fastnn.matmul: argument 'a' must be float32 or float64; got int32")
    yield err("mixed", lambda xp: op(a(xp, 2, 2), xp.ones((2, 2), other_dtype(dtype))), TypeError, "argument 'b' must have the dtype of 'a'")
    yield err("float16", lambda xp: op(xp.ones((2, 2), np.float16), a(xp, 2, 2)), TypeError, "got float16")
    yield err("byteswapped", lambda xp: op(np.ones((2, 2), np.dtype(dtype).newbyteorder()), a(xp, 2, 2)), TypeError,
              "argument 'a'", backends=CPU_ONLY)
    yield err("list", lambda xp: op([[1.0]], a(xp, 1, 1)), TypeError, "must be a numpy.ndarray; got list")
    yield err("other backend's array", lambda xp: op(a(xp, 2, 3), np.ones((3, 2), dtype)), TypeError,
              "fastnn.matmul: argument 'b' must be a cupy.ndarray", backends=("cuda",))
    yield err("1-D", lambda xp: op(a(xp, 3), a(xp, 3, 1)), ValueError, "fastnn.matmul: argument 'a' must be 2-D; got shape (3,)")
    yield err("inner", lambda xp: op(a(xp, 2, 3), a(xp, 4, 2)), ValueError, "inner dimensions differ")
    yield err("out shape", lambda xp: op(a(xp, 2, 3), a(xp, 3, 2), out=a(xp, 3, 2)), ValueError, "argument 'out' must have shape (2, 2)")
    yield err("transposed view", lambda xp: op(a(xp, 3, 2).T, a(xp, 3, 2)), ValueError, "argument 'a' must be C-contiguous")
    yield err("strided columns", lambda xp: op(a(xp, 4, 4)[:, ::2], a(xp, 2, 2)), ValueError, "argument 'a' must be C-contiguous")
    yield err("read-only out", lambda xp: op(a(xp, 2, 2), a(xp, 2, 2), out=readonly(xp, (2, 2), dtype)), ValueError,
              "argument 'out' is updated in place and must be writeable", backends=CPU_ONLY)
    yield err("aliasing out", lambda xp: (lambda m: op(m, a(xp, 2, 2), out=m))(a(xp, 2, 2)), ValueError,
              "argument 'out' must not share memory with 'a'")
    yield err("string alpha", lambda xp: op(a(xp, 2, 2), a(xp, 2, 2), alpha="2"), TypeError,
              "fastnn.matmul: argument 'alpha' must be a real number")
    yield err("beta without out", lambda xp: op(a(xp, 2, 2), a(xp, 2, 2), beta=1.0), ValueError, "'out' is required when beta != 0")
    if dtype == np.float32:
        yield err("misaligned", lambda xp: op(misaligned(6).reshape(2, 3), a(xp, 3, 2)), ValueError,
                  "fastnn.matmul: argument 'a' must be aligned", backends=CPU_ONLY)
    # The fused epilogue's own checks.
    m25, m53 = (lambda xp: a(xp, 2, 5)), (lambda xp: a(xp, 5, 3))
    yield err("bias_per_col shape", lambda xp: op(m25(xp), m53(xp), bias_per_col=a(xp, 4)), ValueError,
              "fastnn.matmul: ", "argument 'bias_per_col' must have shape (3,)")
    yield err("bias_per_row shape", lambda xp: op(m25(xp), m53(xp), bias_per_row=a(xp, 3)), ValueError,
              "fastnn.matmul: ", "argument 'bias_per_row' must have shape (2,)")
    yield err("bias 2-D", lambda xp: op(m25(xp), m53(xp), bias_per_col=a(xp, 1, 3)), ValueError, "argument 'bias_per_col' must be 1-D")
    yield err("bias dtype", lambda xp: op(m25(xp), m53(xp), bias_per_col=xp.ones(3, other_dtype(dtype))), TypeError,
              "argument 'bias_per_col' must have the dtype of 'a'")
    yield err("bias strided", lambda xp: op(m25(xp), m53(xp), bias_per_row=a(xp, 4)[::2]), ValueError,
              "argument 'bias_per_row' must be C-contiguous")
    yield err("bias aliasing out", lambda xp: (lambda o: op(a(xp, 3, 2), a(xp, 2, 3), out=o, bias_per_col=o[0]))(xp.zeros((3, 3), dtype)),
              ValueError, "must not share memory")


def _with_relu(y, sample):
    return ref.relu(y) if sample.op_kwargs.get("relu") else y


# (N, in, out): odd sizes, a mid-sized layer, K tails past the GEMM's K blocks (256 / 128), an
# empty batch.
LINEAR_SHAPES = [(1, 1, 1), (3, 7, 17), (17, 33, 65), (65, 17, 3), (9, 520, 17), (33, 300, 10), (7, 1, 65),
                 (5, 257, 6), (5, 1025, 6), (0, 5, 3)]


def _linear_samples(rng, dtype):
    for i, ((n, k, o), bias) in enumerate(itertools.product(LINEAR_SHAPES, [True, False])):
        x, w = randn(rng, (n, k), dtype), randn(rng, (o, k), dtype)
        b = randn(rng, o, dtype) if bias else None
        yield Sample(f"N={n} in={k} out={o} bias={bias}", (x, w, b), op_kwargs={"relu": i % 3 == 0},
                     grad_out=randn(rng, (n, o), dtype))


def _linear_errors(dtype):
    a = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("bool", lambda xp: ops.linear(xp.ones((2, 2), bool), a(xp, 2, 2)), TypeError, "fastnn.linear: argument 'x'")
    yield err("mixed", lambda xp: ops.linear(a(xp, 2, 3), xp.ones((4, 3), other_dtype(dtype))), TypeError, "fastnn.linear: argument 'weight'")
    yield err("weight cols", lambda xp: ops.linear(a(xp, 2, 3), a(xp, 4, 5)), ValueError, "argument 'weight' must have 3 columns")
    yield err("x 3-D", lambda xp: ops.linear(a(xp, 2, 3, 1), a(xp, 4, 3)), ValueError, "argument 'x' must be 2-D")
    yield err("bias", lambda xp: ops.linear(a(xp, 2, 3), a(xp, 4, 3), a(xp, 5)), ValueError, "argument 'bias' must have shape (4,)")
    yield err("x transposed", lambda xp: ops.linear(a(xp, 3, 2).T, a(xp, 4, 3)), ValueError, "argument 'x' must be C-contiguous")
    yield err("grad_out", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 5)), ValueError,
              "fastnn.linear_backward: argument 'grad_out' must have shape (2, 4)")
    yield err("grad_bias without bias", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4), bias=False,
                                                                        grad_bias=a(xp, 4)),
              ValueError, "fastnn.linear_backward: argument 'grad_bias' must be None when bias=False")
    yield err("grad_weight", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4), grad_weight=a(xp, 3, 4)),
              ValueError, "argument 'grad_weight' must have shape (4, 3)")
    yield err("grad_bias dtype", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4),
                                                                grad_bias=xp.ones(4, other_dtype(dtype))), TypeError, "'grad_bias'")
    yield err("read-only grad_weight", lambda xp: ops.linear_backward(a(xp, 2, 3), a(xp, 4, 3), a(xp, 2, 4),
                                                                      grad_weight=readonly(xp, (4, 3), dtype)),
              ValueError, "'grad_weight'", "writeable", backends=CPU_ONLY)


def _linear_backward_inputs(s, fwd):
    x, w, b = s.args
    return (x, w, s.grad_out), {"bias": b is not None}


# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias): 1x1, strides,
# rectangular kernels and strides, dilation, groups, depthwise, a 1x1 output, padding wider
# than the input, K = C_in*kh*kw past the GEMM's K block, an empty batch.
CONV2D_CONFIGS = {
    "1x1": (2, 3, 5, 6, 7, 1, 1, 0, 1, 1, True),
    "1x1-stride2": (2, 3, 7, 7, 5, 1, 2, 0, 1, 1, False),
    "1x1-grouped": (3, 4, 3, 5, 6, 1, 1, 0, 1, 2, True),
    "3x3-pad1": (2, 3, 8, 9, 4, 3, 1, 1, 1, 1, True),
    "5x5-pad2-stride2": (2, 1, 11, 10, 6, 5, 2, 2, 1, 1, True),
    "3x1-stride1x2-pad1x0": (2, 3, 7, 8, 5, (3, 1), (1, 2), (1, 0), 1, 1, True),
    "2x5-pad0x2-dil2x1": (2, 2, 9, 7, 3, (2, 5), 1, (0, 2), (2, 1), 1, False),
    "3x3-dil2-pad2": (2, 3, 9, 9, 4, 3, 1, 2, 2, 1, True),
    "groups2-stride2": (2, 4, 9, 8, 6, 3, 2, 1, 1, 2, True),
    "depthwise": (2, 7, 8, 7, 7, 3, 1, 1, 1, 7, True),
    "depthwise-x2-stride2": (2, 3, 9, 9, 6, 3, 2, 1, 1, 3, False),
    "batch1": (1, 3, 6, 6, 2, 3, 1, 0, 1, 1, True),
    "out1x1": (3, 2, 5, 5, 3, 5, 1, 0, 1, 1, True),
    "out1x1-stride-pad": (2, 3, 3, 2, 4, 3, 2, (0, 1), 1, 1, True),
    "pad-larger-than-input": (1, 2, 2, 3, 3, 3, 1, 2, 1, 1, True),
    "deep-K297": (2, 33, 6, 6, 17, 3, 1, 1, 1, 1, True),
    "empty-batch": (0, 3, 5, 5, 4, 3, 1, 1, 1, 1, True),
}
# Layers large enough to run threaded on the CPU (images split across threads, threads inside one
# image): tests/test_conv2d.py runs them on two threads.
CONV2D_THREADED_CONFIGS = {
    "threaded-batch": (8, 5, 12, 12, 8, 3, 1, 1, 1, 1, True),
    "threaded-one-image": (1, 16, 16, 16, 16, 3, 1, 1, 1, 1, True),
    "threaded-uneven-batch": (3, 8, 12, 12, 8, 3, 1, 1, 1, 1, True),
}


def conv2d_case(config, dtype, rng):
    """(x, weight, bias, hyper-parameter kwargs) for one CONV2D_CONFIGS entry."""
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups, has_bias = config
    kh, kw = (k, k) if isinstance(k, int) else k
    x = randn(rng, (n, c_in, h, w), dtype)
    weight = randn(rng, (c_out, c_in // groups, kh, kw), dtype)
    bias = randn(rng, c_out, dtype) if has_bias else None
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_output_shape(x_shape, w_shape, stride, padding, dilation, groups):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    kh, kw = w_shape[2:]
    return (x_shape[0], w_shape[0], (x_shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (x_shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def _conv2d_samples(rng, dtype):
    for i, (name, config) in enumerate(CONV2D_CONFIGS.items()):
        x, w, b, hyper = conv2d_case(config, dtype, rng)
        dy = randn(rng, conv2d_output_shape(x.shape, w.shape, **hyper), dtype)
        yield Sample(name, (x, w, b), hyper, op_kwargs={"relu": i % 4 == 1}, grad_out=dy)


def _conv2d_errors(dtype):
    z = lambda xp, *shape, t=dtype: xp.zeros(shape, t)  # noqa: E731
    x, w = (lambda xp: z(xp, 2, 4, 6, 6)), (lambda xp: z(xp, 6, 4, 3, 3))
    op, bwd = ops.conv2d, ops.conv2d_backward
    yield err("x 3-D", lambda xp: op(z(xp, 4, 6, 6), w(xp)), ValueError, "fastnn.conv2d", "'x'", "4-D", "(4, 6, 6)")
    yield err("grad_bias without bias", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), bias=False, grad_bias=z(xp, 6)),
              ValueError, "fastnn.conv2d_backward: argument 'grad_bias' must be None when bias=False")
    yield err("weight 3-D", lambda xp: op(x(xp), z(xp, 6, 4, 3)), ValueError, "'weight'", "4-D", "(6, 4, 3)")
    yield err("groups vs C_in", lambda xp: op(z(xp, 2, 5, 6, 6), z(xp, 6, 2, 3, 3), groups=2), ValueError, "groups", "C_in=5")
    yield err("groups vs C_out", lambda xp: op(x(xp), z(xp, 5, 2, 3, 3), groups=2), ValueError, "groups", "C_out=5")
    yield err("weight channels", lambda xp: op(x(xp), z(xp, 6, 3, 3, 3)), ValueError, "'weight'", "C_in/groups", "4", "(6, 3, 3, 3)")
    yield err("kernel too big", lambda xp: op(x(xp), z(xp, 6, 4, 7, 3)), ValueError, "kernel (7, 3)", "padded input (6, 6)")
    yield err("dilated too big", lambda xp: op(x(xp), w(xp), dilation=3), ValueError, "spans (7, 7)", "padded input (6, 6)")
    yield err("stride 0", lambda xp: op(x(xp), w(xp), stride=(1, 0)), ValueError, "'stride'", ">= 1", "(1, 0)")
    yield err("dilation 0", lambda xp: op(x(xp), w(xp), dilation=0), ValueError, "'dilation'", ">= 1")
    yield err("padding < 0", lambda xp: op(x(xp), w(xp), padding=(-1, 0)), ValueError, "'padding'", ">= 0", "(-1, 0)")
    yield err("groups 0", lambda xp: op(x(xp), w(xp), groups=0), ValueError, "'groups'", ">= 1", "0")
    yield err("float stride", lambda xp: op(x(xp), w(xp), stride=1.5), TypeError, "fastnn.conv2d", "'stride'")
    yield err("padding triple", lambda xp: op(x(xp), w(xp), padding=(1, 2, 3)), TypeError, "'padding'")
    yield err("bool groups", lambda xp: op(x(xp), w(xp), groups=True), TypeError, "'groups'")
    yield err("mixed weight", lambda xp: op(x(xp), z(xp, 6, 4, 3, 3, t=other_dtype(dtype))), TypeError, "'weight'", np.dtype(dtype).name)
    yield err("int x", lambda xp: op(x(xp).astype(np.int32), w(xp)), TypeError, "'x'", "int32")
    yield err("bias shape", lambda xp: op(x(xp), w(xp), z(xp, 5)), ValueError, "'bias'", "(6,)", "(5,)")
    yield err("strided x", lambda xp: op(x(xp)[:, :, :, ::2], w(xp)), ValueError, "'x'", "C-contiguous")
    # Sizes past int64: the padded height, and one image's column buffer.
    yield err("padding overflows", lambda xp: op(z(xp, 0, 1, 1, 1), z(xp, 1, 1, 1, 1), padding=2**62), ValueError, "overflows")
    yield err("columns overflow", lambda xp: op(z(xp, 0, 1, 1, 1), z(xp, 1, 1, 1, 1), padding=2**31), ValueError, "overflows")
    yield err("grad_out shape", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 5)), ValueError,
              "fastnn.conv2d_backward", "'grad_out'", "(2, 6, 4, 4)", "(2, 6, 4, 5)")
    yield err("grad_weight shape", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_weight=z(xp, 6, 4, 3, 2)), ValueError,
              "'grad_weight'", "(6, 4, 3, 3)")
    yield err("grad_bias dtype", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_bias=z(xp, 6, t=other_dtype(dtype))),
              TypeError, "'grad_bias'")
    yield err("read-only grad_weight", lambda xp: bwd(x(xp), w(xp), z(xp, 2, 6, 4, 4), grad_weight=readonly(xp, (6, 4, 3, 3), dtype)),
              ValueError, "'grad_weight'", "writeable", backends=CPU_ONLY)
    yield err("grad_weight aliases weight", lambda xp: (lambda wt: bwd(x(xp), wt, z(xp, 2, 6, 4, 4), grad_weight=wt))(w(xp)),
              ValueError, "'grad_weight'", "share memory")


def _conv2d_backward_inputs(s, fwd):
    x, w, b = s.args
    return (x, w, s.grad_out), {"bias": b is not None, **s.kwargs}


op_db: list[OpInfo] = [
    # beta=1 with out given (some samples) is how backward passes accumulate into .grad.
    OpInfo("matmul", ops.matmul, ref.matmul, _matmul_samples, _matmul_errors, tol=DOT_PRODUCTS),
    OpInfo("linear", ops.linear, ref.linear, _linear_samples, _linear_errors, tol=DOT_PRODUCTS,
           grad_tol=Tol(FLOAT32_RTOL_REDUCTION, "dx sums over out, dweight and dbias over the batch: sqrt(K) growth"),
           backward=ops.linear_backward, backward_ref=ref.linear_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_linear_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"},
           call_ref=lambda e, s: {"y": _with_relu(ref.linear(*s.args), s)}),
    OpInfo("conv2d", ops.conv2d, ref.conv2d, _conv2d_samples, _conv2d_errors,
           tol=Tol(FLOAT32_RTOL_REDUCTION, "each output sums K = C_in/groups*kh*kw (<= 300) products: sqrt(K) growth"),
           grad_tol=Tol(FLOAT32_RTOL_REDUCTION, "dx sums over C_out/groups*kh*kw, dweight and dbias over N*H_out*W_out "
                        "(<= 150 here) terms: sqrt(K) growth"),
           backward=ops.conv2d_backward, backward_ref=ref.conv2d_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_conv2d_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"},
           call_ref=lambda e, s: {"y": _with_relu(ref.conv2d(*s.args, **s.kwargs), s)}),
]
