"""Similarity top-k over an embedding gallery: fastnn's blocked similarity_topk against NumPy's
``q @ g.T`` + ``argpartition`` + a sort of the k, float32, side by side (see harness.py for how).

Cases: 10,000 queries against a 10,000-row gallery of 128-d embeddings, k = 5 (the issue's
identification bar), and 1,000 queries against it. "dot" takes embeddings normalised once
beforehand (the usual store), "cosine" normalises inside the call on both sides. NumPy
materialises the (N, M) matrix (400 MB at 10k x 10k); fastnn never does (blocks of 64 queries x
1,024 gallery rows, reduced to the running top-k while in L2).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=python python benchmarks/bench_similarity.py --threads 2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from fastnn import ops  # noqa: E402

DIM, K = 128, 5


def numpy_topk(q: np.ndarray, g: np.ndarray, k: int, normalise: bool):
    if normalise:
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    s = q @ g.T
    m = s.shape[1]
    idx = np.argpartition(s, m - k, axis=1)[:, m - k:]
    vals = np.take_along_axis(s, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def top_values_difference(ours, theirs) -> float:
    """Relative difference of the k best values per row (near-ties may swap columns between two
    float32 computations; the values they hold agree)."""
    a, b = ours[0].astype(np.float64), theirs[0].astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def topk_pair(queries: int, gallery: int, metric: str) -> harness.Pair:
    rng = np.random.default_rng(0)

    def make():
        q = rng.standard_normal((queries, DIM), dtype=np.float32)
        g = rng.standard_normal((gallery, DIM), dtype=np.float32)
        if metric == "dot":
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            g /= np.linalg.norm(g, axis=1, keepdims=True)
        return q, g

    return harness.Pair(
        name=f"{queries}x{gallery}x{DIM} k={K} {metric}",
        flops=2.0 * queries * gallery * DIM,
        bytes_moved=4.0 * (queries + gallery) * DIM,
        make_inputs=make,
        fastnn=lambda q, g: ops.similarity_topk(q, g, K, metric),
        peer=lambda q, g: numpy_topk(q, g, K, normalise=metric == "cosine"),
        check=top_values_difference,
        # Cosines of 128 float32 products: each within ~sqrt(128) * 2^-24 of the exact value.
        tolerance=1e-5,
    )


def main(argv=None) -> int:
    pairs = [topk_pair(10_000, 10_000, "dot"), topk_pair(10_000, 10_000, "cosine"), topk_pair(1_000, 10_000, "dot")]
    return harness.run(pairs, "numpy", "similarity top-k float32, fastnn vs NumPy/OpenBLAS", argv)


if __name__ == "__main__":
    sys.exit(main())
