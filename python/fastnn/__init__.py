"""fastnn: train image classifiers on hand-written C++ (and CUDA) kernels.

    import fastnn
    from fastnn import nn, optim

Subpackages: :mod:`fastnn.ops` (one function per kernel), :mod:`fastnn.reference` (the same
ops in NumPy float64: the spec), :mod:`fastnn.nn` (layers and losses), :mod:`fastnn.optim`
(optimisers and :mod:`fastnn.optim.lr` schedules), :mod:`fastnn.data` (datasets, DataLoader,
transforms), :mod:`fastnn.models` (model builders), :mod:`fastnn.metrics`, :mod:`fastnn.train`
(fit / evaluate), :mod:`fastnn.recipes` (datasets, models and optimisers by name),
:mod:`fastnn.report`, :mod:`fastnn.bench` (micro-benchmarks), :mod:`fastnn.cuda` (the GPU
backend: CuPy arrays run on it; ``model.to("cuda")`` moves a model there); ``fastnn.save`` /
``fastnn.load`` / ``fastnn.restore`` for checkpoints; ``python -m fastnn`` is the command line.

``import fastnn`` loads the core (ops, nn, optim, cuda, checkpoints, gradcheck); the other
subpackages load on first use (``fastnn.models``, ``fastnn.data``...: a module ``__getattr__``),
which keeps the import fast. ``import fastnn.models`` and ``from fastnn import models`` work as
usual. The command line (``fastnn.cli``) is never imported by ``import fastnn``.
"""

__version__ = "0.1.0"

import importlib as _importlib
import os as _os
import warnings as _warnings
from types import ModuleType as _ModuleType

from fastnn import _cpu
from fastnn import cuda, nn, ops, optim
from fastnn.checkpoint import CheckpointError, load, restore, save
from fastnn.cuda import get_matmul_precision, set_matmul_precision
from fastnn.gradcheck import GradcheckError, gradcheck
from fastnn.random import get_rng_state, manual_seed, set_rng_state

_SIMD_CHOICES = ("generic", "avx2", "avx512")
if _os.environ.get("FASTNN_SIMD", "") not in ("",) + _SIMD_CHOICES:
    _warnings.warn(
        f"FASTNN_SIMD={_os.environ['FASTNN_SIMD']!r} is not one of {_SIMD_CHOICES}; using the best path the CPU has",
        RuntimeWarning,
        stacklevel=2,
    )


# Public subpackages loaded on first attribute access (see the module docstring).
_LAZY_SUBMODULES = ("bench", "data", "metrics", "models", "onnx", "recipes", "reference", "report", "tasks", "train",
                    "distributed")


def __getattr__(name: str) -> _ModuleType:
    """Loads a public subpackage on first use: ``fastnn.models`` and the like."""
    if name in _LAZY_SUBMODULES:
        module = _importlib.import_module(f"fastnn.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


def get_num_threads() -> int:
    """Threads the CPU kernels use (default: OMP_NUM_THREADS, else the number of cores)."""
    return _cpu.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads every CPU kernel uses from now on, process-wide (n >= 1)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"fastnn.set_num_threads: argument 'n' must be an int; got {type(n).__name__}")
    _cpu.set_num_threads(n)


def free_cached_buffers() -> None:
    """Returns to the system the memory of freed CPU output arrays that fastnn keeps for reuse.

    Outputs of 64 KiB and more take their memory from a cache of buffers that earlier outputs
    of the same size gave back (at most 256 MiB), so a training step does not page-fault fresh
    memory in; call this after training to release it. Arrays in use are unaffected."""
    _cpu.free_cached_buffers()


def build_info() -> dict:
    """How fastnn was built and which kernels it runs: compiler, OpenMP version, detected and
    active SIMD level (FASTNN_SIMD caps it), GEMM micro-kernel names, the precision the CPU's
    matrix products use under the current :func:`set_matmul_precision` setting and under
    "medium", and why (:func:`fastnn.cuda.cpu_matmul_precision`), and under ``"cuda"`` the GPU backend's facts
    (:func:`fastnn.cuda.info`: built or not, architectures, GPUs)."""
    info = dict(_cpu.build_info())
    info["version"] = __version__
    info["threads"] = get_num_threads()
    info["cpu_matmul_precision"] = cuda.cpu_matmul_precision()
    info["cpu_matmul_precision_medium"] = cuda.cpu_matmul_precision("medium")
    info["cuda"] = cuda.info()
    return info


__all__ = [
    "CheckpointError",
    "GradcheckError",
    "__version__",
    "bench",
    "build_info",
    "cuda",
    "data",
    "distributed",
    "free_cached_buffers",
    "get_matmul_precision",
    "get_num_threads",
    "get_rng_state",
    "gradcheck",
    "load",
    "manual_seed",
    "metrics",
    "models",
    "nn",
    "onnx",
    "ops",
    "optim",
    "recipes",
    "reference",
    "report",
    "restore",
    "save",
    "set_matmul_precision",
    "set_num_threads",
    "set_rng_state",
    "tasks",
    "train",
]
