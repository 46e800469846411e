"""Optimisers over the fused update kernels (PyTorch's semantics and state layout).

Each optimiser holds ``param_groups`` (dicts of hyperparameters with a ``"params"`` list; a
learning-rate schedule edits ``group["lr"]``) and per-parameter ``state``. ``step()`` makes one
kernel call per parameter that has a gradient; parameters without one are skipped.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from fastnn import ops
from fastnn.nn.module import Parameter


def _check(opt: str, name: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"fastnn.optim.{opt}: argument '{name}' must be {expected}; got {value!r}")


def _zeros_like(a):
    """Zeros with a's shape, dtype and device (NumPy or CuPy)."""
    if isinstance(a, np.ndarray):
        return np.zeros_like(a)
    import cupy

    return cupy.zeros_like(a)


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

    def _validate(self, group: dict[str, Any]) -> None:
        """Checks one group's hyperparameters (subclasses)."""

    def step(self) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeroes every gradient in place (keeps the arrays: no allocation next step), or
        drops them with ``set_to_none``."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

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
                    arr = p.data.copy()
                    arr[...] = v
                    restored[k] = arr
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
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                buf, first = None, False
                if g["momentum"] != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = _zeros_like(p.data)
                        first = True
                ops.sgd_step(p.data, p.grad, buf, lr=g["lr"], momentum=g["momentum"],
                             dampening=g["dampening"], weight_decay=g["weight_decay"],
                             nesterov=g["nesterov"], first_step=first)


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
        update = ops.adamw_step if self._decoupled else ops.adam_step
        for g in self.param_groups:
            beta1, beta2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = _zeros_like(p.data)
                    state["exp_avg_sq"] = _zeros_like(p.data)
                state["step"] += 1
                update(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], step=state["step"],
                       lr=g["lr"], beta1=beta1, beta2=beta2, eps=g["eps"], weight_decay=g["weight_decay"])


class AdamW(Adam):
    """Adam with decoupled weight decay (``param *= 1 - lr * weight_decay`` each step)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
