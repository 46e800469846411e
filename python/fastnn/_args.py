"""Argument normalisation shared by ops, layers and the reference (type checks only; the C++
shape structs check values, so each rule lives once). The one place ints and (h, w) pairs are
read, so every op and layer words a wrong type the same way."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

IntPair = Union[int, Sequence[int]]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_arg(owner: str, arg: str, value: object) -> int:
    """``value`` (an int or NumPy integer, not a bool) as an int; TypeError naming
    ``fastnn.<owner>`` and ``arg`` otherwise."""
    if _is_int(value):
        return int(value)  # type: ignore[call-overload]
    raise TypeError(f"fastnn.{owner}: argument '{arg}' must be an int; got {value!r}")


def int_pair(owner: str, arg: str, value: IntPair) -> tuple[int, int]:
    """``value`` as an (h, w) pair: an int stands for (value, value), PyTorch-style.

    TypeError naming ``fastnn.<owner>`` and ``arg`` for anything but an int or two ints.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value  # already a pair (what layers hold and pass at every call): no conversions
    if _is_int(value):
        return int(value), int(value)  # type: ignore[arg-type]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"fastnn.{owner}: argument '{arg}' must be an int or an (h, w) pair of ints; got {value!r}")


def int_tuple(owner: str, arg: str, value: object) -> tuple[int, ...]:
    """``value`` (a shape: a sequence of ints) as a tuple of ints; TypeError otherwise."""
    if isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"fastnn.{owner}: argument '{arg}' must be a tuple of ints; got {value!r}")


def integer(owner: str, arg: str, value: object) -> int:
    """``value`` (an int, NumPy integers included; not a bool) as an int; TypeError otherwise."""
    if _is_int(value):
        return int(value)  # type: ignore[call-overload]
    raise TypeError(f"fastnn.{owner}: argument '{arg}' must be an int; got {value!r}")


def real(owner: str, arg: str, value: object) -> float:
    """``value`` (an int or float, NumPy scalars included) as a float; TypeError otherwise."""
    if type(value) is float:  # the usual case, first: optimisers pass several per step
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise TypeError(f"fastnn.{owner}: argument '{arg}' must be a real number; got {value!r}")
