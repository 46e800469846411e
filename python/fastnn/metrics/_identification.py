"""Identification metrics: search each probe (query) against a gallery of enrolled entries
and ask where its identity lands.

Inputs: ``similarity`` (P, G), higher = more alike (cosine similarity, negated distance), row
p = probe p against every gallery entry; or the precomputed top-k pair
``(topk_scores, topk_indices)``, both (P, k), each row best first (what
``fastnn.ops.similarity_topk(query, gallery, k)`` returns), so a 10,000 x 10,000 search need
not be kept. For distances (lower = more alike, e.g. ``metric="sqeuclidean"``, listed nearest
first) pass their negation: ``(-values, indices)``. ``probe_labels`` (P,) and ``gallery_labels`` (G,) are identities (ints or strings);
a gallery may hold several entries of one identity.

A probe is *mated* when its identity has at least one gallery entry, *non-mated* otherwise.
Its rank is 1 + the number of gallery entries of other identities scoring at least as high
as its best same-identity entry: ties count against the probe (a wrong entry that ties with
the right one ranks ahead of it). With top-k input only the k entries listed are seen; a
mated probe whose identity is not among them ranks beyond k, and entries past the k-th are
taken to score below it (a tie straddling the k-th place cannot be seen).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import _checks

# Rows of the similarity matrix handled at once: bounds the (rows, G) temporaries to ~32 MB.
_BLOCK_ELEMENTS = 4_000_000


_Ranks = tuple[np.ndarray, np.ndarray, np.ndarray, Optional[int]]


def _ranks(fn: str, similarity, probe_labels, gallery_labels) -> _Ranks:
    """(rank, top-1 score, mated) per probe, and k for top-k input (None for the full matrix,
    where every place is seen). A probe whose identity is not among the places seen gets a
    rank past them."""
    gallery = _checks.identities(fn, "gallery_labels", gallery_labels)
    if isinstance(similarity, (tuple, list)):
        return _ranks_from_topk(fn, similarity, probe_labels, gallery)
    return _ranks_from_matrix(fn, similarity, probe_labels, gallery)


def _ranks_from_topk(fn: str, topk, probe_labels, gallery: np.ndarray) -> _Ranks:
    if len(topk) != 2:
        raise ValueError(f"fastnn.metrics.{fn}: argument 'similarity' as top-k input must be a pair "
                         f"(topk_scores, topk_indices); got {len(topk)} items")
    scores, indices = (np.asarray(a) for a in topk)
    if scores.ndim != 2 or scores.shape[1] == 0 or indices.shape != scores.shape:
        raise ValueError(f"fastnn.metrics.{fn}: argument 'similarity' as top-k input must be two (P, k) "
                         f"arrays, k >= 1; got shapes {scores.shape} and {indices.shape}")
    in_range = indices.size == 0 or (indices.min() >= 0 and indices.max() < gallery.size)
    if not np.issubdtype(indices.dtype, np.integer) or not in_range:
        raise ValueError(f"fastnn.metrics.{fn}: argument 'topk_indices' must be integers in [0, {gallery.size}) "
                         f"(gallery positions); got {indices.dtype} in "
                         f"[{indices.min(initial=0)}, {indices.max(initial=0)}]")
    if not np.isfinite(scores).all() or (np.diff(scores, axis=1) > 0).any():
        raise ValueError(f"fastnn.metrics.{fn}: argument 'topk_scores' must be finite and sorted best first "
                         f"(non-increasing along each row)")
    probes = _checks.identities(fn, "probe_labels", probe_labels, scores.shape[0])
    correct = gallery[indices] == probes[:, None]
    best_right = scores[np.arange(scores.shape[0]), np.argmax(correct, axis=1)]
    wrong_ahead = np.count_nonzero((scores >= best_right[:, None]) & ~correct, axis=1)
    k = scores.shape[1]
    rank = np.where(correct.any(axis=1), wrong_ahead + 1, k + 1)
    return rank, scores[:, 0].astype(np.float64), np.isin(probes, gallery), k


def _ranks_from_matrix(fn: str, similarity, probe_labels, gallery: np.ndarray) -> _Ranks:
    sim = np.asarray(similarity)
    if sim.ndim != 2 or sim.shape[1] != gallery.size or not np.issubdtype(sim.dtype, np.number):
        raise ValueError(f"fastnn.metrics.{fn}: argument 'similarity' must be a numeric (probes, {gallery.size}) "
                         f"array, one column per gallery entry, or a (topk_scores, topk_indices) pair; "
                         f"got {sim.dtype} {sim.shape}")
    probes = _checks.identities(fn, "probe_labels", probe_labels, sim.shape[0])
    rank = np.empty(sim.shape[0], np.int64)
    top = np.empty(sim.shape[0], np.float64)
    rows = max(1, _BLOCK_ELEMENTS // max(1, gallery.size))
    for start in range(0, sim.shape[0], rows):  # blocks of probes, each vectorised
        block = sim[start:start + rows]
        if not np.isfinite(block).all():
            raise ValueError(f"fastnn.metrics.{fn}: argument 'similarity' must be finite; got NaN or inf")
        right = probes[start:start + rows, None] == gallery[None, :]
        best_right = np.where(right, block, -np.inf).max(axis=1, initial=-np.inf)
        wrong_ahead = np.count_nonzero((block >= best_right[:, None]) & ~right, axis=1)
        rank[start:start + rows] = np.where(right.any(axis=1), wrong_ahead + 1, gallery.size + 1)
        top[start:start + rows] = block.max(axis=1, initial=-np.inf)
    return rank, top, np.isin(probes, gallery), None


def cmc(similarity, probe_labels, gallery_labels, max_rank: int = 10) -> np.ndarray:
    """CMC: entry r-1 is the fraction of probes whose identity is among their r best gallery matches.

    The closed-set identification rate at ranks 1 .. max_rank. Returns (max_rank,) float64,
    non-decreasing. Only mated probes count (a probe whose identity has no gallery entry
    cannot be found; use :func:`dir_at_far` for those). Ties count against the probe (see
    the module docstring). ``similarity`` is the (P, G) matrix
    or a ``(topk_scores, topk_indices)`` pair; with top-k input ``max_rank`` must not exceed k
    (with the full matrix, ranks past G are allowed: every mated probe is found by rank G).
    """
    rank, _, mated, seen = _ranks("cmc", similarity, probe_labels, gallery_labels)
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1 or (seen is not None and max_rank > seen):
        limit = "an int >= 1" if seen is None else f"an int in [1, {seen}] (the k places of the top-k input)"
        raise ValueError(f"fastnn.metrics.cmc: argument 'max_rank' must be {limit}; got {max_rank!r}")
    if not mated.any():
        raise ValueError("fastnn.metrics.cmc: argument 'probe_labels' must contain at least one identity "
                         "that 'gallery_labels' enrolls; got none")
    hits_at = np.bincount(np.minimum(rank[mated], max_rank + 1), minlength=max_rank + 2)
    return np.cumsum(hits_at[1:max_rank + 1]) / np.count_nonzero(mated)


def dir_at_far(similarity, probe_labels, gallery_labels, far: float | Sequence[float]) -> float | np.ndarray:
    """DIR@FAR: the fraction of enrolled people found first, when at most ``far`` of strangers pass.

    The open-set detection and identification rate (ISO/IEC 19795-1, NIST FRVT): a probe is
    found when its best match is its own identity and scores at or above the threshold; the
    threshold lets through at most a ``far`` fraction of probes whose identity is not enrolled.
    Each probe's top-1 score is its highest similarity. The threshold t is the lowest for which
    (non-mated probes with top-1 score >= t) / non-mated probes <= far (just above the highest
    non-mated top-1 score it must turn away, or -inf where far lets them all through); DIR = (mated probes
    whose rank is 1 and whose top-1 score >= t) / mated probes. ``far`` in (0, 1], a number
    (returns a float) or a sequence (returns an array). Needs both mated and non-mated probes.
    ``similarity`` is the (P, G) matrix or a ``(topk_scores, topk_indices)`` pair.
    """
    rates, scalar = _checks.rates("dir_at_far", "far", far)
    rank, top, mated, _ = _ranks("dir_at_far", similarity, probe_labels, gallery_labels)
    impostors = np.sort(top[~mated])[::-1]
    if impostors.size == 0 or not mated.any():
        raise ValueError(f"fastnn.metrics.dir_at_far: argument 'probe_labels' must hold both identities "
                         f"enrolled in the gallery and identities not enrolled; got {np.count_nonzero(mated)} "
                         f"mated and {impostors.size} non-mated probes")
    # Allowed false alarms: the largest count c with c / non-mated <= far.
    allowed = np.searchsorted(np.arange(impostors.size + 1) / impostors.size, rates, side="right") - 1
    # Threshold just above the (c+1)-th highest impostor score; -inf when all may pass.
    above = np.r_[impostors, -np.inf][allowed]
    identified = (rank == 1) & mated
    dir_ = np.count_nonzero(identified[None, :] & (top[None, :] > above[:, None]), axis=1) / np.count_nonzero(mated)
    return float(dir_[0]) if scalar else dir_
