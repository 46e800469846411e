"""Learning-rate schedules against their formulas (and PyTorch's, where torch is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.optim import lr


def sgd(base: float = 0.1, **kw) -> optim.SGD:
    return optim.SGD(nn.Linear(3, 2).parameters(), lr=base, momentum=0.9, **kw)


def trace(schedule, opt, steps: int) -> list[float]:
    """lr in force at steps 0 .. steps-1 (construction sets step 0)."""
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        schedule.step()
    return out


def test_step_lr_formula():
    opt = sgd(0.1)
    got = trace(lr.StepLR(opt, step_size=3, gamma=0.5), opt, 10)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (t // 3) for t in range(10)], rtol=1e-15)


def test_cosine_with_warmup_formula():
    opt = sgd(0.2)
    schedule = lr.CosineAnnealingLR(opt, T_max=20, eta_min=0.01, warmup_steps=5, warmup_start_factor=0.1)
    got = trace(schedule, opt, 25)
    expected = [0.2 * (0.1 + 0.9 * t / 5) if t < 5 else
                0.01 + 0.19 * (1 + math.cos(math.pi * (t - 5) / 15)) / 2 if t <= 20 else 0.01 for t in range(25)]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got[5] == pytest.approx(0.2) and got[20] == pytest.approx(0.01)
    assert schedule.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_one_cycle_formula():
    opt = sgd(0.1)
    schedule = lr.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3, div_factor=10, final_div_factor=100)
    got = trace(schedule, opt, 10)
    # warm phase ends at step 0.3*10 - 1 = 2: 0.1 -> 1.0 by cosine, then 1.0 -> 0.001 over steps 2..9
    cos = lambda a, b, p: b + (a - b) / 2 * (math.cos(math.pi * p) + 1)  # noqa: E731
    expected = [cos(0.1, 1.0, t / 2) if t <= 2 else cos(1.0, 0.001, (t - 2) / 7) for t in range(10)]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    with pytest.raises(ValueError, match="past total_steps"):
        schedule.step()
        schedule.step()


@pytest.mark.parametrize("make", [
    lambda o, torch_sched, t: (lr.StepLR(o, 4, 0.3), torch_sched.StepLR(t, 4, 0.3)),
    lambda o, torch_sched, t: (lr.CosineAnnealingLR(o, 30, eta_min=0.001), torch_sched.CosineAnnealingLR(t, 30, 0.001)),
    lambda o, torch_sched, t: (lr.OneCycleLR(o, 0.5, 30), torch_sched.OneCycleLR(t, 0.5, total_steps=30)),
    lambda o, torch_sched, t: (lr.OneCycleLR(o, 0.5, 30, three_phase=True, anneal_strategy="linear"),
                               torch_sched.OneCycleLR(t, 0.5, total_steps=30, three_phase=True,
                                                      anneal_strategy="linear")),
])
def test_matches_pytorch(make):
    torch = pytest.importorskip("torch")
    opt = sgd(0.1)
    t_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    ours, theirs = make(opt, torch.optim.lr_scheduler, t_opt)
    for _ in range(30):
        assert opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(t_opt.param_groups[0]["momentum"], rel=1e-12)
        ours.step()
        t_opt.step()
        theirs.step()


def test_one_cycle_cycles_adam_beta1():
    opt = optim.Adam(nn.Linear(3, 2).parameters(), lr=0.01)
    schedule = lr.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    for _ in range(2):
        schedule.step()
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.85)  # peak lr <-> lowest momentum


def test_state_dict_round_trip_restores_position():
    opt = sgd(0.1)
    schedule = lr.CosineAnnealingLR(opt, T_max=50, warmup_steps=5)
    trace(schedule, opt, 17)
    state = schedule.state_dict()
    opt2 = sgd(0.1)
    resumed = lr.CosineAnnealingLR(opt2, T_max=50, warmup_steps=5)
    resumed.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert trace(resumed, opt2, 10) == trace(schedule, opt, 10)


@pytest.mark.parametrize("build, match", [
    (lambda o: lr.StepLR(o, 0), "step_size"),
    (lambda o: lr.CosineAnnealingLR(o, 10, warmup_steps=10), "warmup_steps"),
    (lambda o: lr.OneCycleLR(o, -1.0, 10), "max_lr"),
    (lambda o: lr.OneCycleLR(o, 1.0, 10, pct_start=1.5), "pct_start"),
])
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build(sgd())
    with pytest.raises(TypeError, match="optimizer"):
        lr.StepLR(object(), 3)
