"""Builds the host programs of tests/cuda_host (run by tests/test_cuda_index_maps.py).

Compiling them is most of that module's cost (about thirty translation units, a few seconds
each, where running them takes a second or two in all). pytest runs the Python tests on one
core, so tests/conftest.py starts these compiles on a background thread as soon as collection
has selected a test that needs them (``start``), and the compiles run beside the rest of the
suite. A test that needs an object still waiting in that queue compiles it itself on the
calling thread, so the two threads share what is left (``object``).

Each source compiles once per test run (the .cu files and runtime.cpp are shared by several
programs); a compile error fails the tests that need it, with the compiler's message.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

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
    "arcface": ["arcface", "l2_normalize", "gemm", "gemm_tf32", "loss_result", "launch"],
    "triplet": ["triplet", "gemm", "gemm_tf32", "loss_result", "launch"],
    "similarity": ["similarity", "gemm", "gemm_tf32", "launch"],
}
NEEDS_CUDA_HEADERS = {"tile_maps"} | {name for name, sources in PROGRAMS.items() if sources is not None}


def cuda_include() -> Path | None:
    """The CUDA toolkit's include folder (cuda_runtime.h), or None."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for base in filter(None, candidates):
        if (Path(base) / "include" / "cuda_runtime.h").exists():
            return Path(base) / "include"
    return None


class CompileError(RuntimeError):
    """A host program's source did not compile or link; the message holds the compiler's output."""


class Builder:
    """Compiles sources into objects (one background thread, plus the caller when it waits) and
    links programs from them."""

    def __init__(self, compiler: str, include: Path | None) -> None:
        self.compiler, self.include = compiler, include
        self.out = Path(tempfile.mkdtemp(prefix="fastnn-cuda-host-"))
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuda-host-build")
        self.objects: dict[Path, Future] = {}
        self.precompiled: Future | None = None
        self.lock = threading.Lock()

    def buildable(self, name: str) -> bool:
        return self.include is not None or name not in NEEDS_CUDA_HEADERS

    def flags(self, emulated: bool, header: Path | None = None) -> list[str]:
        # -Og: about a quarter less compile time than -O1 (the programs compile on every test
        # run, about 30 translation units), for a few seconds more of emulated kernels.
        flags = ["-std=c++17", "-Og", f"-I{ROOT / 'csrc'}"]
        if self.include is not None:
            flags.append(f"-I{self.include}")
        if emulated:
            flags += ["-include", str(header or self._emulate_header())]
            if platform.machine() in ("x86_64", "AMD64"):
                flags.append("-fcf-protection=none")  # emulate.h's fiber switch keeps no shadow stack
        return flags

    def _emulate_header(self) -> Path:
        """emulate.h, or a stand-in for it whose precompiled form (GCC's .gch, looked up beside
        the header named by -include) holds emulate.h and the CUDA runtime headers: parsing them
        is about half of each emulated translation unit's compile. emulate.h itself where the
        compiler is not GCC or the precompile fails."""
        with self.lock:
            if self.precompiled is None:
                self.precompiled = self.pool.submit(self._precompile)
            future = self.precompiled
        if future.running() or future.done():
            return future.result()
        return HOST / "emulate.h"  # still queued behind this compile: do without

    def _precompile(self) -> Path:
        version = subprocess.run([self.compiler, "--version"], capture_output=True, text=True).stdout
        if "Free Software Foundation" not in version:  # clang looks for .pch files, not .gch
            return HOST / "emulate.h"
        stand_in = self.out / "emulate.h"
        stand_in.write_text(f'#include "{HOST / "emulate.h"}"\n')
        flags = [f for f in self.flags(True, stand_in) if f not in ("-include", str(stand_in))]
        done = subprocess.run([self.compiler, *flags, "-x", "c++-header", str(stand_in), "-o", str(stand_in) + ".gch"],
                              capture_output=True, text=True)
        return stand_in if done.returncode == 0 else HOST / "emulate.h"

    def _run(self, command: list[str], what: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(f"{what} failed:\n{done.stdout}{done.stderr}")

    def _compile(self, source: Path, emulated: bool) -> Path:
        obj = self.out / (source.parent.name + "_" + source.name + ".o")
        self._run([self.compiler, *self.flags(emulated), "-x", "c++", "-c", str(source), "-o", str(obj)],
                  f"compiling {source.relative_to(ROOT)}")
        return obj

    def _sources(self, name: str) -> tuple[list[Path], bool]:
        sources = PROGRAMS[name]
        paths = [HOST / f"{name}.cpp"]
        if sources is not None:
            paths += [HOST / "runtime.cpp"] + [ROOT / "csrc" / "cuda" / f"{s}.cu" for s in sources]
        return paths, sources is not None

    def _queue(self, source: Path, emulated: bool) -> Future:
        with self.lock:
            if source not in self.objects:
                self.objects[source] = self.pool.submit(self._compile, source, emulated)
            return self.objects[source]

    def start(self) -> None:
        """Queues the precompiled header, then every buildable program's sources, on the
        background thread, in program order."""
        self._emulate_header()
        for name in PROGRAMS:
            if self.buildable(name):
                paths, emulated = self._sources(name)
                for path in paths:
                    self._queue(path, emulated)

    def object(self, source: Path, emulated: bool) -> Path:
        """The compiled object of ``source``: compiled here if it is still waiting in the queue."""
        future = self._queue(source, emulated)
        if future.cancel():  # not started: take it over
            done: Future = Future()
            with self.lock:
                self.objects[source] = done
            try:
                done.set_result(self._compile(source, emulated))
            except BaseException as error:
                done.set_exception(error)
            future = done
        return future.result()

    def program(self, name: str) -> Path:
        paths, emulated = self._sources(name)
        objects = [self.object(path, emulated) for path in paths]
        exe = self.out / name
        self._run([self.compiler, *map(str, objects), "-o", str(exe)], f"linking {name}")
        return exe

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.out, ignore_errors=True)


_builder: Builder | None = None
_unavailable = ""


def builder() -> Builder | None:
    """The test run's one builder (None without a C++ compiler: ``unavailable()`` says why)."""
    global _builder, _unavailable
    if _builder is None and not _unavailable:
        compiler = shutil.which("c++") or shutil.which("g++")
        if compiler is None:
            _unavailable = "needs a C++ compiler"
        else:
            _builder = Builder(compiler, cuda_include())
    return _builder


def unavailable() -> str:
    return _unavailable


def close() -> None:
    global _builder
    if _builder is not None:
        _builder.close()
        _builder = None
