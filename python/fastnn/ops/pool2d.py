"""2-D pooling over NCHW arrays: max, average and global average (PyTorch's ceil_mode=False).

Window arguments follow PyTorch: ``kernel_size``, ``stride`` and ``padding`` are ints or
(h, w) pairs, ``stride=None`` means ``stride = kernel_size``, and padding may be at most half
the kernel. The output size per axis is ``(H + 2 * padding - kernel_size) // stride + 1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fastnn import _cpu
from fastnn._args import IntPair, int_pair, int_tuple
from fastnn._backend import Array, backend_for


def pool2d_window(
    owner: str, kernel_size: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[int, int, int, int, int, int]:
    """(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w) from PyTorch-style arguments;
    TypeError naming ``fastnn.<owner>`` for non-integers (values are checked by the kernels)."""
    kernel = int_pair(owner, "kernel_size", kernel_size)
    steps = kernel if stride is None else int_pair(owner, "stride", stride)
    pads = int_pair(owner, "padding", padding)
    return kernel + steps + pads


def checked_pool2d_window(
    owner: str, kernel_size: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[int, int, int, int, int, int]:
    """:func:`pool2d_window`, its values checked now by the kernels' own rule (kernel and
    stride >= 1, 0 <= padding <= kernel // 2): lets a layer reject bad arguments when built."""
    window = pool2d_window(owner, kernel_size, stride, padding)
    _cpu.pool2d_check_params(owner, *window)
    return window


def max_pool2d(
    x: Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    *,
    index_dtype: str | np.dtype = "int64",
) -> tuple[Array, Array]:
    """Max over each window of x (N, C, H, W); padding never wins.

    Returns ``(y, indices)``: y (N, C, out_h, out_w) and, per output element, the flat index
    ``h * W + w`` of the winning input within its (n, c) plane (int64, or int32 with
    ``index_dtype``), as PyTorch's ``return_indices=True``. On ties the first element in
    row-major scan order wins, so each output's gradient goes to exactly one input.
    """
    window = pool2d_window("max_pool2d", kernel_size, stride, padding)
    return backend_for("max_pool2d", x).max_pool2d_forward(x, *window, np.dtype(index_dtype).name)


def max_pool2d_backward(
    grad_out: Array,
    indices: Array,
    input_shape: Sequence[int],
    kernel_size: IntPair | None = None,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Array:
    """dx of shape ``input_shape`` (N, C, H, W): each ``grad_out`` element added to the input
    its ``indices`` entry names (from :func:`max_pool2d`), zero elsewhere.

    The forward's window (``kernel_size``, ``stride``, ``padding``) is optional: the indices
    alone say where gradients go. Given, ``grad_out``'s shape is checked against it, and the GPU
    gathers each input's gradient from the outputs whose windows cover it (deterministic, no
    atomics; an index outside its own window, which only a forged one can be, contributes
    nothing). Without it the GPU adds plane by plane and checks the indices, waiting for the GPU.
    """
    op = "max_pool2d_backward"
    shape = int_tuple(op, "input_shape", input_shape)
    window = None if kernel_size is None else pool2d_window(op, kernel_size, stride, padding)
    return backend_for(op, grad_out).max_pool2d_backward(grad_out, indices, shape, window)


def avg_pool2d(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Array:
    """Mean over each window of x (N, C, H, W), padding counted as zeros and always divided
    by ``kernel_h * kernel_w`` (PyTorch's count_include_pad=True)."""
    window = pool2d_window("avg_pool2d", kernel_size, stride, padding)
    return backend_for("avg_pool2d", x).avg_pool2d_forward(x, *window)


def avg_pool2d_backward(
    grad_out: Array,
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Array:
    """dx of shape ``input_shape``: each ``grad_out`` element, divided by the window area,
    added to every real input under its window."""
    shape = int_tuple("avg_pool2d_backward", "input_shape", input_shape)
    window = pool2d_window("avg_pool2d_backward", kernel_size, stride, padding)
    return backend_for("avg_pool2d_backward", grad_out).avg_pool2d_backward(grad_out, shape, *window)


def global_avg_pool2d(x: Array) -> Array:
    """Mean over H and W: (N, C, H, W) -> (N, C) (sums in double)."""
    return backend_for("global_avg_pool2d", x).global_avg_pool2d_forward(x)


def global_avg_pool2d_backward(grad_out: Array, input_shape: Sequence[int]) -> Array:
    """dx[n, c, h, w] = grad_out[n, c] / (H * W); grad_out (N, C), input_shape (N, C, H, W)."""
    shape = int_tuple("global_avg_pool2d_backward", "input_shape", input_shape)
    return backend_for("global_avg_pool2d_backward", grad_out).global_avg_pool2d_backward(grad_out, shape)
