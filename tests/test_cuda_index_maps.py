"""The CUDA code, checked on the CPU (no GPU needed): small C++ programs in tests/cuda_host compile
it as host code and check it.

- The index maps on their own: the GEMM tile loaders and thread mapping (csrc/cuda/gemm_tiles.cuh,
  with CUDA's headers), the implicit-GEMM convolution's gathers and output addresses
  (csrc/cuda/conv2d_maps.cuh), the pooling windows, scans and backward gathers
  (csrc/cuda/pool2d_maps.cuh, against the CPU's scatter bit for bit).
- Whole launches, emulated by tests/cuda_host/emulate.h (each thread a fiber; barriers, warp
  shuffles, atomics and the TF32 kernel's PTX emulated; FASTNN_LAUNCH run on the host): the
  kernels of every csrc/cuda/*.cu, launched directly with chosen tiles and splits (conv2d, gemm,
  pool2d) and through the public entry points, launchers included (tile choice, split-K,
  banding, chunk tables, loss finish, flags read back), on an emulated GPU with one
  multiprocessor (and one with 132 for the TF32 GEMM's other tile shape). Every output is
  compared in full with a float64 direct loop; each program states its tolerances.

tests/cuda_host_build.py compiles the programs (on a background thread while the rest of the suite
runs: tests/conftest.py starts it). Skipped without a C++ compiler (or, where marked, the CUDA
headers). The kernels on a GPU run in tests/cuda."""

from __future__ import annotations

import subprocess

import pytest

import cuda_host_build
from cuda_host_build import PROGRAMS


@pytest.fixture(scope="module")
def builder():
    built = cuda_host_build.builder()
    if built is None:
        pytest.skip(cuda_host_build.unavailable())
    built.start()  # queued already unless this is a pytest-xdist worker (tests/conftest.py)
    return built


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_index_maps(program, builder):
    if not builder.buildable(program):
        pytest.skip("needs the CUDA headers (cuda_runtime.h)")
    out = subprocess.run([str(builder.program(program))], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout
