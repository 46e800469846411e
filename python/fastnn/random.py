"""The global random number generator that seeds weight initialisation, dropout masks,
shuffling and augmentation, so that ``fastnn.manual_seed(s)`` makes a run repeat exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

_generator: np.random.Generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed fastnn's global generator (weight init, dropout, default shuffling)."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"fastnn.manual_seed: argument 'seed' must be a non-negative int; got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def default_generator() -> np.random.Generator:
    """The generator fastnn draws from when no explicit one is given."""
    return _generator


def get_rng_state() -> dict[str, Any]:
    """A copy of the global generator's state (a plain dict, storable in checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
