"""2-D convolution (PyTorch's conv2d), NCHW, with stride, zero padding, dilation and groups."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn import _cpu
from fastnn._args import IntPair, int_arg, int_pair
from fastnn._backend import Array, backend_for

Pair = tuple[int, int]


def conv2d_hyper_parameters(
    owner: str, stride: IntPair, padding: IntPair, dilation: IntPair, groups: int
) -> tuple[Pair, Pair, Pair, int]:
    """(stride, padding, dilation, groups) as the bindings take them: (h, w) pairs and an int.
    TypeError naming ``fastnn.<owner>`` for non-integers; values are checked by the C++ shape
    struct (Conv2dShape), which names the numbers."""
    return (
        int_pair(owner, "stride", stride),
        int_pair(owner, "padding", padding),
        int_pair(owner, "dilation", dilation),
        int_arg(owner, "groups", groups),
    )


class Conv2dParams(NamedTuple):
    """A convolution layer's numbers, as :func:`checked_conv2d_params` returns them."""

    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int


def checked_conv2d_params(
    owner: str,
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    groups: int,
) -> Conv2dParams:
    """The arguments of a convolution layer, normalised as by :func:`conv2d_hyper_parameters`
    and checked now by the kernels' own rule (channels, kernel, stride, dilation >= 1,
    padding >= 0, groups dividing both channel counts): lets a layer reject bad arguments when
    built, with the message its op would give. ``owner`` names the layer, e.g. ``nn.Conv2d``."""
    params = Conv2dParams(
        int_arg(owner, "in_channels", in_channels),
        int_arg(owner, "out_channels", out_channels),
        int_pair(owner, "kernel_size", kernel_size),
        *conv2d_hyper_parameters(owner, stride, padding, dilation, groups),
    )
    # The rule is Conv2dShape::validate_params, the one Conv2dShape::from runs on every op call.
    _cpu.conv2d_check_params(owner, *params)
    return params


def _named_memory_error(op: str, error: MemoryError, x: Array, weight: Array, hyper: tuple) -> MemoryError:
    """``error`` itself when it names fastnn's op already (an output too big, refused before
    allocating); otherwise (a kernel's workspace: the bare ``std::bad_alloc``) one that does.
    A huge padding with a stride as huge gives a small output but a padded plane past memory."""
    if "fastnn" in str(error):
        return error
    (sh, sw), (ph, pw), (dh, dw), groups = hyper
    return MemoryError(
        f"fastnn.{op}: out of memory for the kernel's workspace with x of shape {tuple(np.shape(x))}, weight "
        f"{tuple(np.shape(weight))}, stride ({sh}, {sw}), padding ({ph}, {pw}), dilation ({dh}, {dw}), "
        f"groups {groups} ({error or type(error).__name__})"
    )


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    relu: bool = False,
) -> Array:
    """2-D convolution (a cross-correlation, as in PyTorch) of x (N, C_in, H, W) with weight
    (C_out, C_in/groups, kh, kw) and optional bias (C_out,) -> y (N, C_out, H_out, W_out)::

        y[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q]
                        * x[n, g*C_in/groups + c, i*sh - ph + p*dh, j*sw - pw + q*dw]

    with g = o // (C_out/groups) the group of output channel o, x read as zero outside the image,
    and H_out = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1 (W_out likewise). ``stride``,
    ``padding`` and ``dilation`` are ints or (h, w) pairs. Raises ValueError naming the numbers
    when channels, groups and weight disagree or the dilated kernel exceeds the padded input.
    With ``relu``, returns ``max(y, 0)``, applied in the product's epilogue on either backend (as
    :func:`fastnn.ops.linear`).
    """
    hyper = conv2d_hyper_parameters("conv2d", stride, padding, dilation, groups)
    try:
        return backend_for("conv2d", x).conv2d_forward(x, weight, bias, *hyper, bool(relu))
    except MemoryError as e:
        raise _named_memory_error("conv2d", e, x, weight, hyper) from e


def conv2d_backward(
    x: Array,
    weight: Array,
    grad_out: Array,
    *,
    grad_weight: Array | None = None,
    grad_bias: Array | None = None,
    bias: bool = True,
    input_grad: bool = True,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    accumulate: bool = True,
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`conv2d` given ``grad_out`` = dL/dy (N, C_out, H_out, W_out).

    Returns ``(dx, dweight, dbias)``::

        dx[n, c', h, w]     = sum of weight[o, c, p, q] * dy[n, o, i, j] over the taps that read
                              x[n, c', h, w]  (the transposed convolution; None unless input_grad)
        dweight[o, c, p, q] = sum_{n, i, j} dy[n, o, i, j] * x[n, g*C_in/groups + c,
                                                               i*sh - ph + p*dh, j*sw - pw + q*dw]
        dbias[o]            = sum_{n, i, j} dy[n, o, i, j]   (None when ``bias`` is False)

    When ``grad_weight`` / ``grad_bias`` arrays are given, the gradients are *added* into them
    in place (written over them with ``accumulate=False``) and those arrays are returned.
    ``stride``, ``padding``, ``dilation`` and ``groups`` must be those of the forward call.
    """
    hyper = conv2d_hyper_parameters("conv2d_backward", stride, padding, dilation, groups)
    try:
        return backend_for("conv2d_backward", x).conv2d_backward(
            x, weight, grad_out, grad_weight, grad_bias, *hyper, input_grad, bias, bool(accumulate)
        )
    except MemoryError as e:
        raise _named_memory_error("conv2d_backward", e, x, weight, hyper) from e
