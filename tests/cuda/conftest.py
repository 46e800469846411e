"""tests/cuda runs only where the CUDA backend can run: fastnn._cuda built, a GPU with its
driver, and CuPy. Anywhere else every module here skips itself at collection (skip_without_gpu),
with the reason printed in pytest's summary (e.g. "no NVIDIA driver found ...").

Test modules here import helpers with ``from conftest import ...``, which resolves to this file
(pytest names every conftest module "conftest"), so it re-exports tests/conftest.py's helpers
(rel_error, assert_close, tolerances, ODD_SIZES). Shape grids and builders shared with the CPU
tests come from tests/opinfo.py, the op registry (whose cuda variant, tests/test_ops.py, checks
every op on the GPU); no GPU test imports another test module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import fastnn.cuda

_reason = fastnn.cuda.unavailable_reason()
SKIP_REASON = None if _reason is None else f"GPU tests need fastnn's CUDA backend, a GPU and CuPy: {_reason}"


def skip_without_gpu() -> None:
    """Skips the calling test module (first thing it does, before importing CuPy) where the
    GPU tests cannot run. The skip lives in the modules, not here: a module-level skip in a
    conftest is an error when pytest is pointed at this directory itself."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON, allow_module_level=True)


import numpy as np  # noqa: E402

if SKIP_REASON is None:
    import cupy

_spec = importlib.util.spec_from_file_location("fastnn_tests_common", Path(__file__).parent.parent / "conftest.py")
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
globals().update({k: v for k, v in vars(_common).items() if not k.startswith("_") and k != "rng"})


def to_gpu(*arrays):
    """CuPy copies of NumPy arrays (None stays None)."""
    out = tuple(None if a is None else cupy.asarray(a) for a in arrays)
    return out if len(out) > 1 else out[0]


def to_cpu(x):
    """A NumPy copy of a CuPy array (anything else unchanged)."""
    return cupy.asnumpy(x) if isinstance(x, cupy.ndarray) else x


def assert_gpu_matches(gpu, cpu, ref, rtol: float, what: str) -> None:
    """The GPU result is within rtol of the float64 reference, as the CPU kernel is, and so
    within 2 * rtol of the CPU kernel's result."""
    gpu = to_cpu(gpu)
    assert isinstance(gpu, np.ndarray) and gpu.dtype == np.asarray(cpu).dtype, what
    _common.assert_close(gpu, ref, rtol, f"{what} (GPU vs reference)")
    _common.assert_close(gpu, cpu, 2 * rtol, f"{what} (GPU vs CPU)")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _synchronize_after_each_test():
    # An asynchronous kernel fault surfaces in the test that caused it, not the next one.
    yield
    if SKIP_REASON is None:
        cupy.cuda.get_current_stream().synchronize()
