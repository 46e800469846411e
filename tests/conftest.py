"""Shared test helpers.

Tolerances: kernels compute in float32 and are compared with the float64 reference by relative
Frobenius error ||out - ref|| / ||ref||. Elementwise ops are checked to 1e-5 (a few float32
ulps); reductions over K terms (GEMM, linear, sums over batch) accumulate rounding error that
grows like sqrt(K) * 2^-24, so they get FLOAT32_RTOL_REDUCTION = 1e-4, which still fails on any
indexing or blocking bug (those give errors of order 1).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers share the cores, so a kernel's OpenMP thread often waits for a sibling that the
    # OS has given to another worker; spinning there burns the time slice the sibling needs
    # (a 0.5 ms kernel took 8 ms on a loaded 2-core machine). Passive waiting sleeps instead.
    # Set before fastnn loads the OpenMP runtime, which reads it once.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The digits ship inside scikit-learn. fastnn reads its file without importing it, and so do the
# skip checks below (importing scikit-learn costs ~2 s in every test process that does).
HAS_DIGITS = importlib.util.find_spec("sklearn") is not None
DIGITS_SKIP_REASON = "the digits data ships inside scikit-learn (the 'digits' extra)"
NEEDS_DIGITS = pytest.mark.skipif(not HAS_DIGITS, reason=DIGITS_SKIP_REASON)


def require_digits() -> None:
    """Skips the calling test where scikit-learn (which ships the digits) is not installed."""
    if not HAS_DIGITS:
        pytest.skip(DIGITS_SKIP_REASON)


FLOAT32_RTOL = 1e-5
FLOAT32_RTOL_REDUCTION = 1e-4
FLOAT64_RTOL = 1e-12

# Odd sizes (tails past every blocking factor) and sizes past the micro-tile and cache blocks.
ODD_SIZES = [1, 3, 7, 17, 33, 65]


def rel_error(out, ref) -> float:
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference shape {ref.shape}"
    denom = np.linalg.norm(ref)
    diff = np.linalg.norm(out - ref)
    return float(diff if denom == 0 else diff / denom)


def assert_close(out, ref, rtol: float, what: str = "") -> None:
    err = rel_error(out, ref)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:.1g}"


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f at float64 x (every entry)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        plus = f(x)
        x[i] = old - eps
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_raises_naming(exc: type, call, words) -> None:
    """``call()`` raises ``exc`` whose message contains every one of ``words`` (the op or
    layer, the argument, the numbers)."""
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in the message: {info.value}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


SIMD_LEVELS = ["generic", "avx2", "avx512"]


def run_tests_at_simd_level(test_file: str, keyword: str, level: str) -> None:
    """Runs the tests of ``test_file`` matching ``keyword`` in a fresh process under
    FASTNN_SIMD=level (the level is fixed at first use in a process), so every SIMD path is
    tested on one machine; skips levels the CPU lacks, the level this process runs (tested
    in-process already), and itself when already inside such a run."""
    import fastnn

    if os.environ.get("FASTNN_TEST_EXPECT_SIMD"):
        pytest.skip("already inside a forced-level run")
    info = fastnn.build_info()
    detected = info["simd_detected"]
    if SIMD_LEVELS.index(level) > SIMD_LEVELS.index(detected):
        pytest.skip(f"this CPU lacks {level} (best level: {detected})")
    if level == info["simd"]:
        # The suite's own process runs this level: its test_core_* tests are this run already.
        pytest.skip(f"this process already runs the {level} path (its own test_core_* tests cover it)")
    env = dict(os.environ, FASTNN_SIMD=level, FASTNN_TEST_EXPECT_SIMD=level)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", test_file, "-q", "-x", "-k", keyword, "-p", "no:cacheprovider",
         "--numprocesses", "0"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"FASTNN_SIMD={level}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "pictures: the test's training runs draw curves.png and confusion.png")


@pytest.fixture(autouse=True)
def no_pictures_unless_marked(request, monkeypatch):
    """Training runs draw no curves.png / confusion.png unless the test is marked ``pictures``:
    matplotlib's two figures cost about a second of CPU per run, more than a short CLI run's
    training, and most tests look at other things. The run then behaves as without matplotlib
    (its note and report.json say the pictures were skipped)."""
    if request.node.get_closest_marker("pictures") is None:
        import fastnn.report

        monkeypatch.setattr(fastnn.report, "_pyplot", lambda: None)


def pytest_addoption(parser) -> None:
    """pyproject.toml's addopts ask pytest-xdist for a worker per core; where it is not installed
    (a bare ``pip install pytest``), its two options are accepted here and the tests run in
    this one process."""
    import importlib

    try:
        importlib.import_module("xdist")
    except ImportError:
        group = parser.getgroup("xdist stand-in")
        group.addoption("--numprocesses", dest="numprocesses", default=None,
                        help="ignored: pytest-xdist is not installed, so the tests run in one process")
        group.addoption("--dist", dest="dist", default="no", help="ignored: pytest-xdist is not installed")


def pytest_report_header(config) -> str | None:
    if config.getoption("numprocesses", None) and not config.pluginmanager.hasplugin("xdist"):
        return "pytest-xdist is not installed: the tests run in one process (the test extra installs it)"
    return None


def pytest_collection_finish(session) -> None:
    """Starts compiling the CUDA host programs in the background when a selected test runs them
    (tests/cuda_host_build.py says why). Under pytest-xdist every worker collects every test,
    so there the one worker given test_cuda_index_maps.py starts them at its first test."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.nodeid.split("::")[0].endswith("test_cuda_index_maps.py") for item in session.items):
        import cuda_host_build

        built = cuda_host_build.builder()
        if built is not None:
            built.start()


def pytest_sessionfinish(session) -> None:
    build = sys.modules.get("cuda_host_build")
    if build is not None:
        build.close()


@pytest.fixture
def restore_threads():
    """Puts fastnn's thread count back after a test that sets it."""
    import fastnn

    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)
