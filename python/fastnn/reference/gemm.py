"""Reference matrix product."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def matmul(
    a,
    b,
    *,
    trans_a=False,
    trans_b=False,
    alpha=1.0,
    beta=0.0,
    out=None,
    bias_per_col=None,
    bias_per_row=None,
    relu=False,
) -> np.ndarray:
    """``relu?(alpha * op(a) @ op(b) + beta * out + bias_per_col[None, :] + bias_per_row[:, None])``;
    ``out`` is read only when ``beta != 0``."""
    a, b = f64(a), f64(b)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    result = alpha * (opa @ opb)
    if beta != 0.0:
        result = result + beta * f64(out)
    if bias_per_col is not None:
        result = result + f64(bias_per_col)[None, :]
    if bias_per_row is not None:
        result = result + f64(bias_per_row)[:, None]
    if relu:
        result = np.maximum(result, 0.0)
    return result
