"""fastnn.bench (what `python -m fastnn bench` runs) works from the package alone and reports
every case; timings themselves are never asserted (machines here are shared and noisy)."""

from __future__ import annotations

import json

from fastnn import bench


def test_bench_main_reports_each_case_as_json(capsys):
    assert bench.main(["--quick", "--rounds", "1", "--seconds", "0.001", "--filter", "128x256x10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fma_peak_gflops"] > 0
    assert [r["case"] for r in report["results"]] == ["matmul 128x256x10"]
    assert report["results"][0]["ms"] > 0 and report["results"][0]["fraction_of_peak"] > 0


def test_bench_main_prints_a_table(capsys):
    assert bench.main(["--quick", "--rounds", "1", "--seconds", "0.001", "--filter", "softmax"]) == 0
    out = capsys.readouterr().out
    assert "measured FMA peak" in out and "softmax-xent fwd+bwd 128x10" in out


def test_bench_covers_the_conv_layers_and_cnn_training_steps(capsys):
    """Issue 17 item 17: the convolutions and the LeNet-5 and 4-conv CNN training steps are
    benchmarked, with FLOP counts (so a fraction of peak), in the quick set too."""
    names = [c.name for c in bench.default_cases(quick=True)]
    assert any(n.startswith("conv2d fwd+bwd 128x32x28x28 -> 32@3x3") for n in names)
    assert "lenet5 step 1x28x28 batch 128" in names and "simple_cnn step 1x28x28 batch 128" in names
    full = {c.name: c for c in bench.default_cases()}
    assert "conv2d fwd+bwd 128x6x14x14 -> 16@5x5" in full
    # 2 x multiply-adds x 3 (forward, dx, dweight): 128 images of 10x10 outputs, 16 channels, 6x5x5 taps
    assert full["conv2d fwd+bwd 128x6x14x14 -> 16@5x5"].flops == 6.0 * 128 * 16 * 100 * 150
    # LeNet-5 on 28x28: conv1 (padded) 6@28x28x25, conv2 16@10x10x150, 400-120, 120-84, 84-10
    forward = 2.0 * 128 * (6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    assert full["lenet5 step 1x28x28 batch 128"].flops == 3 * forward
    assert bench.main(["--quick", "--rounds", "1", "--seconds", "0.001", "--filter", "lenet5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["case"] for r in report["results"]] == ["lenet5 step 1x28x28 batch 128"]
    assert report["results"][0]["gflops"] > 0
