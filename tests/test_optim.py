"""The optimiser classes against NumPy transcriptions of PyTorch's update rules
(fastnn.reference.optim), over several steps, and their state and argument handling. (Each step
kernel, single- and multi-tensor, against the reference is in tests/opinfo.py.) Elementwise
float32 updates: FLOAT32_RTOL per step, so 5 * FLOAT32_RTOL over several steps (errors do not
compound beyond a few ulps per step)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL, assert_close
from fastnn import nn, optim
from fastnn import reference as ref

RTOL_STEPS = 5 * FLOAT32_RTOL


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
