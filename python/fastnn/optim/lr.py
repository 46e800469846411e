"""Learning-rate schedules (PyTorch-shaped: built on an optimizer, ``step()`` after each
optimizer step or epoch, ``get_last_lr()``, ``state_dict()`` / ``load_state_dict()``).

Each schedule is a closed-form function of its step count ``last_epoch`` (the number of
``step()`` calls since construction, which sets step 0), written into ``group["lr"]`` of every
parameter group. Being closed form, a schedule restored from a state dict is exactly where the
original was, whatever happened to the optimizer's lr in between.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from fastnn.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``lr_at(step, group_index)``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"fastnn.optim.lr.{type(self).__name__}: argument 'optimizer' must be a fastnn optimizer; "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self.step()

    def lr_at(self, step: int, group_index: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        """Writes the schedule's values at ``last_epoch`` into the optimizer."""
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.lr_at(self.last_epoch, i)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        """Advances one step and sets every group's lr."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The lr of each group as set by the last ``step()``."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (plain numbers and lists)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a state from :meth:`state_dict` and sets the optimizer's lr to match it."""
        self.__dict__.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in state.items()})
        self._apply()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


def _check(name: str, arg: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"fastnn.optim.lr.{name}: argument '{arg}' must be {expected}; got {value!r}")


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (step // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        _check("StepLR", "step_size", int(step_size) >= 1, step_size, ">= 1")
        _check("StepLR", "gamma", gamma > 0, gamma, "> 0")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, group_index: int) -> float:
        return self.base_lrs[group_index] * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Linear warm-up, then half a cosine from the base lr down to ``eta_min``.

    With W = ``warmup_steps`` and f = ``warmup_start_factor``::

        step < W:             lr = base_lr * (f + (1 - f) * step / W)
        W <= step <= T_max:   lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * (step - W) / (T_max - W))) / 2
        step > T_max:         lr = eta_min

    With W = 0 this is PyTorch's CosineAnnealingLR up to T_max (PyTorch's keeps oscillating
    after T_max; this one stays at eta_min).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, warmup_steps: int = 0,
                 warmup_start_factor: float = 0.1, last_epoch: int = -1) -> None:
        _check("CosineAnnealingLR", "T_max", int(T_max) >= 1, T_max, ">= 1")
        _check("CosineAnnealingLR", "warmup_steps", 0 <= int(warmup_steps) < int(T_max), warmup_steps,
               "in [0, T_max)")
        _check("CosineAnnealingLR", "warmup_start_factor", 0.0 <= warmup_start_factor <= 1.0, warmup_start_factor,
               "in [0, 1]")
        _check("CosineAnnealingLR", "eta_min", eta_min >= 0, eta_min, ">= 0")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        self.warmup_steps, self.warmup_start_factor = int(warmup_steps), float(warmup_start_factor)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, group_index: int) -> float:
        base, w = self.base_lrs[group_index], self.warmup_steps
        if step < w:
            f = self.warmup_start_factor
            return base * (f + (1.0 - f) * step / w)
        if step >= self.T_max:
            return self.eta_min
        progress = (step - w) / (self.T_max - w)
        return self.eta_min + (base - self.eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), PyTorch's OneCycleLR: the lr rises from
    ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of ``total_steps``, then
    anneals to ``max_lr / div_factor / final_div_factor`` (``three_phase``: back to the start
    value first). With ``cycle_momentum`` the momentum (SGD) or beta1 (Adam, AdamW) moves
    inversely between ``max_momentum`` and ``base_momentum``. Step it once per batch; stepping
    past ``total_steps`` raises ValueError.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1) -> None:
        name = "OneCycleLR"
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        _check(name, "max_lr", len(max_lrs) == len(groups) and all(v > 0 for v in max_lrs), max_lr,
               f"> 0 (one value or {len(groups)})")
        _check(name, "total_steps", int(total_steps) >= 2, total_steps, ">= 2")
        _check(name, "pct_start", 0.0 < pct_start < 1.0, pct_start, "in (0, 1)")
        _check(name, "anneal_strategy", anneal_strategy in ("cos", "linear"), anneal_strategy, "'cos' or 'linear'")
        if cycle_momentum and not all("momentum" in g or "betas" in g for g in groups):
            raise ValueError(f"fastnn.optim.lr.{name}: cycle_momentum needs an optimizer with 'momentum' or 'betas'")
        self.total_steps, self.anneal_strategy = int(total_steps), anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        self.initial_lrs = [v / div_factor for v in max_lrs]
        self.max_lrs = [float(v) for v in max_lrs]
        self.min_lrs = [v / final_div_factor for v in self.initial_lrs]
        # Phases as (last step, lr key at start, lr key at end); momentum moves inversely.
        up_end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self.phases = [(up_end, "initial", "max"), (2 * up_end, "max", "initial"),
                           (self.total_steps - 1, "initial", "min")]
        else:
            self.phases = [(up_end, "initial", "max"), (self.total_steps - 1, "max", "min")]
        for g, initial in zip(groups, self.initial_lrs):
            g["initial_lr"] = initial
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)
        return (end - start) * pct + start

    def _position(self, step: int) -> tuple[str, str, float]:
        """(start key, end key, fraction done) of the phase holding ``step``."""
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                return start, end, (step - start_step) / (end_step - start_step)
            start_step = end_step
        raise AssertionError("unreachable")

    def lr_at(self, step: int, group_index: int) -> float:
        if step > self.total_steps:
            raise ValueError(f"fastnn.optim.lr.OneCycleLR: stepped {step} times, past total_steps={self.total_steps}")
        start, end, pct = self._position(step)
        values = {"initial": self.initial_lrs, "max": self.max_lrs, "min": self.min_lrs}
        return self._anneal(values[start][group_index], values[end][group_index], pct)

    def momentum_at(self, step: int) -> float:
        """The momentum that goes with ``step``: high when the lr is low and vice versa."""
        start, end, pct = self._position(step)
        value = {"initial": self.max_momentum, "min": self.max_momentum, "max": self.base_momentum}
        return self._anneal(value[start], value[end], pct)

    def _apply(self) -> None:
        super()._apply()
        if self.cycle_momentum:
            m = self.momentum_at(self.last_epoch)
            for g in self.optimizer.param_groups:
                if "betas" in g:
                    g["betas"] = (m, g["betas"][1])
                else:
                    g["momentum"] = m
