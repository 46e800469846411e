"""DataLoader batching, seeding, prefetch and state; batch transforms against per-image
reference loops written here."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastnn
from fastnn import data


def dataset(n: int = 23, c: int = 2, h: int = 5, w: int = 6) -> data.ArrayDataset:
    x = np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) / (n * c * h * w)
    return data.ArrayDataset(x, np.arange(n) % 10)


def collect(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.copy(), y.copy()) for x, y in loader]


@pytest.mark.parametrize("drop_last, sizes", [(False, [5, 5, 5, 5, 3]), (True, [5, 5, 5, 5])])
def test_batches_shapes_dtypes(drop_last, sizes):
    loader = data.DataLoader(dataset(), batch_size=5, drop_last=drop_last)
    batches = collect(loader)
    assert len(loader) == len(sizes) and [len(y) for _, y in batches] == sizes
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags.c_contiguous and x.shape[1:] == (2, 5, 6)
    ds = dataset()
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), ds.x[: sum(sizes)])  # natural order
    first, _ = next(iter(loader))
    first[...] = -1.0  # batches are copies: the dataset stays intact
    assert loader.dataset.x.min() >= 0


def test_shuffle_is_a_seeded_permutation_per_epoch():
    ds = dataset()
    loader = data.DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    epoch1, epoch2 = collect(loader), collect(loader)
    ys1 = np.concatenate([y for _, y in epoch1])
    order1 = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch1])
    order2 = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch2])
    assert sorted(order1.tolist()) == sorted(ds.x[:, 0, 0, 0].tolist())  # every image exactly once
    assert not np.array_equal(order1, order2)  # a new order each epoch
    assert not np.array_equal(order1, ds.x[:, 0, 0, 0])
    # labels travel with their images
    np.testing.assert_array_equal(ys1, ds.y[np.searchsorted(ds.x[:, 0, 0, 0], order1)])
    again = data.DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    for (xa, ya), (xb, yb) in zip(epoch1 + epoch2, collect(again) + collect(again)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other = collect(data.DataLoader(ds, batch_size=4, shuffle=True, seed=8))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(epoch1, other))


def test_seed_none_follows_manual_seed():
    fastnn.manual_seed(3)
    a = collect(data.DataLoader(dataset(), batch_size=4, shuffle=True))
    fastnn.manual_seed(3)
    b = collect(data.DataLoader(dataset(), batch_size=4, shuffle=True))
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(a, b))


def augment() -> data.Compose:
    return data.Compose([data.RandomCrop(5, padding=2), data.RandomHorizontalFlip(0.5), data.Normalize([0.5, 0.2], [2.0, 0.5])])


def test_prefetch_does_not_change_batches():
    kwargs = dict(batch_size=4, shuffle=True, seed=11, transform=augment())
    eager = data.DataLoader(dataset(), prefetch=0, **kwargs)
    ahead = data.DataLoader(dataset(), prefetch=3, **kwargs)
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(collect(eager), collect(ahead), strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_state_dict_resumes_the_sequence():
    kwargs = dict(batch_size=6, shuffle=True, transform=augment())
    first = data.DataLoader(dataset(), seed=5, **kwargs)
    collect(first)
    state = first.state_dict()
    assert state == {"seed": 5, "epoch": 1}
    expected = collect(first)
    resumed = data.DataLoader(dataset(), seed=99, **kwargs)
    resumed.load_state_dict(state)
    for (xa, _), (xb, _) in zip(expected, collect(resumed), strict=True):
        np.testing.assert_array_equal(xa, xb)


def test_worker_errors_reach_the_consumer_and_abandoned_iterators_stop():
    def broken(x, rng):
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        collect(data.DataLoader(dataset(), batch_size=4, transform=broken, prefetch=2))
    it = iter(data.DataLoader(dataset(), batch_size=1, prefetch=2))
    next(it)
    it.close()
    assert not any(t.name == "fastnn-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2, prefetch=-1), "prefetch"),
    (dict(batch_size=2, seed=-3), "seed"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.DataLoader(dataset(), **kwargs)


# --- transforms ---------------------------------------------------------------------------------

def batch(seed: int = 0, n: int = 9, c: int = 3, h: int = 6, w: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def test_normalize_matches_formula():
    x = batch()
    mean, std = [0.1, 0.2, 0.3], [0.5, 1.0, 2.0]
    out = data.Normalize(mean, std)(x)
    ref = (x.astype(np.float64) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)  # float32 rounding of (x*1/s - m/s)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="channels"):
        data.Normalize([0.0], [1.0])(x)
    with pytest.raises(ValueError, match="positive"):
        data.Normalize([0.0], [0.0])


@pytest.mark.parametrize("size, padding", [(6, 0), (4, 0), (6, 2), (3, 1), (8, 1)])
def test_random_crop_matches_per_image_reference(size, padding):
    x = batch(h=6, w=8)
    out = data.RandomCrop(size, padding)(x, np.random.default_rng(4))
    # Reference: the same draws, applied one image at a time.
    rng = np.random.default_rng(4)
    top = rng.integers(0, 6 + 2 * padding - size + 1, size=len(x))
    left = rng.integers(0, 8 + 2 * padding - size + 1, size=len(x))
    for i in range(len(x)):
        padded = np.pad(x[i], ((0, 0), (padding, padding), (padding, padding)))
        np.testing.assert_array_equal(out[i], padded[:, top[i]:top[i] + size, left[i]:left[i] + size])
    assert out.flags.c_contiguous and out.shape == (9, 3, size, size)
    with pytest.raises(ValueError, match="larger"):
        data.RandomCrop(11, 1)(x)


def test_random_flip_matches_per_image_reference():
    x = batch()
    out = data.RandomHorizontalFlip(0.5)(x, np.random.default_rng(2))
    flips = np.random.default_rng(2).random(len(x)) < 0.5
    assert 0 < flips.sum() < len(x)
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if flips[i] else x[i])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(0.0)(x), x)


def test_transforms_leave_input_alone_and_follow_manual_seed():
    x = batch()
    before = x.copy()
    fastnn.manual_seed(1)
    a = augment()(x[:, :2])
    fastnn.manual_seed(1)
    b = augment()(x[:, :2])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="4-D"):
        data.RandomHorizontalFlip()(x[0])


def _affine_reference(image: np.ndarray, degrees: float, factor: float, shift: tuple[float, float]) -> np.ndarray:
    """One (C, H, W) image through scipy's own bilinear sampler (map_coordinates, order 1,
    zeros outside), at the source points of the inverse map written out with a rotation
    matrix: an implementation independent of fastnn's vectorised one."""
    from scipy import ndimage

    _, h, w = image.shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    t = np.deg2rad(degrees)
    # (row, col) with rows pointing down: a counter-clockwise turn as displayed.
    turn = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * factor
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out_points = np.stack([rows.ravel(), cols.ravel()]).astype(np.float64)
    sources = np.linalg.solve(turn, out_points - centre[:, None] - np.asarray(shift, float)[:, None]) + centre[:, None]
    return np.stack([ndimage.map_coordinates(plane.astype(np.float64), sources, order=1, mode="grid-constant", cval=0.0,
                                             prefilter=False).reshape(h, w) for plane in image])


