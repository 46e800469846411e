"""Optimisers over the fused update kernels (PyTorch's semantics and state layout).

Each optimiser holds ``param_groups`` (dicts of hyperparameters with a ``"params"`` list; a
learning-rate schedule edits ``group["lr"]``) and per-parameter ``state``. ``step()`` updates
every parameter that has a gradient through the multi-tensor update ops (one kernel launch per
group on the GPU); parameters without one are skipped. State arrays live where their parameter
lives: after ``model.to("cuda")`` they follow it at the next step.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from fastnn import ops
from fastnn._device import device_of, to_device_like, zeros_like
from fastnn.nn.deferred import resolve_pending_gradients
from fastnn.nn.module import Parameter


def _check(opt: str, name: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"fastnn.optim.{opt}: argument '{name}' must be {expected}; got {value!r}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad and state dicts."""

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        params = list(params)
        if not params:
            raise ValueError(f"fastnn.optim.{name}: argument 'params' is empty")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for g in groups:
            group = {**self.defaults, **g}
            group["params"] = list(g["params"])
            for p in group["params"]:
                if not isinstance(p, Parameter):
                    raise TypeError(
                        f"fastnn.optim.{name}: params must be fastnn.nn.Parameter objects; got {type(p).__name__}"
                    )
                if id(p) in seen:
                    raise ValueError(f"fastnn.optim.{name}: a parameter appears in more than one group")
                seen.add(id(p))
            self._validate(group)
            self.param_groups.append(group)
        self.state: dict[Parameter, dict[str, Any]] = {}
        # Per group: the update's argument lists as last built, and what they were built from.
        self._plans: dict[int, tuple[tuple, Any]] = {}

    def _plan_key(self, group: dict[str, Any]) -> tuple:
        """What a group's cached argument lists depend on: each parameter with its data and
        gradient arrays (a training loop keeps all three from step to step) and the settings
        that add or drop state."""
        return tuple((p, p.data, p.grad) for p in group["params"])

    def _cached_plan(self, index: int, group: dict[str, Any], extra: tuple, build: Any) -> Any:
        """The argument lists of group ``index``'s multi-tensor update: reused while the
        group's parameters, their arrays and ``extra`` stay the same objects, rebuilt by
        ``build(group)`` (which returns ``(plan, reusable)``) otherwise. Saves the per-parameter
        Python work (state lookups, list building) of every step."""
        cached = self._plans.get(index)
        params = group["params"]
        if cached is not None:
            key, plan = cached
            if (key[0] == extra and len(key[1]) == len(params)
                    and all(p is kp and p.data is kd and p.grad is kg for p, (kp, kd, kg) in zip(params, key[1]))):
                return plan
        plan, reusable = build(group)
        if reusable:
            self._plans[index] = ((extra, self._plan_key(group)), plan)
        else:
            self._plans.pop(index, None)
        return plan

    def _validate(self, group: dict[str, Any]) -> None:
        """Checks one group's hyperparameters (subclasses)."""

    def step(self) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeroes every gradient (keeps the arrays: no allocation next step; the zeros are
        written lazily, see :meth:`fastnn.nn.Parameter.zero_grad`), or drops them with
        ``set_to_none``."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none)

    def _state_of(self, p: Parameter) -> dict[str, Any]:
        """p's state, its arrays moved to p's device first if p has moved (Module.to)."""
        state = self.state.setdefault(p, {})
        where = device_of(p.data)
        for k, v in state.items():
            if hasattr(v, "shape") and np.ndim(v) > 0 and device_of(v) != where:
                state[k] = to_device_like(v, p.data)
        return state

    def _params(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [...]}`` with
        parameters named by their position, as PyTorch does."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {
            index[id(p)]: {k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}
            for p, s in self.state.items()
        }
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restores hyperparameters and state saved by :meth:`state_dict` for the same
        parameter layout; raises ValueError when the layout differs."""
        name = type(self).__name__
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)
        ):
            raise ValueError(f"fastnn.optim.{name}.load_state_dict: parameter groups do not match this optimizer")
        params = self._params()
        self._plans.clear()  # the state arrays the cached argument lists hold are replaced
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            restored = {}
            for k, v in s.items():
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(
                            f"fastnn.optim.{name}.load_state_dict: state '{k}' of parameter {i} has shape "
                            f"{tuple(v.shape)}, expected {p.shape}"
                        )
                    restored[k] = to_device_like(v, p.data).astype(p.data.dtype, copy=True)
                else:
                    restored[k] = v
            self.state[p] = restored

    def __repr__(self) -> str:
        hp = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in hp.items())})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay
    (PyTorch's ``torch.optim.SGD`` update)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, dampening: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov, dampening=dampening))

    def _validate(self, g: dict[str, Any]) -> None:
        _check("SGD", "lr", g["lr"] >= 0, g["lr"], ">= 0")
        _check("SGD", "momentum", g["momentum"] >= 0, g["momentum"], ">= 0")
        _check("SGD", "weight_decay", g["weight_decay"] >= 0, g["weight_decay"], ">= 0")
        _check("SGD", "nesterov", not g["nesterov"] or (g["momentum"] > 0 and g["dampening"] == 0),
               g["nesterov"], "False unless momentum > 0 and dampening == 0")

    def step(self) -> None:
        """One update of every parameter that has a gradient: one multi-tensor call per group."""
        resolve_pending_gradients()  # they read the weights as they are before this update
        for index, g in enumerate(self.param_groups):
            for (first, _), (params, grads, bufs) in self._cached_plan(index, g, (g["momentum"] != 0,),
                                                                       self._batches).items():
                ops.sgd_step_multi(params, grads, bufs if g["momentum"] != 0 else None, lr=g["lr"],
                                   momentum=g["momentum"], dampening=g["dampening"],
                                   weight_decay=g["weight_decay"], nesterov=g["nesterov"], first_step=first)

    def _batches(self, g: dict[str, Any]) -> tuple[dict, bool]:
        """One argument list per (fresh buffers or not, device): buffers created this step start
        as the gradient itself (PyTorch's first step), so a plan with fresh ones is not reused."""
        batches: dict[tuple[bool, str], tuple[list, list, list]] = {}
        for p in g["params"]:
            if p.grad is None:
                continue
            buf, first = None, False
            if g["momentum"] != 0:
                state = self._state_of(p)
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = zeros_like(p.data)
                    first = True
            params, grads, bufs = batches.setdefault((first, device_of(p.data)), ([], [], []))
            params.append(p.data)
            grads.append(p.grad)
            bufs.append(buf)
        return batches, not any(first for first, _ in batches)


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds L2 decay to the gradient."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _validate(self, g: dict[str, Any]) -> None:
        name = type(self).__name__
        _check(name, "lr", g["lr"] >= 0, g["lr"], ">= 0")
        b = g["betas"]
        _check(name, "betas", len(b) == 2 and all(0.0 <= v < 1.0 for v in b), b, "two values in [0, 1)")
        _check(name, "eps", g["eps"] >= 0, g["eps"], ">= 0")
        _check(name, "weight_decay", g["weight_decay"] >= 0, g["weight_decay"], ">= 0")

    def step(self) -> None:
        """One update of every parameter that has a gradient: one multi-tensor call per group
        (per step count, where parameters joined at different steps)."""
        resolve_pending_gradients()  # they read the weights as they are before this update
        update = ops.adamw_step_multi if self._decoupled else ops.adam_step_multi
        for index, g in enumerate(self.param_groups):
            beta1, beta2 = g["betas"]
            states, lists = self._cached_plan(index, g, (), self._lists)
            for state in states:
                state["step"] += 1
            # A cached plan has every parameter at one step count (bias correction depends on it).
            by_step = [(states[0]["step"], lists)] if lists is not None else self._by_step(g, states)
            for step, (params, grads, exp_avgs, exp_avg_sqs) in by_step:
                update(params, grads, exp_avgs, exp_avg_sqs, step=step, lr=g["lr"], beta1=beta1, beta2=beta2,
                       eps=g["eps"], weight_decay=g["weight_decay"])

    def _lists(self, g: dict[str, Any]) -> tuple[tuple[list, tuple | None], bool]:
        """The states of the parameters that have gradients and, where they all share a step
        count on one device, the update's four argument lists (reusable from step to step)."""
        states = []
        for p in g["params"]:
            if p.grad is None:
                continue
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["exp_avg"] = zeros_like(p.data)
                state["exp_avg_sq"] = zeros_like(p.data)
            states.append(state)
        one_batch = bool(states) and len({s["step"] for s in states}) == 1 and len(
            {device_of(p.data) for p in g["params"] if p.grad is not None}) == 1
        if not one_batch:
            return (states, None), False
        params = [p for p in g["params"] if p.grad is not None]
        lists = ([p.data for p in params], [p.grad for p in params], [s["exp_avg"] for s in states],
                 [s["exp_avg_sq"] for s in states])
        return (states, lists), True

    def _by_step(self, g: dict[str, Any], states: list) -> list[tuple[int, tuple[list, list, list, list]]]:
        """Argument lists per (step count, device), for parameters that joined at different steps."""
        batches: dict[tuple[int, str], tuple[list, list, list, list]] = {}
        params = [p for p in g["params"] if p.grad is not None]
        for p, state in zip(params, states):
            lists = batches.setdefault((state["step"], device_of(p.data)), ([], [], [], []))
            for target, value in zip(lists, (p.data, p.grad, state["exp_avg"], state["exp_avg_sq"])):
                target.append(value)
        return [(step, lists) for (step, _), lists in batches.items()]


class AdamW(Adam):
    """Adam with decoupled weight decay (``param *= 1 - lr * weight_decay`` each step)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
