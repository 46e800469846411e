"""Fused optimiser updates, applied in place to one parameter and its state (PyTorch's rules;
the formulas are in :mod:`fastnn.reference.optim`)."""

from __future__ import annotations

from typing import Sequence

from fastnn._args import integer, real
from fastnn._backend import Array, backend_for


def _sgd_numbers(op: str, lr, momentum, dampening, weight_decay) -> tuple[float, ...]:
    return (real(op, "lr", lr), real(op, "momentum", momentum), real(op, "dampening", dampening),
            real(op, "weight_decay", weight_decay))


def _adam_numbers(op: str, step, lr, beta1, beta2, eps, weight_decay) -> tuple:
    return (integer(op, "step", step), real(op, "lr", lr), real(op, "beta1", beta1), real(op, "beta2", beta2),
            real(op, "eps", eps), real(op, "weight_decay", weight_decay))


def sgd_step(
    param: Array,
    grad: Array,
    momentum_buffer: Array | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first_step: bool = False,
) -> None:
    """One SGD update of ``param`` (and ``momentum_buffer``, required when momentum != 0).

    ``first_step`` marks a fresh buffer, which PyTorch initialises to the gradient itself.
    """
    backend_for("sgd_step", param).sgd_step(
        param, grad, momentum_buffer, *_sgd_numbers("sgd_step", lr, momentum, dampening, weight_decay),
        bool(nesterov), bool(first_step),
    )


def adam_step(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """One Adam update (L2 weight decay added to the gradient); ``step`` counts from 1."""
    backend_for("adam_step", param).adam_step(
        param, grad, exp_avg, exp_avg_sq, *_adam_numbers("adam_step", step, lr, beta1, beta2, eps, weight_decay),
        False,
    )


def adamw_step(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> None:
    """One AdamW update (decoupled weight decay: ``param *= 1 - lr * weight_decay`` first)."""
    backend_for("adamw_step", param).adam_step(
        param, grad, exp_avg, exp_avg_sq, *_adam_numbers("adamw_step", step, lr, beta1, beta2, eps, weight_decay),
        True,
    )


def sgd_step_multi(
    params: Sequence[Array],
    grads: Sequence[Array],
    momentum_buffers: Sequence[Array] | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first_step: bool = False,
) -> None:
    """:func:`sgd_step` on each ``(params[i], grads[i], momentum_buffers[i])``, with the same
    hyperparameters. On the GPU the whole list is updated by one kernel launch (multi-tensor
    apply); on the CPU it is one kernel call per parameter."""
    if not params:
        return
    backend_for("sgd_step", params[0]).sgd_step_multi(
        list(params), list(grads), None if momentum_buffers is None else list(momentum_buffers),
        *_sgd_numbers("sgd_step_multi", lr, momentum, dampening, weight_decay), bool(nesterov), bool(first_step),
    )


def _adam_multi(name: str, decoupled: bool, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2,
                eps, weight_decay) -> None:
    if not params:
        return
    backend_for(name, params[0]).adam_step_multi(
        list(params), list(grads), list(exp_avgs), list(exp_avg_sqs),
        *_adam_numbers(name + "_multi", step, lr, beta1, beta2, eps, weight_decay), decoupled,
    )


def adam_step_multi(
    params: Sequence[Array],
    grads: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """:func:`adam_step` on every parameter of the lists (all at the same ``step``); one launch on
    the GPU."""
    _adam_multi("adam_step", False, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay)


def adamw_step_multi(
    params: Sequence[Array],
    grads: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> None:
    """:func:`adamw_step` on every parameter of the lists (all at the same ``step``); one launch on
    the GPU."""
    _adam_multi("adamw_step", True, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay)
