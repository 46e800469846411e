"""In-memory image datasets."""

from __future__ import annotations

import numpy as np


class ArrayDataset:
    """Images ``x`` (float32, (N, C, H, W), pixels in [0, 1]) and labels ``y`` (int64, (N,))."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: list[str] | None = None) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.int64)
        if x.ndim != 4:
            raise ValueError(f"fastnn.data.ArrayDataset: argument 'x' must be 4-D (N, C, H, W); got shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(
                f"fastnn.data.ArrayDataset: argument 'y' must have shape ({x.shape[0]},) to match x; got {y.shape}"
            )
        self.x, self.y = x, y
        self.classes = classes if classes is not None else [str(c) for c in range(int(y.max(initial=-1)) + 1)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return f"ArrayDataset(n={len(self)}, image_shape={self.x.shape[1:]}, classes={self.num_classes})"


def stratified_split(dataset: ArrayDataset, fraction: float, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """Splits ``dataset`` into (rest, held out) with ``fraction`` of the images held out, each
    class in proportion (the counts per class are rounded so that they add up to
    ``round(fraction * len(dataset))``; ties go to the larger remainder, then the lower class).

    Which images are held out depends only on ``seed`` and the labels, so the same seed gives
    the same split. Both parts keep the dataset's order and its class names. ValueError when
    ``fraction`` is not in (0, 1) or either part would be empty. :func:`stratified_indices` gives
    the same split as indices (for data that carries more than one label per image).
    """
    rest, held = stratified_indices(dataset.y, fraction, seed)
    labels = np.asarray(dataset.y)
    classes_named = list(dataset.classes)
    return (ArrayDataset(dataset.x[rest], labels[rest], classes=classes_named),
            ArrayDataset(dataset.x[held], labels[held], classes=classes_named))


def stratified_indices(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The split of :func:`stratified_split` as (rest, held out) index arrays into ``labels``
    (each sorted, so both parts keep the original order)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fastnn.data.stratified_split: argument 'fraction' must be in (0, 1); got {fraction!r}")
    labels = np.asarray(labels)
    n = len(labels)
    total = int(round(fraction * n))
    if total == 0 or total == n:
        raise ValueError(f"fastnn.data.stratified_split: holding out {fraction:g} of {n} images leaves "
                         f"{'nothing held out' if total == 0 else 'nothing to train on'}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = fraction * counts
    take = np.floor(exact).astype(np.int64)
    remainder = exact - take
    for i in sorted(range(len(classes)), key=lambda i: (-remainder[i], i))[:total - int(take.sum())]:
        take[i] += 1
    rng = np.random.default_rng([int(seed), 0x5B11])
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)])
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
