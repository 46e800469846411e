"""2-D convolution (PyTorch's conv2d), NCHW, with stride, zero padding, dilation and groups."""

from __future__ import annotations

from typing import Union

import numpy as np

from fastnn._backend import Array, backend_for

IntPair = Union[int, tuple[int, int]]


def as_pair(value: object, owner: str, name: str, minimum: int | None = None) -> tuple[int, int]:
    """``value`` (an int, or an (h, w) pair of ints) as an (h, w) pair.

    Raises TypeError for anything else and, when ``minimum`` is given, ValueError for an entry
    below it; both messages name ``owner`` (e.g. ``fastnn.nn.Conv2d``) and the argument.
    """

    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    if is_int(value):
        pair = (int(value), int(value))  # type: ignore[arg-type]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{owner}: argument '{name}' must be an int or an (h, w) pair of ints; got {value!r}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{owner}: argument '{name}' must be >= {minimum}; got {value!r}")
    return pair


def _hyper_parameters(op: str, stride: object, padding: object, dilation: object, groups: object) -> tuple:
    """(stride, padding, dilation, groups) as the binding takes them: pairs and an int. Their
    values are checked by the kernel's shape validation, which names the numbers."""
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"fastnn.{op}: argument 'groups' must be an int; got {groups!r}")
    owner = f"fastnn.{op}"
    return (
        as_pair(stride, owner, "stride"),
        as_pair(padding, owner, "padding"),
        as_pair(dilation, owner, "dilation"),
        int(groups),
    )


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
    hyper = _hyper_parameters("conv2d", stride, padding, dilation, groups)
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
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`conv2d` given ``grad_out`` = dL/dy (N, C_out, H_out, W_out).

    Returns ``(dx, dweight, dbias)``::

        dx[n, c', h, w]     = sum of weight[o, c, p, q] * dy[n, o, i, j] over the taps that read
                              x[n, c', h, w]  (the transposed convolution; None unless input_grad)
        dweight[o, c, p, q] = sum_{n, i, j} dy[n, o, i, j] * x[n, g*C_in/groups + c,
                                                               i*sh - ph + p*dh, j*sw - pw + q*dw]
        dbias[o]            = sum_{n, i, j} dy[n, o, i, j]   (None when ``bias`` is False)

    When ``grad_weight`` / ``grad_bias`` arrays are given, the gradients are *added* into them
    in place and those arrays are returned. ``stride``, ``padding``, ``dilation`` and ``groups``
    must be those of the forward call.
    """
    hyper = _hyper_parameters("conv2d_backward", stride, padding, dilation, groups)
    try:
        return backend_for("conv2d_backward", x).conv2d_backward(
            x, weight, grad_out, grad_weight, grad_bias, *hyper, input_grad, bias
        )
    except MemoryError as e:
        raise _named_memory_error("conv2d_backward", e, x, weight, hyper) from e
