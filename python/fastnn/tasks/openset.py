"""Verification and identification on identities never seen in training (the open-set protocol).

The classes of a dataset play the identities. :func:`open_set_split` holds some out of
training; on them, :func:`verification_pairs` draws balanced same / different pairs and
:func:`identification_split` enrolls K images per identity in a gallery, the other images
being the probes (queries), with some identities never enrolled (their probes must be
rejected: the open-set identification rate).

Pairs are drawn without repeats and without loops over pairs: every unordered pair (a, b) of
positions a < b in the label-sorted order gets a number, counted first by a; a pair's number is
decoded with one ``searchsorted`` over the running count of pairs per first position. In that
order the images of one class are contiguous, so position a's same-class partners are the
rest of its class and its different-class partners everything after its class.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from fastnn.data.dataset import ArrayDataset
from fastnn.tasks._classes import class_ids

EVAL_FRACTION = 0.4
"""The share of classes :func:`open_set_split` holds out by default (the last ones)."""

_PAIRS, _IDENTIFY = 0x9A125, 0x1DE47  # generator keys, so the two draws never share a stream


class OpenSetSplit(NamedTuple):
    """The result of :func:`open_set_split`."""

    train: ArrayDataset
    """The training classes' images, labels remapped to 0..K-1 (classes: their names)."""
    heldout: ArrayDataset
    """The held-out classes' images, with their original labels and the full class list."""
    train_classes: np.ndarray
    """The original id of each training class: ``train.y == k`` is original class ``train_classes[k]``."""
    eval_classes: np.ndarray
    """The held-out classes' original ids, sorted."""


def default_eval_classes(num_classes: int) -> np.ndarray:
    """The classes held out when none are named: the last :data:`EVAL_FRACTION` (40%) of them,
    rounded, and at least 2."""
    count = max(2, int(round(EVAL_FRACTION * num_classes)))
    return np.arange(max(num_classes - count, 0), num_classes, dtype=np.int64)


def open_set_split(dataset: ArrayDataset, eval_classes: Sequence[int | str] | None = None) -> OpenSetSplit:
    """Splits ``dataset`` by class into training identities and held-out ones (see
    :class:`OpenSetSplit`). ``eval_classes`` (class ids or names, as ``--eval-classes`` takes
    them) default to :func:`default_eval_classes`. The same classes give the same split and the
    same remapping, so the train and test sets of a dataset split alike.

    ValueError naming ``--eval-classes`` when fewer than 2 classes are held out (no different
    pairs) or fewer than 2 are left to train on, or for an unknown class.
    """
    num_classes = dataset.num_classes
    if eval_classes is None:
        held = default_eval_classes(num_classes)
    else:
        held = class_ids(eval_classes, dataset.classes, "open_set_split", "eval_classes", "--eval-classes")
    train_classes = np.setdiff1d(np.arange(num_classes), held)
    if len(held) < 2 or len(train_classes) < 2:
        raise ValueError(f"fastnn.tasks.open_set_split: argument 'eval_classes' (--eval-classes) must hold out at "
                         f"least 2 of the {num_classes} classes and leave at least 2 to train on; got "
                         f"{len(held)} held out ({', '.join(dataset.classes[c] for c in held) or 'none'}), "
                         f"{len(train_classes)} to train on")
    remap = np.full(num_classes, -1, dtype=np.int64)
    remap[train_classes] = np.arange(len(train_classes))
    is_held = np.isin(dataset.y, held)
    train = ArrayDataset(dataset.x[~is_held], remap[dataset.y[~is_held]],
                         classes=[dataset.classes[c] for c in train_classes])
    heldout = ArrayDataset(dataset.x[is_held], dataset.y[is_held], classes=list(dataset.classes))
    return OpenSetSplit(train, heldout, train_classes.astype(np.int64), held.astype(np.int64))


def _labels(labels: object, where: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"fastnn.tasks.{where}: argument 'labels' must be a 1-D array of integer class ids; got "
                         f"shape {array.shape}, dtype {array.dtype}")
    return array.astype(np.int64)


def _count(value: object, where: str, argument: str, flag: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"fastnn.tasks.{where}: argument '{argument}' ({flag}) must be an int >= {least}; "
                         f"got {value!r}")
    return int(value)


