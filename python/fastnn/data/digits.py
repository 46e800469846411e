"""scikit-learn's bundled 8x8 handwritten digits: 1797 real images, no download."""

from __future__ import annotations

import numpy as np

from fastnn.data.dataset import ArrayDataset

# Where scikit-learn keeps the data, inside its package: 1797 rows of 64 pixel values (0-16) and
# the label, comma-separated (what sklearn.datasets.load_digits parses).
_DIGITS_FILE = ("datasets", "data", "digits.csv.gz")


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 1, 8, 8) float32 in [0, 1], labels int64), read from scikit-learn's file
    without importing scikit-learn: its import costs about two seconds (SciPy and more), many
    times the read, and a short training run on the digits would spend most of its start-up
    there. Falls back to ``load_digits`` where the file is not at its usual place."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ImportError("fastnn.data.digits needs scikit-learn, which ships the data: pip install 'fastnn[digits]'")
    folders = list(spec.submodule_search_locations or [])
    path = next((os.path.join(f, *_DIGITS_FILE) for f in folders if os.path.isfile(os.path.join(f, *_DIGITS_FILE))),
                None)
    if path is not None:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        pixels, labels = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - a scikit-learn that stores its data elsewhere
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, labels = bunch.data.astype(np.float32), bunch.target
    return (pixels / 16.0).reshape(-1, 1, 8, 8), labels.astype(np.int64)


def digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of the UCI handwritten digits shipped inside scikit-learn, as (N, 1, 8, 8)
    float32 in [0, 1], split stratified by class with a seeded shuffle.

    Needs the optional extra: ``pip install "fastnn[digits]"`` (scikit-learn).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"fastnn.data.digits: argument 'test_fraction' must lie in (0, 1); got {test_fraction}")
    x, y = _load_digits()
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
