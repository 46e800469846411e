"""Identification metrics (fastnn.metrics.cmc, dir_at_far) against hand-solved searches and
brute-force loops over probes, from the full similarity matrix and from top-k lists.

The rates are ratios of small integer counts computed the same way on both sides, so they
are compared exactly up to float64 rounding of one division (TOL = 1e-12); any error in
ranking, tie handling or the threshold changes a count and moves a rate by >= 1 / probes.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import assert_raises_naming

from fastnn import metrics
from fastnn.metrics import _identification

TOL = 1e-12

# Gallery: identities 0, 1, 1, 2 (identity 1 enrolled twice). Probes of identities 1, 2, 0, 7.
GALLERY = np.array([0, 1, 1, 2])
PROBES = np.array([1, 2, 0, 7])
SIMILARITY = np.array([
    [0.9, 0.2, 0.8, 0.1],   # identity 1: best own entry 0.8, one other (0.9) above: rank 2
    [0.5, 0.5, 0.1, 0.5],   # identity 2: own 0.5 ties with two others: rank 3 (ties count against)
    [0.7, 0.3, 0.2, 0.6],   # identity 0: rank 1
    [0.4, 0.95, 0.3, 0.2],  # identity 7, not enrolled: left out of CMC, a non-mated search
])


def test_cmc_by_hand():
    # Mated probes rank 2, 3, 1: at rank 1 one of three is found, two at rank 2, all at rank 3
    # (and at every rank past the gallery's 4 entries).
    np.testing.assert_allclose(metrics.cmc(SIMILARITY, PROBES, GALLERY, max_rank=6), [1 / 3, 2 / 3, 1, 1, 1, 1],
                               rtol=0, atol=TOL)


def test_dir_at_far_by_hand():
    # The only non-mated probe scores 0.95 at top 1. Any far < 1 allows 0 false alarms, so the
    # threshold must exceed 0.95, and no mated probe (top scores 0.9, 0.5, 0.7) gets past: DIR 0.
    # far = 1 allows it: every probe passes; only the rank-1 probe (identity 0) counts: 1/3.
    np.testing.assert_allclose(metrics.dir_at_far(SIMILARITY, PROBES, GALLERY, [0.5, 1.0]), [0, 1 / 3],
                               rtol=0, atol=TOL)
    # Lower the impostor to 0.65: now identity 0's 0.7 clears the bar at any far.
    lowered = SIMILARITY.copy()
    lowered[3, 1] = 0.65
    assert metrics.dir_at_far(lowered, PROBES, GALLERY, 0.01) == pytest.approx(1 / 3, abs=TOL)


def _brute_ranks(similarity, probes, gallery):
    """Per probe: 1-based position of its first own-identity entry after sorting the row high
    to low with wrong identities first among ties; None where it has no gallery entry."""
    ranks = []
    for p in range(similarity.shape[0]):
        entries = sorted(range(gallery.size), key=lambda g: (-similarity[p, g], gallery[g] == probes[p]))
        own = [pos for pos, g in enumerate(entries) if gallery[g] == probes[p]]
        ranks.append(own[0] + 1 if own else None)
    return ranks


def _random_search(rng, probes=29, gallery_size=23, identities=9, unknown=3, levels=None):
    """A random search where some probe identities are not enrolled; ``levels`` quantises the
    similarities to force ties."""
    gallery = rng.integers(0, identities, gallery_size)
    probe_ids = rng.integers(0, identities + unknown, probes)
    probe_ids[:2] = gallery[0], identities  # at least one mated and one non-mated probe
    sim = rng.standard_normal((probes, gallery_size))
    if levels:
        sim = np.round(sim * levels) / levels
    return sim, probe_ids, gallery


@pytest.mark.parametrize("levels", [None, 2], ids=["continuous", "ties"])
def test_cmc_against_a_loop_over_probes(rng, levels):
    sim, probes, gallery = _random_search(rng, levels=levels)
    ranks = [r for r in _brute_ranks(sim, probes, gallery) if r is not None]
    expected = [np.mean([r <= k for r in ranks]) for k in range(1, gallery.size + 1)]
    np.testing.assert_allclose(metrics.cmc(sim, probes, gallery, max_rank=gallery.size), expected, rtol=0, atol=TOL)


def test_blocks_of_probes_give_the_same_answer(rng, monkeypatch):
    # Large searches are handled in blocks of probe rows; force blocks of a few rows here.
    sim, probes, gallery = _random_search(rng, probes=37, levels=3)
    whole = metrics.cmc(sim, probes, gallery, 5), metrics.dir_at_far(sim, probes, gallery, [0.1, 0.5])
    monkeypatch.setattr(_identification, "_BLOCK_ELEMENTS", 3 * gallery.size)
    blocked = metrics.cmc(sim, probes, gallery, 5), metrics.dir_at_far(sim, probes, gallery, [0.1, 0.5])
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(a, b)


def _topk(sim, k):
    """Best-first top-k of each row, as fastnn.ops.similarity_topk lays it out."""
    indices = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sim, indices, axis=1), indices


@pytest.mark.parametrize("k", [1, 5, 23])
def test_topk_input_matches_the_full_matrix(rng, k):
    # Continuous scores: no tie can straddle the k-th place, so the top-k lists hold all that
    # decides ranks 1..k and the top-1 score.
    sim, probes, gallery = _random_search(rng)
    topk = _topk(sim, k)
    np.testing.assert_allclose(metrics.cmc(topk, probes, gallery, max_rank=k),
                               metrics.cmc(sim, probes, gallery, max_rank=k), rtol=0, atol=TOL)
    fars = [0.1, 0.3, 1.0]
    np.testing.assert_allclose(metrics.dir_at_far(topk, probes, gallery, fars),
                               metrics.dir_at_far(sim, probes, gallery, fars), rtol=0, atol=TOL)


@pytest.mark.parametrize("levels", [None, 2], ids=["continuous", "ties"])
def test_dir_at_far_against_a_threshold_sweep(rng, levels):
    sim, probes, gallery = _random_search(rng, probes=41, levels=levels)
    ranks = _brute_ranks(sim, probes, gallery)
    top = sim.max(axis=1)
    mated = [r is not None for r in ranks]
    impostor_scores = [top[p] for p in range(len(ranks)) if not mated[p]]
    # Every threshold that matters: -inf, each top-1 score, and just above each of them.
    candidates = [-np.inf] + [t for x in top for t in (x, np.nextafter(x, np.inf))]
    fars = [0.05, 0.2, 0.5, 1.0]
    expected = []
    for far in fars:
        best = 0.0
        for t in candidates:
            if sum(x >= t for x in impostor_scores) / len(impostor_scores) <= far:
                hits = sum(1 for p, r in enumerate(ranks) if r == 1 and top[p] >= t)
                best = max(best, hits / sum(mated))
        expected.append(best)
    np.testing.assert_allclose(metrics.dir_at_far(sim, probes, gallery, fars), expected, rtol=0, atol=TOL)
    assert isinstance(metrics.dir_at_far(sim, probes, gallery, 0.2), float)


def test_string_identities_work():
    names = np.array(["ann", "bob", "bob", "cy"])
    probes = np.array(["bob", "cy", "ann", "zed"])
    np.testing.assert_array_equal(metrics.cmc(SIMILARITY, probes, names, 4),
                                  metrics.cmc(SIMILARITY, PROBES, GALLERY, 4))


@pytest.mark.parametrize("call, words", [
    (lambda: metrics.cmc(SIMILARITY, PROBES, GALLERY, max_rank=0), ["cmc", "'max_rank'", ">= 1", "got 0"]),
    (lambda: metrics.cmc(SIMILARITY, PROBES, GALLERY, max_rank=2.0), ["cmc", "'max_rank'", "got 2.0"]),
    (lambda: metrics.cmc(_topk(SIMILARITY, 2), PROBES, GALLERY, max_rank=3), ["cmc", "'max_rank'", "[1, 2]"]),
    (lambda: metrics.cmc(SIMILARITY, PROBES[:3], GALLERY), ["cmc", "'probe_labels'", "4 entries", "got 3"]),
    (lambda: metrics.cmc(SIMILARITY, PROBES, GALLERY[:3]), ["cmc", "'similarity'", "(probes, 3)", "(4, 4)"]),
    (lambda: metrics.cmc(SIMILARITY, PROBES.astype(float), GALLERY), ["cmc", "'probe_labels'", "float64"]),
    (lambda: metrics.cmc(SIMILARITY, np.array([5, 6, 7, 8]), GALLERY), ["cmc", "'probe_labels'", "enrolls"]),
    (lambda: metrics.cmc(np.where(SIMILARITY > 0.9, np.nan, SIMILARITY), PROBES, GALLERY), ["cmc", "finite"]),
    (lambda: metrics.cmc((SIMILARITY[:, :2], np.array([[0, 9]] * 4)), PROBES, GALLERY, 1),
     ["cmc", "'topk_indices'", "[0, 4)"]),
    (lambda: metrics.cmc((SIMILARITY[:, :2], np.zeros((4, 2), np.int64)), PROBES, GALLERY, 1),
     ["cmc", "'topk_scores'", "best first"]),
    (lambda: metrics.cmc((SIMILARITY,), PROBES, GALLERY), ["cmc", "'similarity'", "pair"]),
    (lambda: metrics.dir_at_far(SIMILARITY[:3], PROBES[:3], GALLERY, 0.1), ["dir_at_far", "0 non-mated"]),
    (lambda: metrics.dir_at_far(SIMILARITY, PROBES, GALLERY, 0.0), ["dir_at_far", "'far'", "(0, 1]"]),
], ids=["rank-0", "rank-float", "rank-past-k", "probe-count", "gallery-count", "float-ids", "none-mated",
        "nan", "index-range", "unsorted-topk", "not-a-pair", "no-impostors", "far-0"])
def test_bad_input_names_the_function_and_argument(call, words):
    assert_raises_naming(ValueError, call, words)


def test_identification_metrics_take_the_similarity_first():
    for fn in (metrics.cmc, metrics.dir_at_far):
        assert list(inspect.signature(fn).parameters)[:3] == ["similarity", "probe_labels", "gallery_labels"]
        assert inspect.getdoc(fn) and inspect.signature(fn).return_annotation is not inspect.Signature.empty
