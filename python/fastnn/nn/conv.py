"""2-D convolution layer."""

from __future__ import annotations

import math

from fastnn import ops
from fastnn._args import IntPair
from fastnn._backend import Array
from fastnn.nn.linear import WeightedLayer, _check_dtype, uniform_init
from fastnn.nn.module import Parameter
from fastnn.ops.conv2d import checked_conv2d_params


class Conv2d(WeightedLayer):
    """2-D convolution over (N, in_channels, H, W) inputs (see :func:`fastnn.ops.conv2d`).

    weight: (out_channels, in_channels/groups, kh, kw), bias: (out_channels,); both initialised
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels/groups * kh * kw, PyTorch's
    default. ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are ints or (h, w) pairs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        # Checked by the rule the op applies at every call (Conv2dShape::validate_params), so a
        # bad layer fails here, naming the layer, rather than at its first forward.
        p = checked_conv2d_params(
            "nn.Conv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups
        )
        self.in_channels, self.out_channels, self.groups = p.in_channels, p.out_channels, p.groups
        self.kernel_size, self.stride, self.padding, self.dilation = p.kernel_size, p.stride, p.padding, p.dilation
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(uniform_init((self.out_channels, self.in_channels // self.groups, kh, kw), bound))
        self.bias = Parameter(uniform_init((self.out_channels,), bound)) if bias else None
        self._x: Array | None = None

    _backward_op = staticmethod(ops.conv2d_backward)

    def _op_kwargs(self) -> dict:
        return self._conv_args()

    def _conv_args(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def _forward(self, x: Array, relu: bool) -> Array:
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 4 or shape[1] != self.in_channels:
            got = tuple(shape) if shape is not None else type(x).__name__
            raise ValueError(
                f"fastnn.nn.Conv2d: input must be 4-D (N, {self.in_channels}, H, W); got shape {got}"
            )
        _check_dtype(self, x)
        self._x = x
        bias = self.bias.data if self.bias is not None else None
        return ops.conv2d(x, self.weight.data, bias, **self._conv_args(), relu=relu)

    def extra_repr(self) -> str:
        # PyTorch's wording: non-default settings only, beyond kernel_size and stride.
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
