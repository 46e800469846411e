"""The CUDA kernels' index arithmetic, checked on the CPU: tests/cuda_host/tile_maps.cpp compiles
the GEMM tile loaders and thread mapping (csrc/cuda/gemm_tiles.cuh) as host C++ and checks that
every operand element lands where the multiply loop reads it. Needs a C++ compiler and the CUDA
headers (not a GPU); skipped without them. The kernels' arithmetic itself runs in tests/cuda."""

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


def test_gemm_tile_index_maps(tmp_path):
    compiler, include = shutil.which("c++") or shutil.which("g++"), _cuda_include()
    if compiler is None or include is None:
        pytest.skip("needs a C++ compiler and the CUDA headers (cuda_runtime.h)")
    exe = tmp_path / "tile_maps"
    subprocess.run([compiler, "-std=c++17", "-O1", f"-I{ROOT / 'csrc'}", f"-I{include}",
                    str(ROOT / "tests" / "cuda_host" / "tile_maps.cpp"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout
