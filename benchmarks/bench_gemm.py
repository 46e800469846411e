"""fastnn's GEMM against NumPy (OpenBLAS), float32, side by side (see harness.py for how).

Cases are M x K x N (op(A) is M x K, op(B) K x N): square products, and the shapes neural
network layers produce: an MLP's hidden layer (128x784x256), a wide layer (64x3072x512), a conv
layer as W @ im2col (32x800x3136), a 10-class classifier (128x256x10) and LeNet's first conv
as im2col @ W (6272x25x32). Both sides write into a preallocated output.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=python python benchmarks/bench_gemm.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from fastnn import ops  # noqa: E402

SQUARE = [256, 512, 1024, 2048]
LAYERS = [(128, 784, 256), (64, 3072, 512), (32, 800, 3136), (128, 256, 10), (6272, 25, 32)]


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.linalg.norm(ours.astype(np.float64) - theirs) / np.linalg.norm(theirs.astype(np.float64)))


def gemm_pair(m: int, k: int, n: int) -> harness.Pair:
    rng = np.random.default_rng(0)

    def make():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        return a, b, np.empty((m, n), np.float32)

    return harness.Pair(
        name=f"{m}x{k}x{n}",
        flops=2.0 * m * k * n,
        bytes_moved=4.0 * (m * k + k * n + m * n),
        make_inputs=make,
        fastnn=lambda a, b, c: ops.matmul(a, b, out=c),
        peer=lambda a, b, c: np.matmul(a, b, out=c),
        check=relative_difference,
        # Two float32 products of K terms each differ from the exact one by ~sqrt(K) * 2^-24.
        tolerance=1e-4,
    )


def main(argv=None) -> int:
    pairs = [gemm_pair(s, s, s) for s in SQUARE] + [gemm_pair(*shape) for shape in LAYERS]
    return harness.run(pairs, "numpy", "GEMM float32, fastnn vs NumPy/OpenBLAS", argv)


if __name__ == "__main__":
    sys.exit(main())
