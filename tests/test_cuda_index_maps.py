"""The CUDA kernels' index arithmetic, checked on the CPU (no GPU needed): small C++ programs in
tests/cuda_host compile the kernels' code as host code and check it.

- The index maps on their own: the GEMM tile loaders and thread mapping (csrc/cuda/gemm_tiles.cuh,
  with CUDA's headers), the implicit-GEMM convolution's gathers and output addresses
  (csrc/cuda/conv2d_maps.cuh), the pooling windows, scans and backward gathers
  (csrc/cuda/pool2d_maps.cuh, against the CPU's scatter bit for bit).
- Whole launches of the real kernels (csrc/cuda/*_kernels.cuh, gemm_exact.cuh), run by
  tests/cuda_host/emulate.h (each thread a fiber, barriers and warp shuffles emulated): the
  convolutions forward / input gradient / weight gradient (split-K too) / bias gradient through
  the real GatherOperand and DenseOperand loaders, the exact GEMM with every transpose and tile
  shape, and the pooling kernels; every output compared in full with a float64 direct loop.

Skipped without a C++ compiler (or, where marked, the CUDA headers). The kernels' arithmetic on a
GPU runs in tests/cuda."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _cuda_include() -> Path | None:
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for base in filter(None, candidates):
        if (Path(base) / "include" / "cuda_runtime.h").exists():
            return Path(base) / "include"
    return None


@pytest.mark.parametrize("program,needs_cuda_headers", [
    ("tile_maps", True), ("conv2d_maps", False), ("pool2d_maps", False),
    ("conv2d_kernels", True), ("gemm_kernels", True), ("pool2d_kernels", True),
])
def test_index_maps(program, needs_cuda_headers, tmp_path):
    compiler = shutil.which("c++") or shutil.which("g++")
    include = _cuda_include()
    if compiler is None or (needs_cuda_headers and include is None):
        pytest.skip("needs a C++ compiler" + (" and the CUDA headers (cuda_runtime.h)" if needs_cuda_headers else ""))
    exe = tmp_path / program
    flags = [f"-I{ROOT / 'csrc'}"] + ([f"-I{include}"] if needs_cuda_headers else [])
    subprocess.run([compiler, "-std=c++17", "-O1", *flags, str(ROOT / "tests" / "cuda_host" / f"{program}.cpp"),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout
