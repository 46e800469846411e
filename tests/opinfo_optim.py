"""Registry entries (tests/opinfo.py) of the optimiser steps, single- and multi-tensor."""

from __future__ import annotations

import itertools

import numpy as np

from conftest import FLOAT32_RTOL
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import (
    CPU_ONLY,
    OpInfo,
    Sample,
    Tol,
    as_dict,
    err,
    other_dtype,
    randn,
    readonly,
)


# ---- optimisers -------------------------------------------------------------------------------

OPTIM = Tol(FLOAT32_RTOL, "elementwise update of the parameter and its state: a few float32 roundings")
SGD_SETTINGS = [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
                dict(momentum=0.5, dampening=0.3, weight_decay=1e-2)]


def _sgd_state(rng, n, dtype, i, settings):
    p, g = randn(rng, n, dtype), randn(rng, n, dtype)
    buf = randn(rng, n, dtype) if settings["momentum"] else None
    return p, g, buf, dict(lr=0.1, first_step=buf is not None and i % 2 == 0, **settings)


def _sgd_samples(rng, dtype):
    cases = list(itertools.product([1, 7, 33], SGD_SETTINGS)) + [(100_001, SGD_SETTINGS[3])]
    for i, (n, settings) in enumerate(cases):
        p, g, buf, kw = _sgd_state(rng, n, dtype, i, settings)
        yield Sample(f"n={n} {kw}", (p, g, buf), kw)


def _adam_state(rng, n, dtype):
    # Moments from earlier steps: exp_avg of either sign, exp_avg_sq positive.
    return randn(rng, n, dtype), randn(rng, n, dtype), randn(rng, n, dtype, 0.1), rng.uniform(0.01, 1.0, n).astype(dtype)


def _adam_samples(rng, dtype):
    for i, n in enumerate([1, 7, 33, 1001, 100_001]):
        kw = dict(step=(1, 3, 10)[i % 3], lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=(0.0, 0.1)[i % 2])
        yield Sample(f"n={n} {kw}", _adam_state(rng, n, dtype), kw)


def _sgd_call(entry, s):
    ops.sgd_step(*s.args, **s.kwargs)
    return dict(param=s.args[0], momentum_buffer=s.args[2])


def _sgd_ref(entry, s):
    return as_dict(ref.sgd_step(*s.args, **s.kwargs), ("param", "momentum_buffer"))


def _adam_call(entry, s):
    entry.op(*s.args, **s.kwargs)
    return dict(zip(("param", "exp_avg", "exp_avg_sq"), (s.args[0], s.args[2], s.args[3])))


def _adam_ref(entry, s):
    return as_dict(entry.ref(*s.args, **s.kwargs), ("param", "exp_avg", "exp_avg_sq"))


def _optim_errors(name):
    def errors(dtype):
        a = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
        if name == "sgd_step":
            yield err("int param", lambda xp: ops.sgd_step(xp.zeros(3, np.int64), a(xp), None, lr=0.1), TypeError,
                      "fastnn.sgd_step: argument 'param'")
            yield err("grad shape", lambda xp: ops.sgd_step(a(xp), a(xp, 4), None, lr=0.1), ValueError, "argument 'grad' must have shape (3,)")
            yield err("grad dtype", lambda xp: ops.sgd_step(a(xp), xp.ones(3, other_dtype(dtype)), None, lr=0.1), TypeError, "argument 'grad'")
            yield err("missing buffer", lambda xp: ops.sgd_step(a(xp), a(xp), None, lr=0.1, momentum=0.9), ValueError,
                      "'momentum_buffer' is required")
            yield err("strided grad", lambda xp: ops.sgd_step(a(xp), a(xp, 6)[::2], None, lr=0.1), ValueError, "'grad'", "C-contiguous")
            yield err("read-only param", lambda xp: ops.sgd_step(readonly(xp, 3, dtype), a(xp), None, lr=0.1), ValueError,
                      "must be writeable", backends=CPU_ONLY)
        else:
            op = getattr(ops, name)
            yield err("step 0", lambda xp: op(a(xp), a(xp), a(xp), a(xp), step=0, lr=0.1), ValueError, "argument 'step' must be >= 1")
            yield err("fractional step", lambda xp: op(a(xp), a(xp), a(xp), a(xp), step=1.5, lr=0.1), TypeError,
                      f"fastnn.{name}: argument 'step' must be an int")
            yield err("string lr", lambda xp: op(a(xp), a(xp), a(xp), a(xp), step=1, lr="0.1"), TypeError,
                      f"fastnn.{name}: argument 'lr' must be a real number")
            yield err("aliased state", lambda xp: (lambda s: op(a(xp), a(xp), s, s, step=1, lr=0.1))(a(xp)), ValueError,
                      "must not share memory")
            yield err("exp_avg shape", lambda xp: op(a(xp), a(xp), a(xp, 4), a(xp), step=1, lr=0.1), ValueError,
                      f"fastnn.{name}", "'exp_avg'", "(3,)")
            yield err("int grad", lambda xp: op(a(xp), xp.ones(3, np.int32), a(xp), a(xp), step=1, lr=0.1), TypeError,
                      f"fastnn.{name}", "'grad'")
            yield err("strided exp_avg_sq", lambda xp: op(a(xp), a(xp), a(xp), a(xp, 6)[::2], step=1, lr=0.1), ValueError,
                      f"fastnn.{name}", "'exp_avg_sq'", "C-contiguous")
    return errors


# The multi-tensor ops: one launch for a whole list on the GPU. Samples of several parameters of
# odd sizes, and one of 60 (past the 48 tensor slots of one GPU launch).


