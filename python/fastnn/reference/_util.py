from __future__ import annotations

import numpy as np


def f64(x) -> np.ndarray:
    """x as a float64 NumPy array (a copy only when needed)."""
    return np.asarray(x, dtype=np.float64)
