"""scikit-learn's bundled 8x8 handwritten digits: 1797 real images, no download."""

from __future__ import annotations

import numpy as np

from fastnn.data.dataset import ArrayDataset


def digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of the UCI handwritten digits shipped inside scikit-learn, as (N, 1, 8, 8)
    float32 in [0, 1], split stratified by class with a seeded shuffle.

    Needs the optional extra: ``pip install "fastnn[digits]"`` (scikit-learn).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"fastnn.data.digits: argument 'test_fraction' must lie in (0, 1); got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fastnn.data.digits needs scikit-learn, which ships the data: pip install 'fastnn[digits]'"
        ) from e
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        test_idx.append(members[: int(round(len(members) * test_fraction))])
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    classes = [str(c) for c in range(10)]
    train_perm = rng.permutation(np.flatnonzero(~test_mask))
    test_sel = np.flatnonzero(test_mask)
    return (ArrayDataset(x[train_perm], y[train_perm], classes), ArrayDataset(x[test_sel], y[test_sel], classes))
