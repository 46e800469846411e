"""Optimiser kernels and classes against NumPy transcriptions of PyTorch's update rules
(fastnn.reference.optim), over several steps. Elementwise float32 updates: FLOAT32_RTOL on the
parameters after 5 steps (errors do not compound beyond a few ulps per step)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL, assert_close
from fastnn import nn, ops, optim
from fastnn import reference as ref

RTOL_STEPS = 5 * FLOAT32_RTOL


@pytest.mark.parametrize("momentum,nesterov,dampening,wd", [
    (0.0, False, 0.0, 0.0), (0.9, False, 0.0, 0.0), (0.9, True, 0.0, 5e-4), (0.5, False, 0.3, 1e-2),
])
@pytest.mark.parametrize("n", [1, 7, 33, 100_001])
def test_sgd_step_matches_reference(momentum, nesterov, dampening, wd, n, rng):
    p = rng.standard_normal(n).astype(np.float32)
    buf = np.zeros_like(p) if momentum else None
    p_ref, buf_ref = p.astype(np.float64), None
    for step in range(5):
        g = rng.standard_normal(n).astype(np.float32)
        kw = dict(lr=0.1, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov,
                  first_step=step == 0)
        ops.sgd_step(p, g, buf, **kw)
        p_ref, buf_ref = ref.sgd_step(p_ref, g, buf_ref, **kw)
    assert_close(p, p_ref, RTOL_STEPS, "param")
    if momentum:
        assert_close(buf, buf_ref, RTOL_STEPS, "momentum buffer")


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_steps_match_reference(decoupled, wd, rng):
    n = 1001
    p = rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = p.astype(np.float64), np.zeros(n), np.zeros(n)
    step_fn, ref_fn = (ops.adamw_step, ref.adamw_step) if decoupled else (ops.adam_step, ref.adam_step)
    for t in range(1, 6):
        g = rng.standard_normal(n).astype(np.float32)
        kw = dict(step=t, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd)
        step_fn(p, g, m, v, **kw)
        p_ref, m_ref, v_ref = ref_fn(p_ref, g, m_ref, v_ref, **kw)
    assert_close(p, p_ref, RTOL_STEPS, "param")
    assert_close(m, m_ref, RTOL_STEPS, "exp_avg")
    assert_close(v, v_ref, RTOL_STEPS, "exp_avg_sq")


def _model_and_grads(rng):
    model = nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return model


@pytest.mark.parametrize("cls,kw", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)),
    (optim.Adam, dict(lr=1e-2, weight_decay=1e-3)),
    (optim.AdamW, dict(lr=1e-2)),
])
def test_optimizer_classes_follow_reference(cls, kw, rng):
    model = _model_and_grads(rng)
    params = list(model.parameters())
    start = [p.data.astype(np.float64) for p in params]
    opt = cls(params, **kw)
    for _ in range(3):
        opt.step()
    for p, p0 in zip(params, start):
        g = p.grad
        expected, state = p0, None
        if cls is optim.SGD:
            for t in range(3):
                expected, state = ref.sgd_step(expected, g, state, lr=0.1, momentum=0.9, weight_decay=1e-3,
                                               nesterov=True, first_step=t == 0)
        else:
            fn = ref.adamw_step if cls is optim.AdamW else ref.adam_step
            m = v = np.zeros(p.shape)
            extra = {} if cls is optim.AdamW else {"weight_decay": 1e-3}
            for t in range(1, 4):
                expected, m, v = fn(expected, g, m, v, step=t, lr=1e-2, **extra)
        assert_close(p.data, expected, RTOL_STEPS, f"{cls.__name__} {p.shape}")


def test_optimizer_skips_params_without_grad(rng):
    model = nn.Linear(3, 2)
    before = model.weight.data.copy()
    optim.SGD(model.parameters(), lr=1.0).step()
    np.testing.assert_array_equal(model.weight.data, before)


def test_optimizer_state_dict_round_trip(rng):
    model = _model_and_grads(rng)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    opt.step()
    saved = opt.state_dict()
    twin = nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    for p, q in zip(twin.parameters(), model.parameters()):
        p.grad = q.grad.copy()
    opt2 = optim.Adam(twin.parameters(), lr=5.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 1e-2
    opt.step()
    opt2.step()
    for p, q in zip(twin.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_zero_grad_keeps_arrays(rng):
    model = _model_and_grads(rng)
    opt = optim.SGD(model.parameters(), lr=0.1)
    grad = model.weight.grad
    opt.zero_grad()
    assert model.weight.grad is grad and not grad.any()
    opt.zero_grad(set_to_none=True)
    assert model.weight.grad is None


@pytest.mark.parametrize("cls,kw,arg", [
    (optim.SGD, dict(lr=-1.0), "lr"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (optim.Adam, dict(betas=(0.9, 1.0)), "betas"),
    (optim.AdamW, dict(eps=-1.0), "eps"),
    (optim.Adam, dict(weight_decay=-1.0), "weight_decay"),
])
def test_optimizer_rejects_bad_hyperparameters(cls, kw, arg):
    with pytest.raises(ValueError, match=f"fastnn.optim.{cls.__name__}: argument '{arg}'"):
        cls(nn.Linear(2, 2).parameters(), **kw)


def test_optimizer_rejects_non_parameters():
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
