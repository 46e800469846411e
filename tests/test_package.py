"""Package-level API: version, threads, build info, what `import fastnn` pulls in."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import ops


def test_version_and_build_info():
    assert isinstance(fastnn.__version__, str) and fastnn.__version__.count(".") == 2
    info = fastnn.build_info()
    assert info["simd"] in ("generic", "avx2", "avx512")
    assert info["threads"] == fastnn.get_num_threads()


def test_set_num_threads_round_trip():
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        fastnn.set_num_threads(3)
        assert fastnn.get_num_threads() == 3
    finally:
        fastnn.set_num_threads(old)
    with pytest.raises(ValueError, match="must be >= 1"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError):
        fastnn.set_num_threads(1.5)


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 100)).astype(np.float32)
    labels = rng.integers(0, 100, 300)
    old = fastnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 4):
            fastnn.set_num_threads(n)
            prod = ops.matmul(a, b)
            results.append((prod, ops.linear_backward(a, b.T.copy(), prod)[1], ops.softmax_cross_entropy(prod, labels)))
    finally:
        fastnn.set_num_threads(old)
    for prod, dw, (loss, grad) in results[1:]:
        np.testing.assert_array_equal(prod, results[0][0])
        np.testing.assert_array_equal(dw, results[0][1])
        assert loss == results[0][2][0]
        np.testing.assert_array_equal(grad, results[0][2][1])


def test_kernels_release_the_gil_and_are_thread_safe():
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((256, 256)).astype(np.float32) for _ in range(4)]
    serial = [ops.matmul(x, x) for x in inputs]
    out = [None] * 4

    def work(i):
        for _ in range(5):
            out[i] = ops.matmul(inputs[i], inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(out, serial):
        np.testing.assert_array_equal(got, want)


def test_import_pulls_in_numpy_only():
    code = (
        "import sys, fastnn; "
        "heavy = [m for m in ('torch', 'tqdm', 'matplotlib', 'sklearn', 'cupy', 'scipy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import fastnn imported {out.stdout.strip()}"
