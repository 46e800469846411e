"""Eval-mode forward plans: BatchNorm folded into the convolution before it, ReLUs fused into
the product's epilogue, and the per-layer Python work done once.

In eval mode a BatchNorm2d after a Conv2d is an affine map per output channel, so the pair is
one convolution with (as onnxruntime folds it)::

    scale[o]  = bn.weight[o] / sqrt(bn.running_var[o] + bn.eps)
    w'[o]     = conv.weight[o] * scale[o]                        # (C_out, C_in/groups, kh, kw)
    b'[o]     = bn.bias[o] + (conv.bias[o] - bn.running_mean[o]) * scale[o]   (conv.bias 0 if None)

computed in float64 and stored in the weights' dtype; a ReLU after the pair (or after a
Residual) rides in the convolution's epilogue (or is applied in place to the residual sum).

:class:`fastnn.nn.Sequential` runs an eval-mode forward of NumPy arrays through a plan built
here: a list of steps that call the CPU kernels directly with the layers' settings, no
per-call argument normalisation, re-validation or statistics copies. The output equals the
module-by-module forward up to float32 rounding of the folded weights (a few ulps per product
term); set ``Sequential.fast_eval = False`` (or ``fuse_relu = False``) for the layer-by-layer
forward (the flag is per Sequential: a nested one keeps its own).

When the plan is rebuilt (the staleness rule). A plan holds no copy of any value: the folded
convolution weights are recomputed from the layers' arrays at every call (into buffers the plan
owns; a pass over the conv weights and a few microseconds of NumPy calls per layer), and every
other step reads its layer's arrays as they are, so no write into them, by an optimiser,
``load_state_dict`` or a hand-written ``p.data[...] = v``, can leave it stale. What a plan does
fix is its structure: which layers it fuses and with which settings. It is rebuilt at the first
eval forward after any event that may change that: ``train()`` / ``eval()`` (on any module),
``to()``, ``load_state_dict``, assigning a Parameter, a Module, a buffer or a public attribute
(``bn.eps = ...``, ``seq.append(...)``). These bump one process-wide count
(:func:`fastnn.nn.module.note_modules_changed`); a plan records the count it was built at. A plan
also checks, at every call, that each folded layer still holds the arrays it was built on
(``p.data = new_array`` replaces them).

Backward after a planned forward works as after the layer-by-layer one: each step leaves
the caches its layers' backward reads (the folded BatchNorm's input, the convolution's
output, is recomputed only when that backward runs).

Memory: a plan holds one buffer per folded convolution, the size of its weights, beside the
model rather than in it (a deep copy or pickle of a model carries no plan).

An input the plan's kernels reject (wrong dtype, shape, a non-NumPy array) is run again
through the layer-by-layer forward, which raises its usual error naming the layer.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Callable

import numpy as np

from fastnn import _cpu
from fastnn._backend import Array
from fastnn.nn import module as _module
from fastnn.nn.activation import ReLU
from fastnn.nn.conv import Conv2d
from fastnn.nn.dropout import Dropout
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module
from fastnn.nn.norm import BatchNorm2d
from fastnn.nn.pool import GlobalAvgPool2d, MaxPool2d
from fastnn.nn.shape import Flatten, Identity

if TYPE_CHECKING:
    from fastnn.nn.residual import Residual

Step = Callable[[Array], Array]
_INT32_MAX = 2**31 - 1
_set = object.__setattr__  # caches are private attributes: skip Module's registration work

__all__ = ["EvalPlan", "eval_forward", "fold_batchnorm"]


def fold_batchnorm(conv: Conv2d, bn: BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the one convolution that computes ``bn(conv(x))`` in eval mode
    (the module docstring has the formula); float64 arithmetic, the conv weight's dtype out.
    (A plan folds with :func:`_fold_into`, the same formula in the weights' dtype.)"""
    dtype = conv.weight.data.dtype
    scale = np.asarray(bn.weight.data, np.float64) / np.sqrt(np.asarray(bn.running_var, np.float64) + bn.eps)
    weight = (conv.weight.data * scale[:, None, None, None]).astype(dtype)
    shift = -np.asarray(bn.running_mean, np.float64)
    if conv.bias is not None:
        shift = shift + conv.bias.data
    bias = (np.asarray(bn.bias.data, np.float64) + shift * scale).astype(dtype)
    return weight, bias


