"""Concurrency and determinism: kernels called from several Python threads at once (they release
the GIL) give exactly their serial results, and two training runs with the same seed and thread
count end with bitwise-identical weights."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np

from fastnn import ops
from test_crash_safety import WORKER, _env


def _calls(seed: int) -> list:
    """One call of each spatial and dense kernel family on arrays of its own."""
    rng = np.random.default_rng(seed)

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x, w, dy = f(4, 6, 17, 15), f(8, 3, 3, 3), f(4, 8, 9, 8)
    xb, gamma, beta = f(16, 5, 9, 9), f(5), f(5)
    logits, labels = f(64, 10), rng.integers(0, 10, 64)
    bias, w_linear, b_linear = f(8), f(32, 10), f(32)  # drawn once: the calls must be repeatable
    return [
        lambda: ops.conv2d(x, w, bias, stride=2, padding=1, groups=2),
        lambda: ops.conv2d_backward(x, w, dy, stride=2, padding=1, groups=2),
        lambda: ops.max_pool2d(x, 3, 2, 1),
        lambda: ops.avg_pool2d(x, 2),
        lambda: ops.global_avg_pool2d(x),
        lambda: ops.batch_norm_train(xb, gamma, beta, None, None),
        lambda: ops.batch_norm_backward(xb, xb, gamma, gamma, np.abs(beta) + 0.5),
        lambda: ops.linear(logits, w_linear, b_linear),
        lambda: ops.softmax_cross_entropy(logits, labels, 0.1),
        lambda: ops.gelu(xb),
    ]


def _flatten(result) -> list:
    parts = result if isinstance(result, tuple) else (result,)
    return [np.asarray(p) for p in parts if p is not None]


def test_kernels_from_many_threads_match_serial_results():
    workers = 4
    calls = [_calls(seed) for seed in range(workers)]
    serial = [[_flatten(c()) for c in per_thread] for per_thread in calls]
    results: list = [None] * workers
    errors: list = []
    start = threading.Barrier(workers)

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):  # repeat so the threads' kernels overlap in time
                results[i] = [_flatten(c()) for c in calls[i]]
        except Exception as e:  # surfaced below; a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(workers):
        for k, (got, want) in enumerate(zip(results[i], serial[i])):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w, err_msg=f"thread {i}, call {k}")


def test_same_seed_and_threads_give_bitwise_identical_training(tmp_path):
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}.npz"
        subprocess.run([sys.executable, WORKER, "train", str(tmp_path / f"ck{run}.zip"), str(out)], check=True,
                       env=_env(), capture_output=True)
        outputs.append(np.load(out))
    first, second = outputs
    assert first.files == second.files
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
