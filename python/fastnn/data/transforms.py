"""Batch transforms: each takes a whole (N, C, H, W) float32 batch and returns a new one, with
no loop over images (augmentation parameters are drawn per image as arrays and applied by
broadcasting or fancy indexing).

A transform is called as ``t(x, rng)``; random transforms draw from ``rng`` (the DataLoader
passes a generator seeded per epoch and batch, so a run repeats exactly), or from fastnn's
global generator (``fastnn.manual_seed``) when it is None. Inputs are never modified.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fastnn.random import default_generator

Transform = Callable[..., np.ndarray]


def _check_batch(name: str, x: np.ndarray) -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"fastnn.data.{name}: input must be a 4-D (N, C, H, W) batch; got shape {getattr(x, 'shape', None)}")


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"fastnn.data.Normalize: 'mean' and 'std' need one value per channel; got {self.mean.shape} and {self.std.shape}")
        if np.any(self.std <= 0):
            raise ValueError(f"fastnn.data.Normalize: argument 'std' must be positive; got {self.std.tolist()}")
        self._scale = (1.0 / self.std)[:, None, None]
        self._shift = (-self.mean / self.std)[:, None, None]

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("Normalize", x)
        if x.shape[1] != self.mean.size:
            raise ValueError(f"fastnn.data.Normalize: batch has {x.shape[1]} channels, mean/std have {self.mean.size}")
        out = x * self._scale
        out += self._shift
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pads every image by ``padding`` zeros on each side, then cuts a ``size`` x ``size``
    window at an offset drawn uniformly per image."""

    def __init__(self, size: int, padding: int = 0) -> None:
        if int(size) < 1 or int(padding) < 0:
            raise ValueError(f"fastnn.data.RandomCrop: need size >= 1 and padding >= 0; got size={size}, padding={padding}")
        self.size, self.padding = int(size), int(padding)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("RandomCrop", x)
        rng = rng if rng is not None else default_generator()
        p, s = self.padding, self.size
        n, _, h, w = x.shape
        if h + 2 * p < s or w + 2 * p < s:
            raise ValueError(f"fastnn.data.RandomCrop: crop {s} is larger than the padded image {(h + 2 * p, w + 2 * p)}")
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        top = rng.integers(0, h + 2 * p - s + 1, size=n)
        left = rng.integers(0, w + 2 * p - s + 1, size=n)
        # windows[n, c, i, j] is the (s, s) window whose corner is (i, j); one gather picks
        # each image's window: result (N, C, s, s).
        windows = np.lib.stride_tricks.sliding_window_view(padded, (s, s), axis=(2, 3))
        return np.ascontiguousarray(windows[np.arange(n), :, top, left])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirrors each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"fastnn.data.RandomHorizontalFlip: argument 'p' must lie in [0, 1]; got {p}")
        self.p = float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("RandomHorizontalFlip", x)
        rng = rng if rng is not None else default_generator()
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Applies transforms in order, passing each the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
