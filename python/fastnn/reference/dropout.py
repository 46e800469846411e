"""Reference inverted dropout, with the kernels' exact counter-based mask (see cpu/dropout.h):
element i is kept iff the top 53 bits of the i-th output of a splitmix64 stream keyed by the
mixed seed, read as an integer, reach p * 2**53."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64_mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (multiplication wraps mod 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_keep_bits(seed: int, n: int) -> np.ndarray:
    """The 53 random bits of elements 0 .. n-1 (uint64)."""
    key = _splitmix64_mix(np.array([seed], dtype=np.uint64))
    counters = np.arange(1, n + 1, dtype=np.uint64)
    return _splitmix64_mix(key + counters * _GOLDEN_GAMMA) >> np.uint64(11)


def dropout(x, p, seed):
    """(y, mask): mask[i] = 1 iff element i is kept; y = x * mask / (1 - p) (zeros for p = 1)."""
    x = f64(x)
    threshold = np.uint64(int(p * 2.0**53))
    mask = (dropout_keep_bits(seed, x.size) >= threshold).reshape(x.shape).astype(np.uint8)
    return dropout_backward(x, mask, p), mask


def dropout_backward(grad_out, mask, p):
    """grad_out * mask / (1 - p) (zeros for p = 1)."""
    dy = f64(grad_out)
    return np.where(np.asarray(mask) != 0, dy / (1.0 - p), 0.0) if p < 1 else np.zeros_like(dy)
