"""benchmarks/bench_cifar.py's seed summary, its float64 twins and its argument checks (the
training itself needs the CIFAR-10 files and minutes: it is a benchmark, not a test)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
import bench_cifar  # noqa: E402


def _row(seed, fastnn, torch, loss_fastnn=(1.0, 1.0), loss_torch=(1.0, 1.0)):
    return {"model": "resnet20", "seed": seed, "test_accuracy_per_epoch": {"fastnn": fastnn, "torch": torch},
            "train_loss": {"fastnn": list(loss_fastnn), "torch": list(loss_torch)}}


def test_seed_summary_pairs_the_same_seeds_runs():
    rows = [_row(0, [0.50, 0.60], [0.40, 0.60], (2.0, 1.5), (1.9, 1.5)),
            _row(1, [0.30, 0.70], [0.30, 0.50], (2.1, 1.4), (2.0, 1.2))]
    s = bench_cifar.seed_summary(rows)
    assert s["seeds"] == [0, 1]
    # Epoch 1: fastnn 0.5, 0.3 -> mean 0.4, sample std sqrt(0.02); torch 0.4, 0.3 -> 0.35,
    # sqrt(0.005); differences 0.1, 0.0 -> mean 0.05, std sqrt(0.005), t = 0.05 / (std / sqrt(2)) = 1.
    assert s["fastnn"][0] == pytest.approx((0.4, math.sqrt(0.02)))
    assert s["torch"][0] == pytest.approx((0.35, math.sqrt(0.005)))
    assert s["difference"][0] == pytest.approx((0.05, math.sqrt(0.005)))
    assert s["paired_t"][0] == pytest.approx(1.0)
    # Epoch 2: differences 0.0, 0.2 -> mean 0.1, std sqrt(0.02), t = 0.1 / 0.1 = 1.
    assert s["difference"][1] == pytest.approx((0.1, math.sqrt(0.02)))
    assert s["paired_t"][1] == pytest.approx(1.0)
    # Training loss, epoch 1: differences 0.1, 0.1 (no spread, no t); epoch 2: 0.0, 0.2 as above.
    assert s["train_loss_difference"][0] == pytest.approx((0.1, 0.0), abs=1e-12)
    assert s["train_loss_paired_t"][0] is None
    assert s["train_loss_difference"][1] == pytest.approx((0.1, math.sqrt(0.02)))
    assert s["train_loss_paired_t"][1] == pytest.approx(1.0)


def test_seed_summary_has_no_t_where_the_differences_do_not_vary():
    s = bench_cifar.seed_summary([_row(0, [0.5], [0.4]), _row(1, [0.6], [0.5])])
    assert s["difference"][0] == pytest.approx((0.1, 0.0))
    assert s["paired_t"] == [None]


def test_float64_twins_compute_the_same_resnet_step():
    """twins(..., "float64") converts every fastnn parameter and running statistic and the
    PyTorch twin alike: a training-mode forward (which updates the running statistics) and an
    eval-mode one then agree with PyTorch's to float64 rounding. Tolerance 1e-10 relative: 20
    layers of float64 sums in different orders stay near 1e-14, while a float32 leftover
    anywhere would show at ~1e-7."""
    torch = pytest.importorskip("torch")
    model, twin = bench_cifar.twins("resnet20", seed=3, dtype="float64")
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    assert all(b.dtype == np.float64 for _, b in model.named_buffers() if b.dtype.kind == "f")
    assert all(p.dtype == torch.float64 for p in twin.parameters())
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8))
    for train in (True, False):
        model.train(train)
        twin.train(train)
        ours = np.asarray(model(x))
        with torch.no_grad():
            theirs = twin(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10 * np.abs(theirs).max())
    stats = np.concatenate([np.ravel(b) for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))])
    twin_stats = np.concatenate([b.numpy().ravel() for n, b in twin.named_buffers()
                                 if n.endswith(("running_mean", "running_var"))])
    np.testing.assert_allclose(stats, twin_stats, rtol=1e-10, atol=1e-12)


def test_bad_seed_count_is_refused_and_missing_data_skips(tmp_path):
    script = os.path.join(BENCHMARKS, "bench_cifar.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.join(BENCHMARKS, "..", "python"),
                                                                     os.environ.get("PYTHONPATH")]))}
    bad = subprocess.run([sys.executable, script, "--seeds", "0", "--data", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "argument --seeds: must be >= 1; got 0" in bad.stderr
    skipped = subprocess.run([sys.executable, script, "--data", str(tmp_path)], capture_output=True, text=True, env=env)
    assert skipped.returncode == 0 and skipped.stdout.startswith("bench_cifar: skipped: CIFAR-10 files not found")


def test_segments_cover_every_batch_once_in_order():
    batches = [np.array([i]) for i in range(23)]
    for size, lengths in ((10, [10, 10, 3]), (23, [23]), (50, [23]), (1, [1] * 23), (0, [23])):
        runs = bench_cifar.segments(batches, size)
        assert [len(r) for r in runs] == lengths
        assert [int(b[0]) for r in runs for b in r] == list(range(23))


def test_negative_segment_length_is_refused(tmp_path):
    script = os.path.join(BENCHMARKS, "bench_cifar.py")
    bad = subprocess.run([sys.executable, script, "--segment-batches", "-1", "--data", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "argument --segment-batches: must be >= 0; got -1" in bad.stderr