def _draw_pairs(partners: np.ndarray, first_partner: np.ndarray, count: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct pairs (a, b) of sorted positions, uniformly: position a has
    ``partners[a]`` partners, ``first_partner[a]``, ``first_partner[a] + 1``, ..."""
    before = np.concatenate([[0], np.cumsum(partners)])  # pairs numbered before position a
    numbers = rng.choice(int(before[-1]), size=count, replace=False)
    a = np.searchsorted(before, numbers, side="right") - 1
    return a, first_partner[a] + (numbers - before[a])


def verification_pairs(labels: Sequence[int] | np.ndarray, num_pairs: int,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, same)``: ``num_pairs`` distinct pairs of image indices into ``labels``, half of
    them (rounded down) of the same class (``same`` True) and the rest of different classes,
    each drawn uniformly from all such pairs, in a seeded random order (so any contiguous
    folds mix both kinds). ``i`` and ``j`` are int64, ``same`` bool.

    ValueError when the labels have fewer than 2 classes, or fewer distinct same-class or
    different-class pairs than asked for (the message gives the most there are).
    """
    labels = _labels(labels, "verification_pairs")
    num_pairs = _count(num_pairs, "verification_pairs", "num_pairs", "--pairs", 2)
    order = np.argsort(labels, kind="stable")
    _, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    if len(sizes) < 2:
        raise ValueError(f"fastnn.tasks.verification_pairs: argument 'labels' must hold at least 2 classes for "
                         f"different pairs; got {len(sizes)}")
    n = len(labels)
    class_end = np.repeat(starts + sizes, sizes)  # the end of each sorted position's class
    position = np.arange(n)
    same_partners, diff_partners = class_end - position - 1, n - class_end
    want_same = num_pairs // 2
    want_diff = num_pairs - want_same
    have_same, have_diff = int(same_partners.sum()), int(diff_partners.sum())
    if want_same > have_same or want_diff > have_diff:
        raise ValueError(f"fastnn.tasks.verification_pairs: argument 'num_pairs' (--pairs) asks for {want_same} "
                         f"same-class and {want_diff} different-class pairs; these {n} images have {have_same} and "
                         f"{have_diff} (at most {2 * min(have_same, have_diff) + (have_diff > have_same)} pairs)")
    rng = np.random.default_rng([int(seed), _PAIRS])
    a_same, b_same = _draw_pairs(same_partners, position + 1, want_same, rng)
    a_diff, b_diff = _draw_pairs(diff_partners, class_end, want_diff, rng)
    first = np.concatenate([a_same, a_diff])
    second = np.concatenate([b_same, b_diff])
    same = np.concatenate([np.ones(want_same, dtype=bool), np.zeros(want_diff, dtype=bool)])
    shuffle = rng.permutation(num_pairs)
    return order[first[shuffle]], order[second[shuffle]], same[shuffle]


class IdentificationSplit(NamedTuple):
    """The result of :func:`identification_split` (indices into the labels, sorted)."""

    gallery: np.ndarray
    """The enrolled images: ``enroll`` per enrolled identity."""
    probes: np.ndarray
    """Every other image: queries, mated (identity enrolled) or not."""
    enrolled: np.ndarray
    """The enrolled identities (class ids), sorted; a probe whose class is not here is non-mated."""


def identification_split(labels: Sequence[int] | np.ndarray, enroll: int, unknown_classes: int = 0,
                         seed: int = 0) -> IdentificationSplit:
    """Enrolls ``enroll`` randomly chosen images of each identity (class) in ``labels`` in a
    gallery; every other image is a probe. ``unknown_classes`` identities, chosen at random,
    are never enrolled: all their images are non-mated probes (open-set identification).
    Seeded: the same arguments give the same split.

    ValueError naming ``--enroll`` when an enrolled identity has fewer than ``enroll`` + 1
    images (each needs a probe), and ``--unknown-classes`` unless at least one identity stays
    enrolled.
    """
    labels = _labels(labels, "identification_split")
    enroll = _count(enroll, "identification_split", "enroll", "--enroll", 1)
    unknown_classes = _count(unknown_classes, "identification_split", "unknown_classes", "--unknown-classes", 0)
    classes, sizes = np.unique(labels, return_counts=True)
    if unknown_classes >= len(classes):
        raise ValueError(f"fastnn.tasks.identification_split: argument 'unknown_classes' (--unknown-classes) must "
                         f"leave at least one of the {len(classes)} identities enrolled; got {unknown_classes}")
    rng = np.random.default_rng([int(seed), _IDENTIFY])
    unknown = rng.choice(classes, size=unknown_classes, replace=False)
    is_enrolled = ~np.isin(classes, unknown)
    too_small = is_enrolled & (sizes <= enroll)
    if too_small.any():
        k = int(np.argmax(too_small))
        raise ValueError(f"fastnn.tasks.identification_split: argument 'enroll' (--enroll) is {enroll}, but identity "
                         f"{int(classes[k])} has only {int(sizes[k])} images; each enrolled identity needs "
                         f"{enroll} + 1 (at least one probe)")
    # A random order, then grouped by class (stable): the first `enroll` of each group are a
    # uniform random choice of that class's images.
    shuffled = rng.permutation(len(labels))
    grouped = shuffled[np.argsort(labels[shuffled], kind="stable")]
    _, starts, counts = np.unique(labels[grouped], return_index=True, return_counts=True)
    rank = np.arange(len(labels)) - np.repeat(starts, counts)
    chosen = (rank < enroll) & np.repeat(is_enrolled, counts)
    gallery = np.sort(grouped[chosen])
    probes = np.sort(grouped[~chosen])
    return IdentificationSplit(gallery, probes, classes[is_enrolled].astype(np.int64))
