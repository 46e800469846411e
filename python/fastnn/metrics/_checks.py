"""Input checks shared by the binary, identification and multi-label metrics: each turns a
user's array into the dtype the metric computes with, or raises a ValueError that names the
function, the argument, what was expected and what came."""

from __future__ import annotations

import numpy as np


def binary_labels(fn: str, name: str, y_true, ndim: int = 1, allow_unknown: bool = False) -> np.ndarray:
    """``y_true`` as int8 of 0/1 (and -1 = unknown where ``allow_unknown``), from bool, integer
    or float input holding only those values."""
    y = np.asarray(y_true)
    allowed = (-1, 0, 1) if allow_unknown else (0, 1)
    if y.ndim != ndim:
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must be {ndim}-D; got shape {y.shape}")
    if not (y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must hold numbers {allowed}; got dtype {y.dtype}")
    bad = ~np.isin(y, allowed)
    if bad.any():
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must hold only {allowed}; "
                         f"got {y[bad][:5].tolist()} among its values")
    return y.astype(np.int8)


def scores(fn: str, name: str, y_score, shape: tuple[int, ...]) -> np.ndarray:
    """``y_score`` as float64 of the given shape, every value finite (a NaN score has no rank)."""
    s = np.asarray(y_score)
    if s.shape != shape:
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must have shape {shape} (that of y_true); "
                         f"got {s.shape}")
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer) or s.dtype == np.bool_):
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must be numeric; got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if not np.isfinite(s).all():
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must be finite; got NaN or inf")
    return s


def both_classes(fn: str, y: np.ndarray) -> None:
    """Curves over false and true accepts are defined only when both classes are present."""
    positives = int(np.count_nonzero(y == 1))
    if positives == 0 or positives == y.size:
        raise ValueError(f"fastnn.metrics.{fn}: argument 'y_true' must contain both classes 0 and 1; "
                         f"got {positives} positives of {y.size}")


def rates(fn: str, name: str, far) -> tuple[np.ndarray, bool]:
    """``far`` as a float64 array of rates in (0, 1], and whether it came as a scalar."""
    f = np.asarray(far, dtype=np.float64)
    if f.ndim > 1 or f.size == 0:
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must be a number or a 1-D sequence; got shape {f.shape}")
    if not ((f > 0) & (f <= 1)).all():
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must lie in (0, 1]; got {f.tolist()}")
    return np.atleast_1d(f), f.ndim == 0


def identities(fn: str, name: str, labels, n: int | None = None) -> np.ndarray:
    """Identity labels: a 1-D array of integers or strings (compared for equality only)."""
    ids = np.asarray(labels)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.dtype.kind in "US"):
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must be a 1-D array of integer or string "
                         f"identities; got {ids.dtype} {ids.shape}")
    if n is not None and ids.shape[0] != n:
        raise ValueError(f"fastnn.metrics.{fn}: argument '{name}' must have {n} entries (one per similarity "
                         f"row/column); got {ids.shape[0]}")
    return ids
