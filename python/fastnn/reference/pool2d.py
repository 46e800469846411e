"""Reference 2-D pooling (NCHW, PyTorch's ceil_mode=False).

Empty planes are refused, as PyTorch and the kernels refuse them: every pool needs H, W >= 1
(a batch of 0 is fine). Padding an empty plane would otherwise give windows of padding only,
whose max is -inf and whose argmax points at no input element.

Every window is read through kh * kw shifted, strided views of the padded input, one per
kernel offset in row-major scan order; ``windows[k, n, c, oh, ow]`` is the k-th element of
window (oh, ow). Output size per axis: (H + 2 * pad - kernel) // stride + 1.
"""

from __future__ import annotations

import numpy as np

from fastnn._args import int_pair
from fastnn.reference._util import f64


def _window_params(kernel_size, stride, padding):
    kernel = int_pair("reference.pool2d", "kernel_size", kernel_size)
    steps = kernel if stride is None else int_pair("reference.pool2d", "stride", stride)
    return kernel, steps, int_pair("reference.pool2d", "padding", padding)


def _check_plane(op: str, shape) -> None:
    """ValueError unless ``shape`` is (N, C, H, W) with H, W >= 1 (the kernels' rule)."""
    if len(shape) != 4 or shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"fastnn.reference.{op}: argument 'x' must be 4-D (N, C, H, W) with H, W >= 1; "
                         f"got shape {tuple(shape)}")


def _output_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def _offset_slices(input_hw, kernel, stride, padding):
    """(i, j, rows, cols): for each kernel offset, the slices of the padded plane it reads."""
    out_h, out_w = (_output_size(input_hw[a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows = slice(i, i + stride[0] * (out_h - 1) + 1, stride[0])
            cols = slice(j, j + stride[1] * (out_w - 1) + 1, stride[1])
            yield rows, cols


def _windows(x, kernel, stride, padding, fill):
    """(kh * kw, N, C, out_h, out_w) window elements of x padded with ``fill``, and the flat
    in-plane index h * W + w of each (-1 for padding), broadcastable to the same shape."""
    N, C, H, W = x.shape
    pads = ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2)
    padded = np.pad(x, pads, constant_values=fill)
    plane_index = np.pad(np.arange(H * W).reshape(H, W), pads[2:], constant_values=-1)
    slices = list(_offset_slices((H, W), kernel, stride, padding))
    values = np.stack([padded[:, :, r, c] for r, c in slices])
    index = np.stack([plane_index[r, c] for r, c in slices])[:, None, None]
    return values, index


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """(y, indices): max of each window (padding = -inf) and the flat h * W + w of the first
    maximum in scan order (NaN counts as the maximum, as in the kernels)."""
    x = f64(x)
    _check_plane("max_pool2d", x.shape)
    values, index = _windows(x, *_window_params(kernel_size, stride, padding), fill=-np.inf)
    winner = np.argmax(values, axis=0)[None]  # argmax returns the first maximum
    y = np.take_along_axis(values, winner, axis=0)[0]
    indices = np.take_along_axis(np.broadcast_to(index, values.shape), winner, axis=0)[0]
    # Padding never wins: where every real element of a window is -inf it ties with the
    # padding, and the first real element (in scan order) is the maximum, as in the kernels.
    first_real = np.argmax(np.broadcast_to(index >= 0, values.shape), axis=0)[None]
    real_index = np.take_along_axis(np.broadcast_to(index, values.shape), first_real, axis=0)[0]
    indices = np.where(indices < 0, real_index, indices)
    return y, indices.astype(np.int64)


def max_pool2d_backward(grad_out, indices, input_shape):
    """dx[n, c, indices[n, c, o]] += grad_out[n, c, o]; zero elsewhere."""
    N, C, H, W = input_shape
    dy = f64(grad_out).reshape(N, C, -1)
    dx = np.zeros((N, C, H * W))
    n, c, _ = np.indices(dy.shape)
    np.add.at(dx, (n, c, np.asarray(indices).reshape(N, C, -1)), dy)
    return dx.reshape(N, C, H, W)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean of each window with padding counted as zeros (count_include_pad=True)."""
    x = f64(x)
    _check_plane("avg_pool2d", x.shape)
    kernel, steps, pads = _window_params(kernel_size, stride, padding)
    values, _ = _windows(x, kernel, steps, pads, fill=0.0)
    return values.sum(axis=0) / (kernel[0] * kernel[1])


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0):
    """Each grad_out element / (kh * kw) added to every input under its window."""
    N, C, H, W = input_shape
    kernel, steps, pads = _window_params(kernel_size, stride, padding)
    share = f64(grad_out) / (kernel[0] * kernel[1])
    dx_padded = np.zeros((N, C, H + 2 * pads[0], W + 2 * pads[1]))
    for rows, cols in _offset_slices((H, W), kernel, steps, pads):
        dx_padded[:, :, rows, cols] += share  # one offset never hits a position twice
    return dx_padded[:, :, pads[0] : pads[0] + H, pads[1] : pads[1] + W]


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C): mean over H, W."""
    x = f64(x)
    _check_plane("global_avg_pool2d", x.shape)
    return x.mean(axis=(2, 3))


def global_avg_pool2d_backward(grad_out, input_shape):
    """dx[n, c, h, w] = grad_out[n, c] / (H * W)."""
    N, C, H, W = input_shape
    return np.broadcast_to(f64(grad_out)[:, :, None, None] / (H * W), (N, C, H, W)).copy()
