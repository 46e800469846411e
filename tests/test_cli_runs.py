"""The command line's run options of issue 17: eval's saved data folder (item 2), Ctrl-C
(item 5), the validation split and honest set names (item 11), the step schedule and the
smaller items (item 12), --init-from (item 14), keep-best and early stopping (item 15).

Runs use the digits cut to 100 training / 40 test images and the MLP on one thread."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.cli import main

from cli_runs import one_line_error, report, small_digits_in
from conftest import NEEDS_DIGITS
from dataset_files import write_mnist

pytestmark = NEEDS_DIGITS

FAST = ["--model", "mlp", "--threads", "1"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    yield from small_digits_in(tmp_path, monkeypatch, 100, 40)


# Item 2 ----------------------------------------------------------------------------------------

def test_eval_uses_the_saved_data_folder_and_data_dir_overrides_it(in_tmp, capsys):
    write_mnist(in_tmp / "files", n_train=40, n_test=12)
    assert main(["train", *FAST, "--dataset", "mnist", "--data-dir", "files", "--epochs", "1", "--quiet",
                 "--out", "run"]) == 0
    assert main(["eval", "run/checkpoint.fastnn", "--threads", "1"]) == 0  # no --data-dir needed
    assert "mlp on mnist test set (12 images)" in capsys.readouterr().out
    assert main(["eval", "run/checkpoint.fastnn", "--data-dir", "elsewhere"]) == 1
    one_line_error(capsys, "elsewhere does not exist")
    write_mnist(in_tmp / "other", n_train=40, n_test=8)
    assert main(["eval", "run/checkpoint.fastnn", "--data-dir", "other", "--threads", "1"]) == 0
    assert "(8 images)" in capsys.readouterr().out


# Item 5 ----------------------------------------------------------------------------------------

def test_ctrl_c_before_any_epoch_says_nothing_was_saved(in_tmp, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastnn.train, "fit", interrupted)
    assert main(["train", *FAST, "--out", "run"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastnn: interrupted: no epoch had finished, so nothing was saved")
    assert "Traceback" not in err


def test_ctrl_c_after_the_last_epoch_says_how_to_write_the_report(in_tmp, capsys, monkeypatch):
    evaluate, calls = fastnn.train.evaluate, []

    def ctrl_c_at_the_final_score(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after each of the 2 epochs, then the final test score
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(fastnn.train, "evaluate", ctrl_c_at_the_final_score)
    assert main(["train", *FAST, "--epochs", "2", "--val-fraction", "0", "--quiet", "--out", "my run"]) == 130
    assert capsys.readouterr().err == (
        "fastnn: interrupted: all 2 epochs are saved in my run/checkpoint.fastnn, but the test score and report "
        "were not written; to write them: python -m fastnn train --resume 'my run/checkpoint.fastnn' --threads 1\n")


# Item 11 ---------------------------------------------------------------------------------------

def test_validation_split_scores_the_test_set_once(in_tmp, capsys, monkeypatch):
    scored = []
    evaluate = fastnn.train.evaluate
    monkeypatch.setattr(fastnn.train, "evaluate", lambda model, loader, *a, **k: (
        scored.append(len(loader.dataset)), evaluate(model, loader, *a, **k))[1])
    assert main(["train", *FAST, "--epochs", "3", "--val-fraction", "0.2", "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "(80 training / 20 validation / 40 test images of 1x8x8)" in out
    assert scored == [20, 20, 20, 40]  # the validation set after each epoch, the test set once
    assert "val_acc" in out and "test_acc" not in out and "kept epoch" in out
    r = report("run")
    assert r["evaluation"]["sets"] == {"train": 80, "validation": 20, "test": 40}
    assert r["evaluation"]["each_epoch"].startswith("validation set: 20 images held out")
    assert r["final"]["set"] == "test" and r["final"]["epoch"] == r["evaluation"]["kept_epoch"]
    assert all("val_accuracy" in e and "test_accuracy" not in e for e in r["epochs"])


def test_without_validation_split_the_columns_say_test(in_tmp, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--val-fraction", "0", "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "(100 training / 40 test images" in out and "test_acc" in out and "val_acc" not in out
    r = report("run")
    assert r["evaluation"]["each_epoch"].startswith("test set") and "test_accuracy" in r["epochs"][0]
    assert not Path("run/best.fastnn").exists()


def test_curves_name_the_evaluated_set(in_tmp, monkeypatch):
    labels = {}

    def record_labels(records, path, title, val_name="val", kept_epoch=None):
        labels.update(val_name=val_name, kept_epoch=kept_epoch)
        return False

    monkeypatch.setattr(fastnn.report, "plot_curves", record_labels)
    assert main(["train", *FAST, "--epochs", "2", "--quiet", "--out", "a"]) == 0
    assert labels == {"val_name": "val", "kept_epoch": report("a")["evaluation"]["kept_epoch"]}
    assert main(["train", *FAST, "--epochs", "2", "--quiet", "--val-fraction", "0", "--out", "b"]) == 0
    assert labels == {"val_name": "test", "kept_epoch": 2}
    assert fastnn.report.SET_LABELS == {"val": "validation", "test": "test"}


def test_split_errors_name_the_flag(in_tmp, capsys):
    assert main(["train", *FAST, "--val-fraction", "1"]) == 2
    one_line_error(capsys, "--val-fraction: must be >= 0 and < 1")
    assert main(["train", *FAST, "--val-fraction", "0.001"]) == 1
    one_line_error(capsys, "--val-fraction 0.001:", "nothing held out")


# Item 12 ---------------------------------------------------------------------------------------

def test_step_schedule_flags_and_words(in_tmp, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--schedule", "none", "--out", "a"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert ": 1 epoch, batch 64, sgd lr 0.05, constant learning rate, 1 thread" in first
    assert "none schedule" not in first and "1 epochs" not in first
    assert main(["train", *FAST, "--epochs", "4", "--schedule", "step", "--step-size", "1", "--gamma", "0.5",
                 "--val-fraction", "0", "--out", "b"]) == 0
    out = capsys.readouterr().out
    assert "4 epochs, batch 64, sgd lr 0.05, step schedule (x0.5 every 1 epoch), 1 thread" in out
    assert [e["lr"] for e in report("b")["epochs"]] == pytest.approx([0.025, 0.0125, 0.00625, 0.003125])
    assert main(["train", *FAST, "--epochs", "3", "--schedule", "step", "--quiet", "--out", "c"]) == 0
    assert min(e["lr"] for e in report("c")["epochs"]) == pytest.approx(0.005)  # one drop by default
    assert main(["train", *FAST, "--step-size", "2"]) == 1
    one_line_error(capsys, "--step-size applies to --schedule step only")
    assert main(["train", "--resume", "b/checkpoint.fastnn", "--gamma", "0.1"]) == 1
    one_line_error(capsys, "--gamma 0.1 differs from the resumed run's 0.5")


def test_run_files_follow_the_umask(in_tmp):
    old = os.umask(0o027)
    try:
        assert main(["train", *FAST, "--epochs", "1", "--quiet", "--out", "run"]) == 0
    finally:
        os.umask(old)
    for path in Path("run").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    fastnn.save("loose.fastnn", fastnn.nn.Linear(2, 2))
    assert stat.S_IMODE(Path("loose.fastnn").stat().st_mode) == 0o666 & ~old


def test_skipped_pictures_are_mentioned(in_tmp, capsys, monkeypatch):
    monkeypatch.setattr(fastnn.report, "_pyplot", lambda: None)  # as without matplotlib
    assert main(["train", *FAST, "--epochs", "1", "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "note: curves.png and confusion.png not drawn: matplotlib is not installed" in out
    assert report("run")["pictures_skipped"] == {"curves.png": "matplotlib is not installed",
                                                "confusion.png": "matplotlib is not installed"}
    assert {p.name for p in Path("run").iterdir()} == {"checkpoint.fastnn", "best.fastnn", "report.json"}


def test_download_urls_are_https_and_docs_point_at_shipped_files():
    import importlib

    mnist, cifar = importlib.import_module("fastnn.data.mnist"), importlib.import_module("fastnn.data.cifar")
    for url in (mnist.MNIST_BASE_URL, mnist.FASHION_MNIST_BASE_URL, cifar.CIFAR_BASE_URL):
        assert url.startswith("https://"), url
    root = Path(__file__).resolve().parents[1]
    if not (root / "docs").is_dir():
        pytest.skip("docs/ is not beside the tests (installed test suite)")
    for doc in [*(root / "docs").glob("*.md"), root / "README.md", root / "benchmarks" / "README.md"]:
        assert "DESIGN.md" not in doc.read_text(), doc


# Item 14 ---------------------------------------------------------------------------------------

def test_init_from(in_tmp, capsys):
    """Issue 17 item 14: --init-from trains a new run (new folder, fresh optimiser and schedule)
    from a checkpoint's weights; the model and data default to the checkpoint's."""
    write_mnist(in_tmp / "files", n_train=40, n_test=12)
    assert main(["train", *FAST, "--dataset", "mnist", "--data-dir", "files", "--epochs", "2", "--quiet",
                 "--out", "first"]) == 0
    first = fastnn.load("first/checkpoint.fastnn")
    assert main(["train", "--init-from", "first/checkpoint.fastnn", "--epochs", "1",
                 "--lr", "1e-9", "--schedule", "none", "--threads", "1", "--out", "second"]) == 0
    out = capsys.readouterr().out
    assert "training mlp" in out and "on mnist" in out  # model, dataset and folder from the checkpoint
    assert "starting from the weights of first/checkpoint.fastnn (epoch 2; optimiser state not kept)" in out
    second = fastnn.load("second/checkpoint.fastnn")
    for name, weights in first["model"].items():  # lr 1e-9: one epoch barely moves them
        np.testing.assert_allclose(second["model"][name], weights, atol=1e-6, err_msg=name)
    assert second["epoch"] == 1 and second["config"]["init_from"] == "first/checkpoint.fastnn"
    assert second["config"]["normalize_mean"] == first["config"]["normalize_mean"]
    r = report("second")
    assert r["init_from"] == {"checkpoint": "first/checkpoint.fastnn", "epoch": 2, "optimizer_state": "not kept"}

    help_text = " ".join(fastnn.cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "the optimiser state (momentum, Adam moments), the schedule and the epoch count start afresh" in help_text

    assert main(["train", "--init-from", "first/checkpoint.fastnn", "--model", "lenet5", "--threads", "1",
                 "--out", "third"]) == 1
    one_line_error(capsys, "--init-from first/checkpoint.fastnn: its weights do not fit --model lenet5")
    assert main(["train", "--init-from", "first/checkpoint.fastnn", "--dataset", "digits", "--threads", "1",
                 "--out", "fourth"]) == 1
    one_line_error(capsys, "--init-from first/checkpoint.fastnn: its model was trained on 28 image size")
    assert main(["train", "--resume", "first/checkpoint.fastnn", "--init-from", "first/checkpoint.fastnn"]) == 1
    one_line_error(capsys, "use one of them")
    assert main(["train", "--resume", "first/checkpoint.fastnn", "--epochs", "5"]) == 1
    one_line_error(capsys, "--init-from first/checkpoint.fastnn --epochs 5")


# Item 15 ---------------------------------------------------------------------------------------

def test_early_stop_keeps_the_best_epoch(in_tmp, capsys, monkeypatch):
    losses = iter([0.9, 0.5, 0.6, 0.7, 0.8, 0.9])
    evaluate = fastnn.train.evaluate

    def scripted(model, loader, *args, **kwargs):
        result = evaluate(model, loader, *args, **kwargs)
        return dict(result, loss=next(losses)) if len(loader.dataset) == 10 else result

    monkeypatch.setattr(fastnn.train, "evaluate", scripted)
    assert main(["train", *FAST, "--epochs", "6", "--early-stop", "2", "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "early stop: val_loss has not improved for 2 epochs (best: epoch 2)" in out
    assert "stopped early after epoch 4; kept epoch 2 of 4 (best val_loss 0.5000), saved as best.fastnn" in out
    r = report("run")
    assert r["evaluation"]["kept_epoch"] == 2 and r["evaluation"]["stopped_early"]
    assert r["evaluation"]["kept_by"] == "best val_loss" and r["final"]["epoch"] == 2
    assert fastnn.load("run/best.fastnn")["epoch"] == 2 and fastnn.load("run/checkpoint.fastnn")["epoch"] == 4
    # The test score is the kept epoch's: eval of best.fastnn agrees.
    assert main(["eval", "run/best.fastnn", "--threads", "1", "--json", "best.json"]) == 0
    assert json.loads(Path("best.json").read_text())["accuracy"] == pytest.approx(r["final"]["test_accuracy"])


def test_monitor_val_acc_and_flag_errors(in_tmp, capsys):
    assert main(["train", *FAST, "--epochs", "2", "--monitor", "val_acc", "--quiet", "--out", "run"]) == 0
    r = report("run")
    accuracies = [e["val_accuracy"] for e in r["epochs"]]
    assert r["evaluation"]["kept_by"] == "best val_accuracy"
    assert r["evaluation"]["kept_epoch"] == 1 + accuracies.index(max(accuracies))
    assert main(["train", *FAST, "--early-stop", "3", "--val-fraction", "0"]) == 1
    one_line_error(capsys, "--early-stop needs a validation set (--val-fraction > 0)")
    assert main(["train", *FAST, "--monitor", "val_f1"]) == 2
    one_line_error(capsys, "--monitor: invalid choice")
