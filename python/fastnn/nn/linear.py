"""Fully connected layer."""

from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._backend import Array
from fastnn.nn.module import Module, Parameter, forward_cache_missing
from fastnn.random import default_generator


def _check_positive_int(layer: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fastnn.nn.{layer}: argument '{name}' must be a positive int; got {value!r}")
    return int(value)


def uniform_init(shape: tuple[int, ...], bound: float) -> np.ndarray:
    """U(-bound, bound) float32 from fastnn's global generator (seeded by manual_seed)."""
    return default_generator().uniform(-bound, bound, size=shape).astype(np.float32)


def _check_dtype(layer: Module, x: Array) -> None:
    """TypeError when the input's dtype is not the weights' (float64 data into a float32
    model is the usual case), saying to cast the input."""
    weight = layer.weight.data
    if getattr(x, "dtype", weight.dtype) != weight.dtype:
        raise TypeError(
            f"fastnn.nn.{type(layer).__name__}: input has dtype {x.dtype} but the layer's weights are "
            f"{weight.dtype}: cast the input to {weight.dtype} (x.astype(np.{weight.dtype}))"
        )


class WeightedLayer(Module):
    """Base of layers with a ``weight`` and an optional ``bias`` whose backward op returns
    ``(dx, dweight, dbias)`` and accumulates into the ``.grad`` arrays it is given (Linear,
    Conv2d). Subclasses set ``_backward_op`` and, if the op takes more, ``_op_kwargs``."""

    weight: Parameter
    bias: Parameter | None
    _x: Array | None
    _backward_op = staticmethod(ops.linear_backward)

    def _op_kwargs(self) -> dict:
        return {}

    def _forward(self, x: Array, relu: bool) -> Array:
        raise NotImplementedError(f"{type(self).__name__}._forward")

    def forward(self, x: Array) -> Array:
        return self._forward(x, relu=False)

    def forward_relu(self, x: Array) -> Array:
        """``relu(forward(x))`` in one pass where the backend can (the CPU GEMM's epilogue):
        used by :class:`fastnn.nn.Sequential` for a layer followed by :class:`fastnn.nn.ReLU`.
        The layer's backward is unchanged: it caches x, not the pre-activation."""
        return self._forward(x, relu=True)

    def backward(self, grad_out: Array) -> Array:
        return self._backward(grad_out, input_grad=True)

    def backward_params(self, grad_out: Array) -> None:
        """Parameter gradients only (a network's first layer: the data needs no gradient)."""
        self._backward(grad_out, input_grad=False)

    def _backward(self, grad_out: Array, input_grad: bool) -> Array | None:
        if self._x is None:
            raise forward_cache_missing(self)
        grad_weight, accumulate = self.weight.grad_for_backward()
        grad_bias = None
        if self.bias is not None:
            grad_bias, bias_accumulates = self.bias.grad_for_backward()
            if bias_accumulates != accumulate:  # zeroed one and not the other: zeros written, add
                grad_weight, grad_bias, accumulate = self.weight.grad, self.bias.grad, True
        dx, dw, db = self._backward_op(
            self._x, self.weight.data, grad_out,
            grad_weight=grad_weight,
            grad_bias=grad_bias,
            bias=self.bias is not None,
            input_grad=input_grad,
            accumulate=accumulate,
            **self._op_kwargs(),
        )
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx


class Linear(WeightedLayer):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), PyTorch's default init
    U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = _check_positive_int("Linear", "in_features", in_features)
        self.out_features = _check_positive_int("Linear", "out_features", out_features)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(uniform_init((self.out_features, self.in_features), bound))
        self.bias = Parameter(uniform_init((self.out_features,), bound)) if bias else None
        self._x: Array | None = None

    def _forward(self, x: Array, relu: bool) -> Array:
        if getattr(x, "ndim", None) != 2:
            raise ValueError(
                f"fastnn.nn.Linear: input must be 2-D (batch, {self.in_features}); got shape "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        if x.shape[1] != self.in_features:  # the input is wrong, not the weight: say so
            raise ValueError(
                f"fastnn.nn.Linear: input must have in_features={self.in_features} columns, shape (N, "
                f"{self.in_features}); got shape {tuple(x.shape)}"
            )
        _check_dtype(self, x)
        self._x = x
        return ops.linear(x, self.weight.data, self.bias.data if self.bias is not None else None, relu=relu)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
