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