def _fold_into(arrays: tuple, eps: float, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """:func:`fold_batchnorm`'s formula in the weights' dtype, from ``arrays`` = (conv weight,
    conv bias or None, bn weight, bn bias, running mean, running var), written into ``weight``
    and ``bias`` (a plan's buffers) in as few NumPy calls as it takes: it runs at every planned
    forward, where each call's ~1 us of overhead counts at batch 1. Returns BatchNorm's
    1 / sqrt(var + eps), which its eval backward reads. Float32 rounding of the scale adds an
    ulp or two to the folded weights."""
    conv_weight, conv_bias, bn_weight, bn_bias, mean, var = arrays
    inv_std = var + eps
    np.power(inv_std, -0.5, out=inv_std)
    scale = bn_weight * inv_std
    np.multiply(conv_weight, scale.reshape(-1, 1, 1, 1), out=weight)
    if conv_bias is not None:
        np.subtract(conv_bias, mean, out=bias)
    else:
        np.negative(mean, out=bias)
    np.multiply(bias, scale, out=bias)
    np.add(bias, bn_bias, out=bias)
    return inv_std


def _plain(m: Module, kind: type) -> bool:
    """Exactly ``kind`` (no subclass) with no forward/backward replaced on the instance: only
    such modules are folded or fused; anything else runs as itself."""
    return type(m) is kind and "forward" not in vars(m) and "backward" not in vars(m)


class _Stale(Exception):
    """A folded layer's arrays were replaced since the plan was built."""


def _conv_step(conv: Conv2d, bn: BatchNorm2d | None, relu: ReLU | None) -> tuple[Step, bool]:
    """Conv2d (+ folded BatchNorm2d) (+ ReLU in the epilogue). Returns the step and whether its
    output is a fresh array no cache refers to (a Residual may then add into it in place)."""
    if bn is None:
        def conv_only(x: Array) -> Array:
            _set(conv, "_x", x)
            bias = conv.bias.data if conv.bias is not None else None
            y = _cpu.conv2d_forward(x, conv.weight.data, bias, conv.stride, conv.padding, conv.dilation,
                                    conv.groups, relu is not None)
            if relu is not None:
                _set(relu, "_saved", y)
            return y

        return conv_only, relu is None

    sources = (conv.weight.data, conv.bias.data if conv.bias is not None else None, bn.weight.data, bn.bias.data,
               bn.running_mean, bn.running_var)
    folded = (np.empty_like(conv.weight.data), np.empty(conv.out_channels, conv.weight.data.dtype))

    def conv_bn(x: Array) -> Array:
        if (conv.weight.data is not sources[0] or bn.weight.data is not sources[2] or bn.bias.data is not sources[3]
                or bn.running_mean is not sources[4] or bn.running_var is not sources[5]
                or (conv.bias.data if conv.bias is not None else None) is not sources[1]):
            raise _Stale
        # Folded afresh at every call from the layers' arrays as they are now, so that no
        # write into them (an optimiser, load_state_dict, or a hand-written p.data[...] = v)
        # can leave the plan with stale weights.
        weight, bias = folded
        inv_std = _fold_into(sources, bn.eps, weight, bias)
        y = _cpu.conv2d_forward(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups,
                                relu is not None)
        _set(conv, "_x", x)
        _set(bn, "_x", _ConvOutput(conv, x))
        # What BatchNorm's eval backward reads, as its own forward keeps them (the running
        # statistics do not move in eval mode: no copy).
        _set(bn, "_mean", bn.running_mean)
        _set(bn, "_inv_std", inv_std)
        _set(bn, "_trained", False)
        if relu is not None:
            _set(relu, "_saved", y)
        return y

    return conv_bn, relu is None


class _ConvOutput:
    """The convolution output a folded BatchNorm never saw, computed when its backward asks
    (``BatchNorm.backward`` calls it): an eval backward is rare, an eval forward common."""

    __slots__ = ("conv", "x")

    def __init__(self, conv: Conv2d, x: Array) -> None:
        self.conv, self.x = conv, x

    def __call__(self) -> Array:
        conv = self.conv
        bias = conv.bias.data if conv.bias is not None else None
        return _cpu.conv2d_forward(self.x, conv.weight.data, bias, conv.stride, conv.padding, conv.dilation,
                                   conv.groups, False)


def _linear_step(layer: Linear, relu: ReLU | None) -> Step:
    def linear(x: Array) -> Array:
        _set(layer, "_x", x)
        y = _cpu.linear_forward(x, layer.weight.data, layer.bias.data if layer.bias is not None else None,
                                relu is not None)
        if relu is not None:
            _set(relu, "_saved", y)
        return y

    return linear


def _relu_step(relu: ReLU) -> Step:
    def relu_only(x: Array) -> Array:
        _set(relu, "_saved", x)
        return _cpu.activation_forward("relu", x, 0.0)

    return relu_only


def _max_pool_step(pool: MaxPool2d) -> Step:
    def max_pool(x: Array) -> Array:
        (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
        index_dtype = "int32" if x.shape[2] * x.shape[3] <= _INT32_MAX else "int64"
        y, indices = _cpu.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, index_dtype)
        _set(pool, "_indices", indices)
        _set(pool, "_input_shape", x.shape)
        _set(pool, "_y", y)
        return y

    return max_pool


def _global_avg_pool_step(pool: GlobalAvgPool2d) -> Step:
    def global_avg_pool(x: Array) -> Array:
        _set(pool, "_input_shape", x.shape)
        return _cpu.global_avg_pool2d_forward(x)

    return global_avg_pool


def _flatten_step(flatten: Flatten) -> Step:
    def flat(x: Array) -> Array:
        shape, start = x.shape, flatten.start_dim
        if len(shape) < start:
            raise ValueError("too few axes")  # the layer-by-layer forward says it properly
        _set(flatten, "_shape", shape)
        return x.reshape(shape[:start] + (math.prod(shape[start:]),))

    return flat


def _dropout_step(dropout: Dropout) -> Step:
    def identity(x: Array) -> Array:
        _set(dropout, "_identity", True)
        _set(dropout, "_mask", None)
        return x

    return identity


def _residual_step(residual: "Residual", relu: ReLU | None) -> Step:
    body, body_fresh = _plan_steps(residual.block)
    shortcut = _plan_steps(residual.shortcut)[0] if residual.shortcut is not None else None

    def add(x: Array) -> Array:
        main = x
        for step in body:
            main = step(main)
        skip = x
        if shortcut is not None:
            for step in shortcut:
                skip = step(skip)
        if main.shape != skip.shape:
            raise ValueError("block and shortcut shapes differ")  # the layer-by-layer forward says it properly
        if body_fresh:
            np.add(main, skip, out=main)  # the body's last kernel output: nothing else holds it
            total = main
        else:
            total = main + skip
        if relu is not None:
            # Backward of a ReLU reads only the sign of its input, which its output shares.
            np.maximum(total, 0, out=total)
            _set(relu, "_saved", total)
        return total

    return add


def _module_step(m: Module) -> Step:
    return m.__call__


def _plan_steps(m: Module) -> tuple[list[Step], bool]:
    """The steps that compute ``m``'s eval forward, and whether the last one's output is a
    fresh array nobody else refers to."""
    # Imported here, not at the top: container.py imports this module, residual.py container.py.
    from fastnn.nn.container import Sequential
    from fastnn.nn.residual import Residual

    if not (_plain(m, Sequential) and m.fuse_relu and m.fast_eval):
        return [_module_step(m)], False
    modules = list(m)
    steps: list[Step] = []
    fresh = False
    i = 0
    while i < len(modules):
        here = modules[i]
        after = modules[i + 1] if i + 1 < len(modules) else None
        relu = after if after is not None and _plain(after, ReLU) else None
        fresh = False
        if _plain(here, Conv2d):
            bn = after if after is not None and _plain(after, BatchNorm2d) else None
            if bn is not None and bn.num_features == here.out_channels:
                after2 = modules[i + 2] if i + 2 < len(modules) else None
                relu = after2 if after2 is not None and _plain(after2, ReLU) else None
                step, fresh = _conv_step(here, bn, relu)
                i += 3 if relu is not None else 2
            else:
                step, fresh = _conv_step(here, None, relu)
                i += 2 if relu is not None else 1
        elif _plain(here, Linear):
            step = _linear_step(here, relu)
            fresh = relu is None
            i += 2 if relu is not None else 1
        elif _plain(here, Residual):
            step = _residual_step(here, relu)
            i += 2 if relu is not None else 1
        elif _plain(here, Sequential) and here.fuse_relu and here.fast_eval:
            inner, fresh = _plan_steps(here)
            steps += inner
            i += 1
            continue
        elif _plain(here, ReLU):
            step, i = _relu_step(here), i + 1
        elif _plain(here, MaxPool2d):
            step, i = _max_pool_step(here), i + 1
        elif _plain(here, GlobalAvgPool2d):
            step, i = _global_avg_pool_step(here), i + 1
        elif _plain(here, Flatten):
            step, i = _flatten_step(here), i + 1
        elif _plain(here, Dropout):
            step, i = _dropout_step(here), i + 1
        elif _plain(here, Identity):
            i += 1
            continue
        else:
            step, i = _module_step(here), i + 1
        steps.append(step)
    return steps, fresh


class EvalPlan:
    """The steps of one Sequential's eval forward, built at one count of structure-changing
    events (see the module docstring): valid while :meth:`current`."""

    __slots__ = ("steps", "version")

    def __init__(self, steps: list[Step] | None, version: int) -> None:
        self.steps, self.version = steps, version

    @classmethod
    def build(cls, model: Module) -> "EvalPlan":
        """The plan of ``model``'s eval forward. It has no steps (every call returns None, so
        the layer-by-layer forward runs) for a subclass of Sequential, where a module below is
        in training mode, and where a parameter or buffer is not a NumPy array (the GPU)."""
        from fastnn.nn.container import Sequential

        version = _module.modules_version()
        arrays = [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]
        if (not _plain(model, Sequential) or any(m.training for m in model.modules())
                or any(type(a) is not np.ndarray for a in arrays)):
            return cls(None, version)
        return cls(_plan_steps(model)[0], version)

    def current(self) -> bool:
        """No structure-changing event since the plan was built."""
        return self.version == _module.modules_version()

    def __call__(self, x: Array) -> Array | None:
        """The eval forward of ``x``, or None when the plan has no steps or a step refused
        ``x`` (a kernel's error, or a folded layer whose arrays were replaced): the caller then
        runs the layer-by-layer forward, which raises the usual error or computes the result.
        A refusal also retires the plan (it is built again at the next call)."""
        if self.steps is None:
            return None
        try:
            for step in self.steps:
                x = step(x)
        except Exception:  # every refusal goes back to the layer-by-layer forward
            self.version = -1
            return None
        return x


# Plans by model, beside the models rather than in them: a deep copy or a pickle of a model
# never carries a plan whose steps run the original's layers.
_plans: "weakref.WeakKeyDictionary[Module, EvalPlan]" = weakref.WeakKeyDictionary()


def eval_forward(model: Module, x: Array) -> Array | None:
    """``model``'s eval forward of ``x`` through its plan (built or rebuilt as needed), or None
    where the plan cannot run it (:meth:`EvalPlan.__call__`). Called by Sequential.forward."""
    plan = _plans.get(model)
    if plan is None or not plan.current():
        plan = _plans[model] = EvalPlan.build(model)
    return plan(x)
