"""Registry entry (tests/opinfo.py) of the triplet margin loss: both minings on odd shapes
(N = 2, classes of one sample, a single class, D = 1 and 129, labels of any value)."""

from __future__ import annotations

import numpy as np

from conftest import FLOAT32_RTOL_REDUCTION
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import OpInfo, Sample, Tol, err, randn

TRIPLET = Tol(FLOAT32_RTOL_REDUCTION,
              "distances from a float32 Gram matrix, |a|^2 + |b|^2 - 2ab: the sum cancels to ~2^-24 |a|^2 / d^2 "
              "relative, small for typical rows (~1e-6) and up to 3e-5 in these samples for rows close "
              "together relative to their norms (D = 1); loss and gradient inherit it")

# (N, D, labels): the edge cases named, then random labels over a few classes.
_EDGES = [
    (2, 1, [0, 1]),                     # no positive anywhere: no triplet
    (2, 3, [4, 4]),                     # no negative anywhere: no triplet
    (3, 1, [0, 0, 1]),                  # the smallest batch with a triplet
    (9, 5, [7] * 9),                    # one class
    (7, 4, [0, 1, 2, 3, 4, 5, 5]),      # classes of one sample: only two anchors
    (6, 3, [-5, 10**12, -5, 3, 10**12, 3]),  # any label values
]


def _samples(rng, dtype):
    cases = [(n, d, np.array(labels)) for n, d, labels in _EDGES]
    for n, d, classes in [(17, 129, 3), (33, 7, 5), (40, 129, 4), (65, 2, 9)]:
        cases.append((n, d, rng.integers(0, classes, size=n)))
    for i, (n, d, labels) in enumerate(cases):
        labels = labels.astype((np.int64, np.int32)[i % 2] if np.abs(labels).max() < 2**31 else np.int64)
        # Clustered embeddings (a centre per class plus noise): hinges of both signs.
        centres = {int(label): randn(rng, d, dtype, 1.5) for label in np.unique(labels)}
        x = np.stack([centres[int(label)] for label in labels]) + randn(rng, (n, d), dtype)
        for mining in ("batch_hard", "all"):
            margin = (0.25, 0.5, 1.0, 3.0)[i % 4]
            yield Sample(f"N={n} D={d} {mining} margin={margin} {labels.dtype}", (x, labels, margin, mining))


def _errors(dtype):
    op = ops.triplet_margin_loss
    e = lambda xp, *shape: xp.ones(shape or (2, 3), dtype)  # noqa: E731
    lab = lambda xp, n=2: xp.zeros(n, np.int64)  # noqa: E731
    yield err("float labels", lambda xp: op(e(xp), xp.zeros(2, dtype)), TypeError,
              "fastnn.triplet_margin_loss: argument 'labels' must be int64 or int32")
    yield err("int embeddings", lambda xp: op(xp.ones((2, 3), np.int32), lab(xp)), TypeError,
              "fastnn.triplet_margin_loss: argument 'embeddings' must be float32 or float64")
    yield err("label count", lambda xp: op(e(xp), lab(xp, 3)), ValueError,
              "fastnn.triplet_margin_loss: argument 'labels' must have shape (2,) (one label per row of embeddings); got (3,)")
    yield err("1-D embeddings", lambda xp: op(e(xp, 3), lab(xp, 3)), ValueError,
              "fastnn.triplet_margin_loss: argument 'embeddings' must be 2-D (batch, features); got shape (3,)")
    yield err("no rows", lambda xp: op(e(xp, 0, 3), lab(xp, 0)), ValueError,
              "argument 'embeddings' must have at least one row and one column; got shape (0, 3)")
    yield err("no columns", lambda xp: op(e(xp, 2, 0), lab(xp)), ValueError,
              "argument 'embeddings' must have at least one row and one column; got shape (2, 0)")
    yield err("strided embeddings", lambda xp: op(e(xp, 3, 2).T, lab(xp)), ValueError,
              "argument 'embeddings' must be C-contiguous")
    yield err("2-D labels", lambda xp: op(e(xp), xp.zeros((2, 1), np.int64)), ValueError,
              "argument 'labels' must be 1-D")
    yield err("negative margin", lambda xp: op(e(xp), lab(xp), -1.0), ValueError,
              "fastnn.triplet_margin_loss: argument 'margin' must be a finite number > 0; got -1")
    yield err("zero margin", lambda xp: op(e(xp), lab(xp), 0), ValueError,
              "argument 'margin' must be a finite number > 0; got 0")
    yield err("nan margin", lambda xp: op(e(xp), lab(xp), float("nan")), ValueError,
              "argument 'margin' must be a finite number > 0; got nan")
    yield err("string margin", lambda xp: op(e(xp), lab(xp), "1"), TypeError,
              "fastnn.triplet_margin_loss: argument 'margin' must be a real number; got '1'")
    yield err("mining name", lambda xp: op(e(xp), lab(xp), 1.0, "hardest"), ValueError,
              "fastnn.triplet_margin_loss: argument 'mining' must be 'batch_hard' or 'all'; got 'hardest'")
    yield err("mining type", lambda xp: op(e(xp), lab(xp), 1.0, None), TypeError,
              "fastnn.triplet_margin_loss: argument 'mining' must be a str ('batch_hard' or 'all'); got None")


op_db: list[OpInfo] = [
    OpInfo("triplet_margin_loss", ops.triplet_margin_loss, ref.triplet_margin_loss, _samples, _errors,
           tol=TRIPLET, grad_tol=TRIPLET, outputs=("loss", "grad"), grad_outputs=("grad",)),
]
