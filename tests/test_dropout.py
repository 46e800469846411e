"""Dropout: the mask's statistics, its independence of the thread count and seed handling, and
nn.Dropout. (The kernels against the reference, which transcribes the counter-based RNG so that
masks match bit for bit, and their bad input are the dropout entry of tests/opinfo.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops
from conftest import assert_raises_naming


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fraction_dropped_is_close_to_p_and_kept_values_are_scaled(p):
    n = 200_000
    x = np.ones(n, dtype=np.float32)
    y, mask = ops.dropout(x, p, seed=7)
    dropped = 1.0 - mask.mean()
    # Dropped count ~ Binomial(n, p): 6 standard deviations, a false alarm once in ~5e8 seeds.
    bound = 6.0 * math.sqrt(p * (1 - p) / n)
    assert abs(dropped - p) <= bound, f"dropped {dropped:.4f}, expected {p} +- {bound:.4f}"
    np.testing.assert_array_equal(y == 0, mask == 0)
    np.testing.assert_allclose(y[mask == 1], 1.0 / (1.0 - p), rtol=1e-6)
    # Neighbouring elements must be independent: both kept about q = (1 - p)^2 of the time.
    # Overlapping pairs are not independent of each other; doubling the 6-sigma binomial bound
    # covers their extra variance (at most twice the binomial one, sqrt(2) in standard deviation).
    q = (1 - p) ** 2
    both_kept = np.mean(mask[1:] & mask[:-1])
    assert abs(both_kept - q) <= 2 * 6.0 * math.sqrt(q * (1 - q) / n)


def test_backward_reuses_the_forward_mask(rng):
    x = rng.standard_normal((4, 33)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    layer = nn.Dropout(0.3)
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx, g * layer._mask / 0.7, rtol=1e-6)


def test_p_one_gives_zeros_and_p_zero_is_identity(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    layer = nn.Dropout(1.0)
    assert not layer(x).any()
    assert not layer.backward(np.ones_like(x)).any()
    layer = nn.Dropout(0.0)
    assert layer(x) is x and layer.backward(x) is x


def test_eval_mode_is_identity(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert layer.backward(x) is x
    assert fastnn.gradcheck(layer, x)


def test_manual_seed_repeats_masks_exactly(rng):
    x = rng.standard_normal((8, 64)).astype(np.float32)
    layer = nn.Dropout(0.5)
    masks = []
    for _ in range(2):
        fastnn.manual_seed(42)
        masks.append([(layer(x) != 0) for _ in range(3)])
    for first, second in zip(*masks):
        np.testing.assert_array_equal(first, second)
    assert (masks[0][0] != masks[0][1]).any(), "each forward call must draw a fresh mask"


def test_mask_does_not_depend_on_thread_count(rng):
    x = rng.standard_normal(300_003).astype(np.float32)  # large enough for several threads
    saved = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            y, mask = ops.dropout(x, 0.4, seed=2**64 - 1)
            results.append((y, mask, ops.dropout_backward(x, mask, 0.4)))
    finally:
        fastnn.set_num_threads(saved)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_masks():
    x = np.ones(1000, dtype=np.float32)
    _, first = ops.dropout(x, 0.5, seed=0)
    _, second = ops.dropout(x, 0.5, seed=1)
    assert 0.3 < np.mean(first != second) < 0.7  # unrelated masks disagree about half the time


X = np.ones((2, 3), dtype=np.float32)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: nn.Dropout(-0.1), ValueError, ["nn.Dropout", "'p'", "-0.1"]),
        (lambda: nn.Dropout(1.5), ValueError, ["nn.Dropout", "'p'", "1.5"]),
        (lambda: nn.Dropout(float("nan")), ValueError, ["nn.Dropout", "nan"]),
        (lambda: nn.Dropout("half"), TypeError, ["nn.Dropout", "'p'"]),
        (lambda: nn.Dropout().backward(X), RuntimeError, ["Dropout.backward called before forward"]),
    ],
)
def test_bad_input_is_rejected(call, exc, words):
    assert_raises_naming(exc, call, words)


def test_numpy_integer_seeds_are_accepted():
    y1, m1 = ops.dropout(X, 0.5, np.uint64(2**63 + 5))
    y2, m2 = ops.dropout(X, 0.5, 2**63 + 5)
    np.testing.assert_array_equal(m1, m2)
