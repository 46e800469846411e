"""Registry entries (tests/opinfo.py) of pooling and batch normalisation."""

from __future__ import annotations

import numpy as np

from conftest import FLOAT32_RTOL
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import (
    CPU_ONLY,
    ELEMENTWISE,
    EXACT,
    OpInfo,
    Sample,
    Tol,
    as_dict,
    err,
    other_dtype,
    randn,
    readonly,
)


# ---- pooling ----------------------------------------------------------------------------------

# (input shape, kernel_size, stride, padding): odd sizes, overlapping windows (k3 s2), padding,
# rectangular windows and strides, a window as large as the padded input, a single pixel, and
# the 2x2 stride-2 fast paths with odd H / W.
POOL2D_CONFIGS = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 1, 1, 1), 1, None, 0),
    ((3, 2, 7, 7), 3, 2, 1),
    ((2, 3, 17, 17), 3, 2, 0),
    ((1, 4, 17, 7), (3, 2), (2, 1), (1, 1)),
    ((2, 1, 3, 5), (2, 3), (1, 2), (1, 0)),
    ((1, 2, 3, 3), 5, 1, 2),
    ((3, 7, 33, 17), 3, 1, 1),
    ((2, 3, 7, 9), 2, None, 0),
    ((1, 2, 5, 70), 2, 2, 0),
]


def _pool_samples(max_pool: bool):
    def samples(rng, dtype):
        for i, (shape, kernel_size, stride, padding) in enumerate(POOL2D_CONFIGS):
            x = randn(rng, shape, dtype, 2.0)
            window = (kernel_size, stride, padding)
            s = Sample(f"{shape} k={kernel_size} s={stride} p={padding}", (x, *window),
                       grad_out=randn(rng, ref.avg_pool2d(np.zeros(shape), *window).shape, dtype))
            if max_pool:
                if i % 2:
                    x[...] = np.round(x)  # many ties: the first maximum in scan order wins
                s.op_kwargs = [{}, {"index_dtype": "int32"}, {"index_dtype": np.int64}][i % 3]
                if i % 4 in (1, 2):  # max_pool2d_backward with the window (a gather on the GPU) or without
                    s.bwd_op_kwargs = dict(zip(("kernel_size", "stride", "padding"), window))
            yield s

    return samples


def _max_pool_call(entry, s):
    y, indices = ops.max_pool2d(*s.args, **s.kwargs, **s.op_kwargs)
    # int64 unless asked otherwise.
    assert indices.dtype == np.dtype(s.op_kwargs.get("index_dtype", "int64")), f"indices {indices.dtype}, {s.op_kwargs}"
    return {"y": y, "indices": indices}


POOL_GRAD = Tol(FLOAT32_RTOL, "each input gradient sums at most ceil(k/s)^2 float32 terms (a few ulps)")


def _pool_errors(dtype):
    X = lambda xp: xp.zeros((1, 2, 5, 5), dtype)  # noqa: E731
    g = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("kernel 0", lambda xp: ops.max_pool2d(X(xp), 0), ValueError, "max_pool2d", "kernel_size", "(0, 0)")
    yield err("stride 0", lambda xp: ops.max_pool2d(X(xp), 2, stride=0), ValueError, "max_pool2d", "stride", "(0, 0)")
    yield err("padding < 0", lambda xp: ops.max_pool2d(X(xp), 2, padding=-1), ValueError, "padding", ">= 0")
    yield err("padding > half", lambda xp: ops.max_pool2d(X(xp), 3, padding=2), ValueError, "max_pool2d", "padding", "half", "(2, 2)")
    yield err("3-D", lambda xp: ops.max_pool2d(X(xp)[0], 2), ValueError, "max_pool2d", "4-D", "(2, 5, 5)")
    yield err("int", lambda xp: ops.max_pool2d(X(xp).astype(np.int32), 2), TypeError, "max_pool2d", "float32", "int32")
    yield err("float kernel", lambda xp: ops.max_pool2d(X(xp), 2.5), TypeError, "max_pool2d", "kernel_size", "2.5")
    yield err("kernel triple", lambda xp: ops.max_pool2d(X(xp), (2, 2, 2)), TypeError, "kernel_size")
    yield err("index_dtype", lambda xp: ops.max_pool2d(X(xp), 2, index_dtype=np.int16), TypeError, "index_dtype", "int16")
    yield err("strided", lambda xp: ops.max_pool2d(X(xp)[:, :, ::2], 2), ValueError, "C-contiguous")
    bwd = ops.max_pool2d_backward
    yield err("index too big", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.full((1, 2, 2, 2), 25, np.int64), (1, 2, 5, 5)),
              ValueError, "max_pool2d_backward", "indices", "25")
    yield err("index negative", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.full((1, 2, 2, 2), -1, np.int64), (1, 2, 5, 5)),
              ValueError, "indices", "-1")
    yield err("indices shape", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.zeros((1, 2, 2, 1), np.int64), (1, 2, 5, 5)),
              ValueError, "indices", "(1, 2, 2, 1)")
    yield err("float indices", lambda xp: bwd(g(xp, 1, 2, 2, 2), xp.zeros((1, 2, 2, 2), np.float32), (1, 2, 5, 5)),
              TypeError, "indices", "int64")
    yield err("grad_out channels", lambda xp: bwd(g(xp, 1, 3, 2, 2), xp.zeros((1, 3, 2, 2), np.int64), (1, 2, 5, 5)),
              ValueError, "grad_out", "(1, 3, 2, 2)")
    yield err("grad_out vs window", lambda xp: bwd(g(xp, 1, 2, 3, 3), xp.zeros((1, 2, 3, 3), np.int64), (1, 2, 5, 5), 2),
              ValueError, "max_pool2d_backward: argument 'grad_out' must have shape")


def _avg_pool_errors(dtype):
    X = lambda xp: xp.zeros((1, 2, 5, 5), dtype)  # noqa: E731
    g = lambda xp, *shape: xp.ones(shape, dtype)  # noqa: E731
    yield err("negative stride", lambda xp: ops.avg_pool2d(X(xp), 2, stride=(1, -1)), ValueError, "avg_pool2d", "stride", "(1, -1)")
    yield err("window past input", lambda xp: ops.avg_pool2d(X(xp), 7), ValueError, "avg_pool2d", "(5, 5)", "(7, 7)")
    yield err("int", lambda xp: ops.avg_pool2d(X(xp).astype(np.int64), 2), TypeError, "avg_pool2d", "int64")
    yield err("grad_out shape", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 3, 3), (1, 2, 5, 5), 2), ValueError,
              "avg_pool2d_backward", "grad_out", "(1, 2, 2, 2)")
    yield err("input_shape 3-D", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 2, 2), (1, 2, 5), 2), ValueError, "input_shape", "4-D")
    yield err("strided grad_out", lambda xp: ops.avg_pool2d_backward(g(xp, 1, 2, 2, 4)[..., ::2], (1, 2, 5, 5), 2),
              ValueError, "grad_out", "C-contiguous")


def _global_pool_samples(rng, dtype):
    for shape in [(1, 1, 1, 1), (2, 3, 7, 7), (3, 17, 5, 3), (2, 5, 33, 65), (128, 64, 8, 8)]:
        yield Sample(f"{shape}", (randn(rng, shape, dtype),), grad_out=randn(rng, shape[:2], dtype))


def _global_pool_errors(dtype):
    yield err("3-D", lambda xp: ops.global_avg_pool2d(xp.zeros((2, 5, 5), dtype)), ValueError, "global_avg_pool2d", "4-D")
    yield err("int", lambda xp: ops.global_avg_pool2d(xp.zeros((1, 2, 5, 5), np.int32)), TypeError, "global_avg_pool2d", "int32")
    yield err("input_shape not ints", lambda xp: ops.global_avg_pool2d_backward(xp.ones((1, 2), dtype), "abc"), TypeError, "input_shape")
    yield err("grad_out shape", lambda xp: ops.global_avg_pool2d_backward(xp.ones((2, 2), dtype), (1, 2, 5, 5)), ValueError,
              "grad_out", "(1, 2)")
    yield err("strided", lambda xp: ops.global_avg_pool2d(xp.zeros((1, 2, 5, 10), dtype)[..., ::2]), ValueError,
              "global_avg_pool2d", "'x'", "C-contiguous")


# ---- batch norm -------------------------------------------------------------------------------

BATCH_NORM_SHAPES = [(2, 1), (3, 7), (17, 33), (65, 3), (1, 3, 7, 7), (2, 3, 5, 5), (7, 17, 1, 1), (3, 4, 17, 3), (4, 5, 9)]
BATCH_NORM = Tol(FLOAT32_RTOL, "per-channel sums accumulate in double, so each output is a few float32 roundings away")


def batch_norm_params(rng, channels, dtype):
    """weight, bias, running_mean, running_var: random but plausible (var > 0)."""
    return (randn(rng, channels, dtype, 0.5, 1.0), randn(rng, channels, dtype), randn(rng, channels, dtype),
            rng.uniform(0.5, 2.0, channels).astype(dtype))


