"""Which compiled backend runs an op: NumPy arrays go to ``fastnn._cpu``, CuPy arrays to
``fastnn._cuda`` (imported only when a CuPy array first arrives, so CPU-only installs never
touch CUDA)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from fastnn import _cpu

Array = Any  # numpy.ndarray, or cupy.ndarray where the CUDA backend is built


def is_cupy_array(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def backend_for(op: str, x: Any) -> ModuleType:
    """The extension module that runs ``op`` on arrays like ``x``."""
    if isinstance(x, np.ndarray):
        return _cpu
    if is_cupy_array(x):
        from fastnn import cuda

        return cuda.backend(op)
    # The CPU binding names the op and argument in its TypeError.
    return _cpu


#: Entry points that exist in one extension only. Every other function of ``fastnn._cpu`` and
#: ``fastnn._cuda`` is the same binding compiled for both backends (csrc/bindings/*.cpp), with the
#: same name, parameters, defaults and docstring; tests/test_cuda_contract.py holds them to it.
CPU_ONLY = frozenset({
    "get_num_threads", "set_num_threads",            # the OpenMP team of the CPU kernels
    "buffer_cache_info", "free_cached_buffers",      # NumPy outputs' memory (CuPy has its pool)
    "fma_peak_gflops",                                # the CPU peak the benchmarks divide by
    "_conv2d_plan",                                   # the CPU conv2d's method choice (tests)
})
CUDA_ONLY = frozenset({
    "probe_devices", "device_properties",             # what GPUs the driver sees
    "set_matmul_precision", "get_matmul_precision",   # TF32 tensor cores or exact float32
})
