"""Devices: which array library holds an array (NumPy: "cpu", CuPy: "cuda") and moving arrays
between them. CuPy is imported only when a CUDA array or device is actually involved."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._backend import Array, is_cupy_array


def parse_device(device: str, where: str) -> tuple[str, int | None]:
    """("cpu", None), ("cuda", None) or ("cuda", index) for "cpu", "cuda" and "cuda:<index>";
    ValueError naming ``where`` otherwise."""
    if isinstance(device, str):
        if device == "cpu":
            return "cpu", None
        if device == "cuda":
            return "cuda", None
        if device.startswith("cuda:") and device[5:].isdigit():
            return "cuda", int(device[5:])
    raise ValueError(f"{where}: argument 'device' must be 'cpu', 'cuda' or 'cuda:<index>'; got {device!r}")


def device_of(x: Any) -> str:
    """"cuda" for a CuPy array, "cpu" for anything else (NumPy arrays, scalars)."""
    return "cuda" if is_cupy_array(x) else "cpu"


def to_device(x: Array, device: str, index: int | None = None) -> Array:
    """``x`` on ``device`` ("cpu" or "cuda"; ``index`` picks the GPU, default the current one):
    itself when already there, else a contiguous copy."""
    if device == "cpu":
        return x.get() if is_cupy_array(x) else x
    import cupy

    if is_cupy_array(x) and (index is None or x.device.id == index):
        return x
    if index is None:
        return cupy.ascontiguousarray(cupy.asarray(x))
    with cupy.cuda.Device(index):
        return cupy.ascontiguousarray(cupy.asarray(x))


def to_device_like(x: Any, like: Array) -> Array:
    """``x`` (an array or anything NumPy can convert) as an array on ``like``'s device."""
    if is_cupy_array(like):
        return to_device(x if hasattr(x, "shape") else np.asarray(x), "cuda", like.device.id)
    return np.asarray(to_device(x, "cpu"))


def zeros_like(a: Array) -> Array:
    """Zeros with a's shape, dtype and device."""
    if is_cupy_array(a):
        import cupy

        return cupy.zeros_like(a)
    return np.zeros_like(a)
