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

Skipped without a C++ compiler (or, where marked, the CUDA headers). The kernels on a GPU run in
tests/cuda."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "cuda_host"

# program -> the csrc/cuda/*.cu files it runs (compiled as host C++ under emulate.h and linked
# with runtime.cpp, the CUDA runtime calls they make); None: a plain program on the index maps.
PROGRAMS: dict[str, list[str] | None] = {
    "tile_maps": None,
    "conv2d_maps": None,
    "pool2d_maps": None,
    "conv2d_kernels": ["conv2d", "gemm", "gemm_tf32", "band_sums", "launch"],
    "gemm_kernels": ["gemm", "gemm_tf32", "launch"],
    "pool2d_kernels": ["pool2d", "launch"],
    "softmax_xent": ["softmax_xent", "loss_result", "launch"],
    "bce_logits": ["bce_logits", "loss_result", "launch"],
    "batchnorm": ["batchnorm", "band_sums", "launch"],
    "linear": ["linear", "gemm", "gemm_tf32", "band_sums", "launch"],
    "optim": ["optim", "launch"],
    "activation": ["activation", "launch"],
    "dropout": ["dropout", "launch"],
    "similarity": ["similarity", "gemm", "gemm_tf32", "launch"],
}
NEEDS_CUDA_HEADERS = {"tile_maps"} | {name for name, sources in PROGRAMS.items() if sources is not None}


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


class _Builder:
    """Compiles each source once per session (the .cu files and runtime.cpp are shared by several
    programs), several at a time, and links programs from the objects."""

    def __init__(self, compiler: str, include: Path | None, out: Path) -> None:
        self.compiler, self.include, self.out = compiler, include, out
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        self.objects: dict[Path, Future] = {}
        self.lock = threading.Lock()

    def flags(self, emulated: bool) -> list[str]:
        flags = ["-std=c++17", "-O1", f"-I{ROOT / 'csrc'}"]
        if self.include is not None:
            flags.append(f"-I{self.include}")
        if emulated:
            flags += ["-include", str(HOST / "emulate.h")]
            if platform.machine() in ("x86_64", "AMD64"):
                flags.append("-fcf-protection=none")  # emulate.h's fiber switch keeps no shadow stack
        return flags

    def _compile(self, source: Path, emulated: bool) -> Path:
        obj = self.out / (source.parent.name + "_" + source.name + ".o")
        subprocess.run([self.compiler, *self.flags(emulated), "-x", "c++", "-c", str(source), "-o", str(obj)],
                       check=True)
        return obj

    def object(self, source: Path, emulated: bool) -> Future:
        with self.lock:
            if source not in self.objects:
                self.objects[source] = self.pool.submit(self._compile, source, emulated)
            return self.objects[source]

    def program(self, name: str) -> Path:
        sources = PROGRAMS[name]
        emulated = sources is not None
        paths = [HOST / f"{name}.cpp"]
        if emulated:
            paths += [HOST / "runtime.cpp"] + [ROOT / "csrc" / "cuda" / f"{s}.cu" for s in sources]
        objects = [self.object(path, emulated) for path in paths]
        exe = self.out / name
        subprocess.run([self.compiler, *[str(o.result()) for o in objects], "-o", str(exe)], check=True)
        return exe


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("needs a C++ compiler")
    b = _Builder(compiler, _cuda_include(), tmp_path_factory.mktemp("cuda_host"))
    yield b
    b.pool.shutdown()


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_index_maps(program, builder):
    if program in NEEDS_CUDA_HEADERS and builder.include is None:
        pytest.skip("needs the CUDA headers (cuda_runtime.h)")
    out = subprocess.run([str(builder.program(program))], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout
