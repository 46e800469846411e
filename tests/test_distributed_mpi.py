"""fastnn.distributed across 2 ranks, launched with mpiexec from the test (skipped, with the reason,
where mpi4py or mpiexec is missing; CI installs them with the test extra). Launches are few (each
starts an interpreter per rank): tests/mpi/training_checks.py runs every multi-rank training check
in one. Every launch has a timeout, so a hang fails the test instead of blocking the suite."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = str(Path(fastnn.__file__).resolve().parents[1])
SCRIPTS = Path(__file__).resolve().parent / "mpi"


def _mpiexec() -> str | None:
    # The MPICH wheels put mpiexec next to the interpreter; a system MPI has it on PATH.
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec (pip install '.[mpi]')")


def _launch(ranks: int, args: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           # Containers: MPICH starts local ranks by fork, not ssh; Open MPI refuses root and
           # more ranks than cores unless told. Each is ignored by the other MPI.
           "HYDRA_LAUNCHER": "fork", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("mpi")
    done = _launch(2, [str(SCRIPTS / "training_checks.py"), str(work / "out.json"), str(work)], timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((work / "out.json").read_text())


@pytest.mark.parametrize("run", ["mlp_sgd", "cnn_syncbn_sgd", "mlp_adam"])
def test_two_ranks_of_32_train_like_one_process_of_64(checks, run):
    result = checks["equivalence"][run]
    # 20 steps on the same data order. The gradients differ only in float32 summation order (the
    # two halves summed separately, then averaged, vs one sum of 64 rows: ~1e-7 relative each
    # step), and 20 steps of training amplify that modestly; 1e-5 of the weights' norm is two
    # orders above what the runs show and far below the distance training moved the weights.
    assert result["relative_difference"] < 1e-5
    assert result["moved"] > 1e-2


@pytest.mark.parametrize("run", ["mlp_sgd", "cnn_syncbn_sgd", "mlp_adam"])
def test_ranks_stay_bitwise_identical(checks, run):
    assert checks["equivalence"][run]["ranks_identical"]


def test_a_loss_with_class_centres_trains_across_ranks_like_one_process(checks):
    # ArcFace through fit: 20 steps; the same float32 summation-order argument and bound as the
    # models above.
    assert checks["arcface"]["relative_difference"] < 1e-5
    assert checks["arcface"]["ranks_identical"]


def test_gradient_buckets_start_during_the_backward(checks):
    # bucket_mb=0.002 (2 KiB) gives two buckets for each model; both are Sequentials, whose hooks
    # report every layer, so every bucket starts before the model's backward returns.
    for model in ("mlp", "cnn"):
        assert checks["buckets"][model] >= 2
        assert checks["early_buckets"][model] == checks["buckets"][model]


def test_sync_batchnorm_over_two_ranks_matches_the_whole_batch_reference(checks):
    # Statistics reduced in float64; the float32 normalisation and gradients stay within ~1e-7
    # relative of the float64 reference of the whole (concatenated) batch; 1e-5 is the float32
    # kernels' usual bound.
    assert max(checks["sync_batchnorm"].values()) < 1e-5


def test_distributed_resume_gives_the_unbroken_runs_weights(checks):
    assert checks["resume"]["same_as_unbroken"] == [True, True]  # bitwise, on both ranks


def test_sharded_evaluation_scores_every_image_once_with_the_same_numbers_everywhere(checks):
    ev = checks["sharded_evaluation"]
    assert ev["images"] == ev["whole_images"] == 101
    assert ev["same_on_every_rank"] and ev["confusion_equal"]
    assert ev["loss_difference"] < 1e-6  # the same per-image losses, summed in another order


@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_rank_ends_the_whole_job(mode):
    # A job left hanging would overrun the launch's timeout, which fails the test.
    done = _launch(2, [str(SCRIPTS / "failing_rank.py"), mode], timeout=60)
    assert done.returncode != 0
    assert "rank 0 passed the barrier" not in done.stdout
    if mode == "raise":
        assert "ValueError: rank one failed on purpose" in done.stderr
        assert "rank 1 of 2 failed; aborting the job (MPI_Abort)" in done.stderr


def _test_accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "report.json").read_text())["final"]["test_accuracy"]


def test_cli_distributed_run_matches_the_single_process_run(tmp_path):
    # Without augmentation the two runs see the same global batches, so they train alike (each
    # rank's augmentation draws would differ from the single process's). The MLP: what is under
    # test is the CLI's distribution (sharding, gradient averaging, rank 0's outputs, resume),
    # which is the same for every model, and it trains the four runs in a fraction of the
    # default CNN's time (the CNN's multi-rank training is checked in tests/mpi/training_checks.py).
    common = ["-m", "fastnn", "train", "--model", "mlp", "--epochs", "2", "--no-augment", "--threads", "1"]
    single = subprocess.run([sys.executable, *common, "--out", "single"], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": PACKAGE_ROOT})
    assert single.returncode == 0, single.stderr
    done = _launch(2, [*common, "--distributed", "--out", "dist"], timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "single"]  # one run folder
    assert done.stdout.count("test accuracy") == 1  # rank 0 alone prints
    assert "2 ranks (global batch 64, 32 per rank)" in done.stdout
    report = json.loads((tmp_path / "dist" / "report.json").read_text())
    assert report["config"]["world_size"] == 2
    assert abs(_test_accuracy(tmp_path / "dist") - _test_accuracy(tmp_path / "single")) <= 0.01

    # The same distributed run, interrupted after epoch 1 (every rank, as mpiexec forwards Ctrl-C),
    # then resumed with --resume --distributed: every rank restores the same state, so it ends
    # bitwise where the unbroken run ended.
    done = _launch(2, [str(SCRIPTS / "cli_interrupted.py"), *common[3:]], timeout=180, cwd=tmp_path)
    assert done.returncode == 130, done.stdout + done.stderr
    assert ("fastnn: interrupted: epoch 1 of 2 is saved in broken/checkpoint.fastnn; to continue: mpiexec -n 2 "
            "python -m fastnn train --resume broken/checkpoint.fastnn") in done.stderr
    done = _launch(2, ["-m", "fastnn", "train", "--resume", "broken/checkpoint.fastnn", "--distributed", "--threads",
                       "1"], timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    unbroken, resumed = fastnn.load(tmp_path / "dist" / "checkpoint.fastnn"), fastnn.load(
        tmp_path / "broken" / "checkpoint.fastnn")
    assert resumed["epoch"] == unbroken["epoch"] == 2
    for name, weights in unbroken["model"].items():
        np.testing.assert_array_equal(resumed["model"][name], weights, err_msg=name)


def test_cli_distributed_error_on_every_rank_ends_the_job_with_its_message(tmp_path):
    done = _launch(2, ["-m", "fastnn", "train", "--distributed", "--batch-size", "63", "--epochs", "1"], timeout=60,
                   cwd=tmp_path)
    assert done.returncode != 0
    assert "fastnn: error: --batch-size 63 is the global batch: it must divide evenly over the 2 ranks" in done.stderr


def test_info_names_the_mpi_library_and_the_world_size():
    done = _launch(2, ["-m", "fastnn", "info"], timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("MPI:")]
    assert len(rows) == 2  # both ranks print; each names the library and the job's world size
    assert all("mpi4py" in row and row.endswith("world size 2") for row in rows)
