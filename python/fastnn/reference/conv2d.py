"""Reference 2-D convolution (PyTorch's conv2d, a cross-correlation), NCHW, grouped.

With G groups, Og = C_out / G output and Cg = C_in / G input channels per group, output channel
``g*Og + o`` sees input channels ``g*Cg .. (g+1)*Cg - 1``::

    y[n, g*Og + o, i, j] = bias[g*Og + o] + sum_{c, p, q} weight[g*Og + o, c, p, q]
                           * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]

where ``xpad`` is x with ``ph`` / ``pw`` zeros on each side. The code below walks the kernel
taps (p, q): each tap contributes one strided window of ``xpad`` times one (Og, Cg) slice of the
weight per group, and the backward pass runs the same walk with the roles swapped.
"""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _geometry(x, weight, stride, padding, dilation, groups):
    n, c_in, h, w = x.shape
    if h < 1 or w < 1:  # the kernels' (and PyTorch's) rule: only the batch may be empty
        raise ValueError(f"fastnn.reference.conv2d: argument 'x' must have H, W >= 1; got shape {x.shape}")
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return n, c_in, c_out, kh, kw, (sh, sw), (ph, pw), (dh, dw), h_out, w_out


def _window(p, q, stride, dilation, h_out, w_out):
    """The slice of xpad that kernel tap (p, q) reads for every output position."""
    (sh, sw), (dh, dw) = stride, dilation
    return (
        slice(p * dh, p * dh + sh * (h_out - 1) + 1, sh),
        slice(q * dw, q * dw + sw * (w_out - 1) + 1, sw),
    )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """y[n, o, i, j] = bias[o] + sum_{c,p,q} weight[o, c, p, q] * xpad[n, gC + c, i*sh + p*dh, j*sw + q*dw]."""
    x, weight = f64(x), f64(weight)
    n, c_in, c_out, kh, kw, s, (ph, pw), d, h_out, w_out = _geometry(
        x, weight, stride, padding, dilation, groups
    )
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    xg = xpad.reshape(n, groups, c_in // groups, *xpad.shape[2:])  # (N, G, Cg, Hp, Wp)
    wg = weight.reshape(groups, c_out // groups, c_in // groups, kh, kw)  # (G, Og, Cg, kh, kw)
    y = np.zeros((n, groups, c_out // groups, h_out, w_out))
    for p in range(kh):
        for q in range(kw):
            rows, cols = _window(p, q, s, d, h_out, w_out)
            y += np.einsum("ngchw,goc->ngohw", xg[:, :, :, rows, cols], wg[:, :, :, p, q])
    y = y.reshape(n, c_out, h_out, w_out)
    return y if bias is None else y + f64(bias)[None, :, None, None]


def conv2d_backward(
    x, weight, grad_out, *, bias=True, input_grad=True, stride=1, padding=0, dilation=1, groups=1
):
    """(dx, dweight, dbias) of :func:`conv2d` for upstream gradient ``grad_out`` = dL/dy.

    Each tap (p, q) of the forward walk sent ``xpad`` window -> y through weight[:, :, p, q], so
    dxpad[window] += weight[:, :, p, q]^T dy, dweight[:, :, p, q] = sum dy * xpad[window],
    dbias = sum of dy over (n, i, j); dx is dxpad without its padding.
    """
    x, weight, dy = f64(x), f64(weight), f64(grad_out)
    n, c_in, c_out, kh, kw, s, (ph, pw), d, h_out, w_out = _geometry(
        x, weight, stride, padding, dilation, groups
    )
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    xg = xpad.reshape(n, groups, c_in // groups, *xpad.shape[2:])
    wg = weight.reshape(groups, c_out // groups, c_in // groups, kh, kw)
    dyg = dy.reshape(n, groups, c_out // groups, h_out, w_out)
    dxg = np.zeros_like(xg)
    dwg = np.zeros_like(wg)
    for p in range(kh):
        for q in range(kw):
            rows, cols = _window(p, q, s, d, h_out, w_out)
            dxg[:, :, :, rows, cols] += np.einsum("ngohw,goc->ngchw", dyg, wg[:, :, :, p, q])
            dwg[:, :, :, p, q] = np.einsum("ngohw,ngchw->goc", dyg, xg[:, :, :, rows, cols])
    dxpad = dxg.reshape(xpad.shape)
    dx = dxpad[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]].copy() if input_grad else None
    db = dy.sum(axis=(0, 2, 3)) if bias else None
    return dx, dwg.reshape(weight.shape), db