def batch_norm_dx_scale(grad_out, weight, inv_std) -> float:
    """||weight * inv_std * dy||: the size of the terms the training dx = weight * inv_std *
    (dy - mean(dy) - xhat * mean(dy * xhat)) subtracts, which can cancel almost completely (with
    two values per channel |dx| ~ 1e-4 |dy|): dx's error is measured against this, not ||dx||."""
    g = np.asarray(grad_out, np.float64)
    shape = (1, -1) + (1,) * (g.ndim - 2)
    scale = np.ones(g.shape[1]) if weight is None else np.asarray(weight, np.float64)
    return float(np.linalg.norm((scale * np.asarray(inv_std, np.float64)).reshape(shape) * g))


def _bn_train_samples(rng, dtype):
    for i, shape in enumerate(BATCH_NORM_SHAPES):
        x = randn(rng, shape, dtype, 3.0, 2.0)
        w, b, rm, rv = batch_norm_params(rng, shape[1], dtype)
        if i % 4 == 3:
            w = b = None  # affine=False
        if i % 3 == 2:
            rm = rv = None  # track_running_stats=False
        yield Sample(f"{shape} affine={w is not None} running={rm is not None}", (x, w, b, rm, rv),
                     dict(momentum=0.3, eps=1e-3), grad_out=randn(rng, shape, dtype))


def _bn_train_call(entry, s):
    y, mean, inv_std = ops.batch_norm_train(*s.args, **s.kwargs)
    return dict(y=y, mean=mean, inv_std=inv_std, running_mean=s.args[3], running_var=s.args[4])


def _bn_train_ref(entry, s):
    return as_dict(ref.batch_norm_train(*s.args, **s.kwargs), ("y", "mean", "inv_std", "running_mean", "running_var"))


def _bn_eval_samples(rng, dtype):
    # Eval mode needs no batch statistics: one value per channel, or none, is fine.
    for i, shape in enumerate([(1, 3), (3, 7), (1, 3, 1, 1), (2, 3, 5, 5), (0, 3, 2, 2), (17, 5, 3)]):
        x = randn(rng, shape, dtype)
        w, b, rm, rv = batch_norm_params(rng, shape[1], dtype)
        if i % 2:
            w = b = None
        yield Sample(f"{shape} affine={w is not None}", (x, w, b, rm, rv), dict(eps=1e-4), grad_out=randn(rng, shape, dtype))


def _bn_train_errors(dtype):
    X4 = lambda xp: xp.zeros((2, 3, 4, 4), dtype)  # noqa: E731
    C = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
    train, bwd = ops.batch_norm_train, ops.batch_norm_backward
    yield err("1-D", lambda xp: train(xp.zeros(4, dtype), C(xp), C(xp), None, None), ValueError, "batch_norm_train", "(N, C)", "(4,)")
    yield err("one value per channel", lambda xp: train(xp.zeros((1, 3), dtype), C(xp), C(xp), None, None), ValueError,
              "batch_norm_train", "more than 1 value per channel", "(1, 3)")
    yield err("int x", lambda xp: train(X4(xp).astype(np.int64), C(xp), C(xp), None, None), TypeError, "batch_norm_train", "'x'", "int64")
    yield err("weight dtype", lambda xp: train(X4(xp), xp.ones(3, other_dtype(dtype)), C(xp), None, None), TypeError,
              "batch_norm_train", "weight", np.dtype(other_dtype(dtype)).name)
    yield err("weight shape", lambda xp: train(X4(xp), C(xp, 4), C(xp), None, None), ValueError, "batch_norm_train", "weight", "(3,)", "(4,)")
    yield err("running stats apart", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), None), ValueError, "running_mean", "running_var", "together")
    yield err("momentum < 0", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), momentum=-0.1), ValueError, "momentum", "-0.1")
    yield err("eps nan", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), eps=float("nan")), ValueError, "eps", "nan")
    yield err("momentum str", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp), momentum="x"), TypeError, "batch_norm_train", "momentum")
    yield err("strided running_var", lambda xp: train(X4(xp), C(xp), C(xp), C(xp), C(xp, 6)[::2]), ValueError, "running_var", "C-contiguous")
    yield err("read-only running_mean", lambda xp: train(X4(xp), C(xp), C(xp), readonly(xp, 3, dtype), C(xp)), ValueError,
              "running_mean", "writeable", backends=CPU_ONLY)
    yield err("backward grad_out", lambda xp: bwd(X4(xp)[:1], X4(xp), C(xp), C(xp), C(xp)), ValueError,
              "batch_norm_backward", "grad_out", "(1, 3, 4, 4)")
    yield err("backward without mean", lambda xp: bwd(X4(xp), X4(xp), C(xp), None, C(xp)), ValueError, "batch_norm_backward", "mean", "required")
    yield err("grad_weight without weight", lambda xp: bwd(X4(xp), X4(xp), None, C(xp), C(xp), grad_weight=C(xp)), ValueError,
              "fastnn.batch_norm_backward: argument 'grad_weight' must be None when weight is None")
    yield err("backward grad_weight", lambda xp: bwd(X4(xp), X4(xp), C(xp), C(xp), C(xp), grad_weight=C(xp, 2)), ValueError,
              "grad_weight", "(2,)")


