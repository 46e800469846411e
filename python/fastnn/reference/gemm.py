"""Reference matrix product."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def matmul(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out``; ``out`` is read only when ``beta != 0``."""
    a, b = f64(a), f64(b)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    result = alpha * (opa @ opb)
    if beta != 0.0:
        result = result + beta * f64(out)
    return result
