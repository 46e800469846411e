"""The CPU output buffer cache (csrc/bindings/buffer_cache.h): outputs of at least 64 KiB reuse the
memory of freed outputs of the same size. It must never change a result, never hand out memory
that an array (or a view of one) still uses, and stay within its cap."""

from __future__ import annotations

import pickle
import threading

import numpy as np

import fastnn
from fastnn import _cpu, ops

SHAPE = (8, 16, 16, 16)  # 128 KiB of float32: cached


def test_freed_outputs_are_reused_and_results_unchanged(rng):
    x = rng.standard_normal(SHAPE).astype(np.float32)
    expected = np.maximum(x, 0)
    fastnn.free_cached_buffers()
    first = ops.relu(-x)  # its buffer, once freed, holds -x's ReLU: stale data to overwrite
    del first
    info = _cpu.buffer_cache_info()
    assert info["cached_buffers"] == 1 and info["cached_bytes"] == x.nbytes
    y = ops.relu(x)
    assert _cpu.buffer_cache_info()["hits"] == info["hits"] + 1
    np.testing.assert_array_equal(y, expected)
    assert y.flags.c_contiguous and y.flags.writeable and y.ctypes.data % 64 == 0


def test_memory_of_a_live_view_is_not_reused(rng):
    x = rng.standard_normal(SHAPE).astype(np.float32)
    view = ops.relu(x)[1:3]
    kept = view.copy()
    others = [ops.relu(-x) for _ in range(3)]  # same size: would take the view's memory if freed
    np.testing.assert_array_equal(view, kept)
    assert all(not np.shares_memory(view, o) for o in others)


def test_small_outputs_bypass_the_cache(rng):
    fastnn.free_cached_buffers()
    before = _cpu.buffer_cache_info()
    y = ops.relu(rng.standard_normal((3, 5)).astype(np.float32))
    del y
    after = _cpu.buffer_cache_info()
    assert (after["hits"], after["misses"], after["cached_buffers"]) == (before["hits"], before["misses"], 0)


def test_cache_stays_within_its_cap_evicting_the_oldest_and_can_be_emptied():
    fastnn.free_cached_buffers()
    cap = _cpu.buffer_cache_info()["cap_bytes"]
    # Outputs of just over half the cap, of two sizes (the inputs are calloc'd zeros: only the
    # outputs touch their pages).
    older, newer = (np.zeros(cap // 2 // 4 + extra, np.float32) for extra in (1, 2))
    first, second = ops.relu(older), ops.relu(newer)
    del first
    del second  # given back last: only one fits, so it evicts the first
    info = _cpu.buffer_cache_info()
    assert info["cached_buffers"] == 1 and info["cached_bytes"] == newer.nbytes <= cap
    y = ops.relu(newer)
    assert _cpu.buffer_cache_info()["hits"] == info["hits"] + 1
    del y
    fastnn.free_cached_buffers()
    assert _cpu.buffer_cache_info()["cached_bytes"] == 0


def test_cached_outputs_behave_like_numpy_arrays(rng):
    y = ops.relu(rng.standard_normal(SHAPE).astype(np.float32))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(y)), y)
    y += 1.0  # writeable in place
    assert (y >= 1.0).all()


def test_threads_allocating_and_freeing_at_once_get_their_own_results(rng):
    inputs = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(4)]
    failures = []

    def work(x):
        for _ in range(50):
            if not np.array_equal(ops.relu(x), np.maximum(x, 0)):
                failures.append(True)

    threads = [threading.Thread(target=work, args=(x,)) for x in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
