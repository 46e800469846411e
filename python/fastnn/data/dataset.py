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