@pytest.mark.parametrize("h, w", [(8, 8), (5, 7), (1, 3), (17, 16)])
def test_random_affine_matches_scipy_bilinear_reference(h, w):
    pytest.importorskip("scipy", reason="the reference sampler is scipy.ndimage.map_coordinates")
    x = np.random.default_rng(3).random((6, 2, h, w)).astype(np.float32)
    out = data.RandomAffine(degrees=25, translate=1.5, scale=0.2)(x, np.random.default_rng(7))
    # The same draws as the transform makes, in its order, then one image at a time.
    rng = np.random.default_rng(7)
    degrees, factors = rng.uniform(-25, 25, size=6), rng.uniform(0.8, 1.2, size=6)
    shifts = rng.uniform(-1.5, 1.5, size=(6, 2))
    assert out.shape == x.shape and out.dtype == np.float32 and out.flags.c_contiguous
    for i in range(len(x)):
        # float32 output of a float64 computation: rounding only (values are in [0, 1]).
        np.testing.assert_allclose(out[i], _affine_reference(x[i], degrees[i], factors[i], shifts[i]), rtol=0, atol=1e-6)


def test_random_affine_exact_cases_and_bad_arguments():
    x = batch(h=6, w=6)
    n = len(x)
    apply = data.RandomAffine.apply
    np.testing.assert_array_equal(data.RandomAffine()(x), x)  # nothing drawn away from zero: a copy
    np.testing.assert_array_equal(apply(x, [90] * n, [1] * n, [(0, 0)] * n), np.rot90(x, 1, axes=(2, 3)))
    shifted = apply(x, [0] * n, [1] * n, [(2, -1)] * n)  # two rows down, one column left, zeros in
    np.testing.assert_array_equal(shifted[:, :, 2:, :-1], x[:, :, :-2, 1:])
    assert not shifted[:, :, :2].any() and not shifted[:, :, :, -1].any()
    assert data.RandomAffine(10, 1, 0.1)(x[:0]).shape == (0, *x.shape[1:])
    for kwargs, name in (({"degrees": -1}, "degrees"), ({"translate": float("nan")}, "translate"),
                         ({"scale": 1.0}, "scale"), ({"scale": "0.1"}, "scale")):
        with pytest.raises(ValueError, match=f"fastnn.data.RandomAffine: argument '{name}'"):
            data.RandomAffine(**kwargs)
    with pytest.raises(ValueError, match="4-D"):
        data.RandomAffine(5)(x[0])
