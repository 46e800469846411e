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


class RandomAffine:
    """Rotates each image by an angle drawn from [-degrees, degrees], scales it by a factor from
    [1 - scale, 1 + scale] and shifts it by up to ``translate`` pixels along each axis (all drawn
    per image), about the image centre, sampling bilinearly with zeros outside the image.

    Unlike :class:`RandomCrop`, shifts are not whole pixels: on small images (8x8 digits) a
    one-pixel shift moves an eighth of the image, while a sub-pixel shift, a small rotation or
    a small change of size is still the same digit.
    """

    def __init__(self, degrees: float = 0.0, translate: float = 0.0, scale: float = 0.0) -> None:
        for name, value in (("degrees", degrees), ("translate", translate), ("scale", scale)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"fastnn.data.RandomAffine: argument '{name}' must be a finite number >= 0; got {value!r}")
        if scale >= 1:
            raise ValueError(f"fastnn.data.RandomAffine: argument 'scale' must be below 1 (factors 1 - scale to 1 + scale); got {scale}")
        self.degrees, self.translate, self.scale = float(degrees), float(translate), float(scale)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("RandomAffine", x)
        rng = rng if rng is not None else default_generator()
        n = x.shape[0]
        degrees = rng.uniform(-self.degrees, self.degrees, size=n)
        factors = rng.uniform(1 - self.scale, 1 + self.scale, size=n)
        shifts = rng.uniform(-self.translate, self.translate, size=(n, 2))
        return self.apply(x, degrees, factors, shifts)

    @staticmethod
    def apply(x: np.ndarray, degrees: np.ndarray, factors: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """The transform with given parameters: image i rotated by ``degrees[i]`` (counter-clockwise
        as displayed, rows downwards), scaled by ``factors[i]`` about the image centre, then shifted
        by ``shifts[i] = (down, right)`` pixels. Returns a new array of x's shape and dtype."""
        _check_batch("RandomAffine", x)
        n, c, h, w = x.shape
        angle = np.deg2rad(np.asarray(degrees, dtype=np.float64)).reshape(n, 1, 1)
        factor = np.asarray(factors, dtype=np.float64).reshape(n, 1, 1)
        shift = np.asarray(shifts, dtype=np.float64).reshape(n, 2)
        # Inverse mapping: output pixel p reads the input at centre + R(-angle) (p - centre - shift) / factor,
        # so every output pixel gets a value (a forward mapping would leave holes).
        cy, cx = (h - 1) / 2, (w - 1) / 2
        oy = np.arange(h, dtype=np.float64).reshape(1, h, 1) - cy - shift[:, 0, None, None]  # (N, H, 1)
        ox = np.arange(w, dtype=np.float64).reshape(1, 1, w) - cx - shift[:, 1, None, None]  # (N, 1, W)
        cos, sin = np.cos(angle) / factor, np.sin(angle) / factor
        sy = cos * oy + sin * ox + cy  # (N, H, W): the source row of each output pixel
        sx = cos * ox - sin * oy + cx
        y0, x0 = np.floor(sy), np.floor(sx)
        fy, fx = sy - y0, sx - x0
        images = np.arange(n).reshape(n, 1, 1)
        out = np.zeros((n, h, w, c), dtype=np.float64)
        # Bilinear: the four neighbours, each weighted, and dropped where it lies outside the image.
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                yi, xi = (y0 + dy).astype(np.int64), (x0 + dx).astype(np.int64)
                inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
                taps = x[images, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, H, W, C)
                out += taps * (wy * wx * inside)[..., None]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=x.dtype)

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees:g}, translate={self.translate:g}, scale={self.scale:g})"


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