def _param_sizes(rng):
    return [[5], [1, 3, 7, 17, 1000], [int(s) for s in rng.integers(1, 300, size=60)]]


def _sgd_multi_samples(rng, dtype):
    for i, (sizes, settings) in enumerate(itertools.product(_param_sizes(rng), SGD_SETTINGS)):
        states = [_sgd_state(rng, n, dtype, i, settings) for n in sizes]
        kw = states[0][3]
        buffers = None if kw["momentum"] == 0.0 else [s[2] for s in states]
        yield Sample(f"{len(sizes)} params {kw}", ([s[0] for s in states], [s[1] for s in states], buffers), kw)


def _adam_multi_samples(rng, dtype):
    for i, sizes in enumerate(_param_sizes(rng)):
        states = [_adam_state(rng, n, dtype) for n in sizes]
        kw = dict(step=(1, 4, 9)[i], lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=(0.1, 0.0, 0.05)[i])
        yield Sample(f"{len(sizes)} params {kw}", tuple([s[j] for s in states] for j in range(4)), kw)


def _sgd_multi_call(entry, s):
    ops.sgd_step_multi(*s.args, **s.kwargs)
    params, _, buffers = s.args
    out = {f"param[{i}]": p for i, p in enumerate(params)}
    return {**out, **{f"momentum_buffer[{i}]": b for i, b in enumerate(buffers or [])}}


def _sgd_multi_ref(entry, s):
    params, grads, buffers = s.args
    out = {}
    for i, (p, g) in enumerate(zip(params, grads)):
        out[f"param[{i}]"], buf = ref.sgd_step(p, g, None if buffers is None else buffers[i], **s.kwargs)
        if buffers is not None:
            out[f"momentum_buffer[{i}]"] = buf
    return out


def _adam_multi_call(entry, s):
    entry.op(*s.args, **s.kwargs)
    params, _, ms, vs = s.args
    return {f"{name}[{i}]": a for name, arrays in zip(("param", "exp_avg", "exp_avg_sq"), (params, ms, vs))
            for i, a in enumerate(arrays)}


def _adam_multi_ref(entry, s):
    out = {}
    for i, state in enumerate(zip(*s.args)):
        for name, a in zip(("param", "exp_avg", "exp_avg_sq"), entry.ref(*state, **s.kwargs)):
            out[f"{name}[{i}]"] = a
    return out


def _multi_errors(name):

    def errors(dtype):
        a = lambda xp, n=3: xp.ones(n, dtype)  # noqa: E731
        if name == "sgd_step_multi":
            op = lambda xp, params, grads, bufs=None, **kw: ops.sgd_step_multi(params, grads, bufs, **{"lr": 0.1, **kw})  # noqa: E731
        else:
            op = lambda xp, params, grads, bufs=None, **kw: getattr(ops, name)(  # noqa: E731
                params, grads, bufs or [a(xp, p.size) for p in params], [a(xp, p.size) * 2 for p in params], **{"step": 1, "lr": 0.1, **kw})
        # The list ops name themselves (fastnn.sgd_step_multi, ...) and the list item.
        yield err("list lengths", lambda xp: op(xp, [a(xp)], [a(xp), a(xp)]), ValueError,
                  f"fastnn.{name}: argument 'grads' must have one array per parameter (1); got 2")
        yield err("grad shape", lambda xp: op(xp, [a(xp), a(xp)], [a(xp), a(xp, 2)]), ValueError,
                  f"fastnn.{name}: argument 'grad' must have shape (3,)")
        yield err("int param", lambda xp: op(xp, [xp.ones(3, np.int32)], [a(xp)]), TypeError, f"fastnn.{name}: argument 'param'", "int32")
        yield err("strided grad", lambda xp: op(xp, [a(xp), a(xp)], [a(xp), a(xp, 6)[::2]]), ValueError,
                  f"fastnn.{name}: argument 'grad' must be C-contiguous")
        if name == "sgd_step_multi":
            yield err("missing buffers", lambda xp: op(xp, [a(xp)], [a(xp)], momentum=0.9), ValueError, "'momentum_buffer' is required")
        else:
            yield err("step 0", lambda xp: op(xp, [a(xp)], [a(xp)], step=0), ValueError, "argument 'step' must be >= 1")

    return errors


op_db: list[OpInfo] = [
    OpInfo("sgd_step", ops.sgd_step, ref.sgd_step, _sgd_samples, _optim_errors("sgd_step"), tol=OPTIM,
           call_op=_sgd_call, call_ref=_sgd_ref),
    OpInfo("adam_step", ops.adam_step, ref.adam_step, _adam_samples, _optim_errors("adam_step"), tol=OPTIM,
           call_op=_adam_call, call_ref=_adam_ref),
    OpInfo("adamw_step", ops.adamw_step, ref.adamw_step, _adam_samples, _optim_errors("adamw_step"), tol=OPTIM,
           call_op=_adam_call, call_ref=_adam_ref),
    OpInfo("sgd_step_multi", ops.sgd_step_multi, ref.sgd_step, _sgd_multi_samples, _multi_errors("sgd_step_multi"),
           tol=OPTIM, call_op=_sgd_multi_call, call_ref=_sgd_multi_ref),
    OpInfo("adam_step_multi", ops.adam_step_multi, ref.adam_step, _adam_multi_samples, _multi_errors("adam_step_multi"),
           tol=OPTIM, call_op=_adam_multi_call, call_ref=_adam_multi_ref),
    OpInfo("adamw_step_multi", ops.adamw_step_multi, ref.adamw_step, _adam_multi_samples, _multi_errors("adamw_step_multi"),
           tol=OPTIM, call_op=_adam_multi_call, call_ref=_adam_multi_ref),
]