def _bn_eval_errors(dtype):
    X4 = lambda xp: xp.zeros((2, 3, 4, 4), dtype)  # noqa: E731
    C = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
    ev, bwd = ops.batch_norm_eval, ops.batch_norm_backward
    yield err("eval without running stats", lambda xp: ev(X4(xp), C(xp), C(xp), None, None), ValueError, "batch_norm_eval", "required")
    yield err("eval running_var 2-D", lambda xp: ev(X4(xp), C(xp), C(xp), C(xp), xp.ones((3, 1), dtype)), ValueError, "running_var", "(3, 1)")
    yield err("eval int x", lambda xp: ev(X4(xp).astype(np.int32), C(xp), C(xp), C(xp), C(xp)), TypeError, "batch_norm_eval", "'x'", "int32")
    yield err("eval strided x", lambda xp: ev(X4(xp)[:, :, ::2], C(xp), C(xp), C(xp), C(xp)), ValueError, "batch_norm_eval", "'x'", "C-contiguous")
    yield err("eval eps < 0", lambda xp: ev(X4(xp), C(xp), C(xp), C(xp), C(xp), eps=-1.0), ValueError, "batch_norm_eval", "eps")
    yield err("eval backward inv_std shape", lambda xp: bwd(X4(xp), X4(xp), C(xp), C(xp), C(xp, 4), training=False), ValueError,
              "batch_norm_backward", "inv_std", "(4,)")


def _bn_eval_backward_inputs(s, fwd):
    x, w, _, rm, rv = s.args
    inv_std = (rv + s.kwargs["eps"]) ** -0.5  # the running statistics are constants here
    return (s.grad_out, x, w, rm, inv_std), {"training": False}


def _bn_train_grad_scale(s, args):
    grad_out, _, weight, _, inv_std = args
    return {"dx": batch_norm_dx_scale(grad_out, weight, inv_std)}


op_db: list[OpInfo] = [
    OpInfo("max_pool2d", ops.max_pool2d, ref.max_pool2d, _pool_samples(max_pool=True), _pool_errors,
           tol=EXACT, grad_tol=POOL_GRAD, outputs=("y", "indices"), call_op=_max_pool_call,
           backward=ops.max_pool2d_backward, backward_ref=ref.max_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, fwd["indices"], s.args[0].shape), {})),
    OpInfo("avg_pool2d", ops.avg_pool2d, ref.avg_pool2d, _pool_samples(max_pool=False), _avg_pool_errors,
           tol=Tol(FLOAT32_RTOL, "each output sums kh*kw (<= 25) float32 terms: a few ulps"), grad_tol=POOL_GRAD,
           backward=ops.avg_pool2d_backward, backward_ref=ref.avg_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0].shape, *s.args[1:]), {})),
    OpInfo("global_avg_pool2d", ops.global_avg_pool2d, ref.global_avg_pool2d, _global_pool_samples, _global_pool_errors,
           tol=Tol(FLOAT32_RTOL, "the plane's sum runs in double: one rounding"), grad_tol=ELEMENTWISE,
           backward=ops.global_avg_pool2d_backward, backward_ref=ref.global_avg_pool2d_backward,
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0].shape), {})),
    OpInfo("batch_norm_train", ops.batch_norm_train, ref.batch_norm_train, _bn_train_samples, _bn_train_errors,
           tol=BATCH_NORM, grad_tol=BATCH_NORM, call_op=_bn_train_call, call_ref=_bn_train_ref,
           backward=ops.batch_norm_backward, backward_ref=ref.batch_norm_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=lambda s, fwd: ((s.grad_out, s.args[0], s.args[1], fwd["mean"], fwd["inv_std"]), {}),
           accumulates={"grad_weight": "dweight", "grad_bias": "dbias"}, grad_scale=_bn_train_grad_scale),
    OpInfo("batch_norm_eval", ops.batch_norm_eval, ref.batch_norm_eval, _bn_eval_samples, _bn_eval_errors,
           tol=BATCH_NORM, grad_tol=BATCH_NORM,
           backward=ops.batch_norm_backward, backward_ref=ref.batch_norm_backward, grad_names=("dx", "dweight", "dbias"),
           backward_inputs=_bn_eval_backward_inputs, accumulates={"grad_weight": "dweight", "grad_bias": "dbias"}),
]
