"""Reference triplet margin loss, batch-hard or all-triplet mining (float64; the spec of
cpu/triplet.h)."""

from __future__ import annotations

import numpy as np

from fastnn.reference._util import f64


def _distances(e: np.ndarray) -> np.ndarray:
    """d[i, j] = sqrt(max(|e_i|^2 + |e_j|^2 - 2 e_i.e_j, 0)), the squared norms read from the
    Gram matrix's diagonal (so d[i, i] is exactly 0), as the kernels form it."""
    gram = e @ e.T
    sq = np.diag(gram)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))


def _positives_negatives(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = labels[:, None] == labels[None, :]
    return same & ~np.eye(labels.size, dtype=bool), ~same


def _batch_hard_triplets(d: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchors, positives, negatives): for each anchor with both, its farthest positive and
    closest negative under distances d; argmax/argmin take the first, i.e. lowest, index on ties."""
    positive, negative = _positives_negatives(labels)
    anchors = np.flatnonzero(positive.any(axis=1) & negative.any(axis=1))
    farthest = np.argmax(np.where(positive, d, -np.inf), axis=1)
    closest = np.argmin(np.where(negative, d, np.inf), axis=1)
    return anchors, farthest[anchors], closest[anchors]


def triplet_margin_loss(embeddings, labels, margin=1.0, mining="batch_hard"):
    """(loss, dloss/dembeddings): the mean of max(margin + d[a, p] - d[a, n], 0) over the mined
    triplets (see fastnn.ops.triplet_margin_loss); 0 and a zero gradient without any."""
    e = f64(embeddings)
    labels = np.asarray(labels)
    d = _distances(e)
    dloss_dd = np.zeros_like(d)  # before the division by the triplet count
    if mining == "batch_hard":
        a, p, n = _batch_hard_triplets(d, labels)
        hinge = margin + d[a, p] - d[a, n]
        active = ~(hinge < 0)  # the hinge's kink passes the gradient, as PyTorch's clamp_min
        loss_sum, count = float(np.sum(hinge[active])), a.size
        dloss_dd[a[active], p[active]] = 1.0
        dloss_dd[a[active], n[active]] = -1.0
    elif mining == "all":
        positive, negative = _positives_negatives(labels)
        loss_sum, count = 0.0, 0
        for a in range(labels.size):  # one anchor at a time: (P, Q) hinges, not all N^3 at once
            p, n = np.flatnonzero(positive[a]), np.flatnonzero(negative[a])
            hinge = margin + d[a, p][:, None] - d[a, n][None, :]
            active = ~(hinge < 0)
            loss_sum += float(np.sum(hinge[active]))
            count += p.size * n.size
            dloss_dd[a, p] = active.sum(axis=1)
            dloss_dd[a, n] = -active.sum(axis=0)
    else:
        raise ValueError(f"mining must be 'batch_hard' or 'all'; got {mining!r}")
    scale = 1.0 / count if count else 0.0
    # dloss/de_i = sum_j M[i, j] (e_i - e_j), M = S + S^T, S = dloss/dd / d (0 where d = 0).
    s = np.divide(dloss_dd * scale, d, out=np.zeros_like(d), where=d > 0)
    m = s + s.T
    return loss_sum * scale, m.sum(axis=1)[:, None] * e - m @ e
