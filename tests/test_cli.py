"""The command line end to end on the bundled digits (the MLP: few epochs, one thread, so the
tests stay fast), resuming an interrupted run, eval, info, bench, and the one-line errors."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import recipes
from fastnn.cli import main

from conftest import NEEDS_DIGITS
from dataset_files import http_root, small_cifar10, write_mnist  # noqa: F401 (fixture)

pytestmark = NEEDS_DIGITS

FAST = ["--model", "mlp", "--threads", "1"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    threads = fastnn.get_num_threads()
    yield tmp_path
    fastnn.set_num_threads(threads)  # --threads changes the process-wide setting


def one_line_error(capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: "), captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.pictures
def test_train_writes_a_run_folder(in_tmp, capsys):
    assert main(["train", *FAST, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "top-3" in out and "confusion matrix" in out
    run_dir = Path(out.strip().splitlines()[-1].split()[2])
    assert run_dir.parent == Path("runs") and run_dir.name.startswith("digits-mlp-")
    expected = {"checkpoint.fastnn", "best.fastnn", "report.json"}
    if importlib.util.find_spec("matplotlib"):
        expected |= {"curves.png", "confusion.png"}
    assert {p.name for p in run_dir.iterdir()} == expected
    report = json.loads((run_dir / "report.json").read_text())
    assert report["config"]["model"] == "mlp" and report["config"]["threads"] == 1
    assert [r["epoch"] for r in report["epochs"]] == [1, 2, 3]
    # A 256-unit MLP passes 90% on the digits within 3 epochs (about 94% here).
    assert report["final"]["test_accuracy"] > 0.85
    confusion = np.array(report["final"]["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == report["final"]["test_images"]
    assert len(report["final"]["per_class"]["f1"]) == 10
    assert report["build"]["simd"] and report["timing"]["total_seconds"] > 0

    assert main(["eval", str(run_dir / "checkpoint.fastnn"), "--json", "eval.json"]) == 0
    out = capsys.readouterr().out
    accuracy = json.loads(Path("eval.json").read_text())["accuracy"]
    assert accuracy == pytest.approx(report["final"]["test_accuracy"])
    assert f"accuracy {100 * accuracy:.2f}%" in out and "confusion matrix" in out


def test_interrupted_run_resumes_exactly(in_tmp, capsys, monkeypatch):
    assert main(["train", *FAST, "--epochs", "3", "--augment", "--out", "straight", "--quiet"]) == 0
    assert capsys.readouterr().out == ""

    original_fit = fastnn.train.fit

    def ctrl_c_after_first_epoch(epoch, record):
        if epoch == 1:  # callbacks run after the epoch's checkpoint is written
            raise KeyboardInterrupt

    def interrupted_fit(*args, **kwargs):
        return original_fit(*args, callbacks=[ctrl_c_after_first_epoch], **kwargs)

    monkeypatch.setattr(fastnn.train, "fit", interrupted_fit)
    assert main(["train", *FAST, "--epochs", "3", "--augment", "--out", "broken", "--quiet"]) == 130
    err = capsys.readouterr().err  # issue 17 item 5: what was saved and the command that goes on
    assert err == ("fastnn: interrupted: epoch 1 of 3 is saved in broken/checkpoint.fastnn; to continue: "
                   "python -m fastnn train --resume broken/checkpoint.fastnn --threads 1\n")
    assert fastnn.load("broken/checkpoint.fastnn")["epoch"] == 1
    monkeypatch.setattr(fastnn.train, "fit", original_fit)

    assert main(["train", "--resume", "broken/checkpoint.fastnn", "--threads", "1"]) == 0
    assert "resuming mlp" in capsys.readouterr().out
    straight, resumed = fastnn.load("straight/checkpoint.fastnn"), fastnn.load("broken/checkpoint.fastnn")
    assert resumed["epoch"] == 3
    for name, weights in straight["model"].items():
        np.testing.assert_array_equal(resumed["model"][name], weights, err_msg=name)
    report = json.loads(Path("broken/report.json").read_text())
    assert report["resumed_from"] and len(report["epochs"]) == 3

    assert main(["train", "--resume", "broken/checkpoint.fastnn", "--model", "lenet5"]) == 1
    one_line_error(capsys, "--model lenet5 differs")


@pytest.mark.parametrize("argv, code, fragment", [
    (["train", "--epochs", "0"], 2, "--epochs: must be >= 1"),
    (["train", "--lr", "fast"], 2, "--lr: expected a number"),
    (["train", "--model", "vgg"], 2, "invalid choice: 'vgg'"),
    (["train", "--unknown-flag"], 2, "unrecognized arguments"),
    ([], 2, "choose a command"),
    (["train", "--model", "mlp", "--dataset", "mnist", "--data-dir", "nowhere"], 1, "nowhere does not exist"),
    (["eval", "missing.fastnn"], 1, "no checkpoint at missing.fastnn"),
])
def test_errors_are_one_line(in_tmp, capsys, argv, code, fragment):
    assert main(argv) == code
    one_line_error(capsys, fragment)


def test_missing_model_names_the_builder(in_tmp, capsys, monkeypatch):
    import fastnn.models

    monkeypatch.delattr(fastnn.models, "mlp")
    assert main(["train", "--model", "mlp"]) == 1
    one_line_error(capsys, "fastnn.models.mlp is missing")
    assert not Path("runs").exists()  # nothing written for a run that cannot start


def test_corrupt_dataset_and_checkpoint(in_tmp, capsys):
    write_mnist(in_tmp / "mnist")
    path = in_tmp / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    assert main(["train", *FAST, "--dataset", "mnist", "--data-dir", "mnist"]) == 1
    one_line_error(capsys, "t10k-images-idx3-ubyte.gz")
    Path("bad.fastnn").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["eval", "bad.fastnn"]) == 1
    one_line_error(capsys, "bad.fastnn", "not a readable fastnn checkpoint")


def test_download_that_fails_verification(in_tmp, capsys, monkeypatch, http_root):
    served, url = http_root
    write_mnist(served)
    monkeypatch.setitem(importlib.import_module("fastnn.data.mnist")._BASE_URLS, "digits", url)
    assert main(["train", *FAST, "--dataset", "mnist", "--data-dir", "fetched", "--download"]) == 1
    one_line_error(capsys, "failed verification")
    assert list(Path("fetched").iterdir()) == []


def test_info_and_bench(in_tmp, capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"fastnn:       {fastnn.__version__}" in out and "SIMD:" in out and "threads:" in out
    assert "CUDA backend:" in out
    if importlib.util.find_spec("fastnn.bench") is None:
        assert main(["bench"]) == 1
        one_line_error(capsys, "fastnn.bench")


def test_console_script_and_shim_reach_the_cli():
    """pyproject's `fastnn` script and `python -m fastnn` (a two-line __main__.py) both run
    fastnn.cli.main, and importing fastnn does not load the CLI."""
    import re

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.exists():
        module, function = re.search(r'^fastnn = "([\w.]+):(\w+)"$', pyproject.read_text(), re.M).groups()
        assert getattr(importlib.import_module(module), function) is main
    shim = Path(fastnn.__file__).with_name("__main__.py")
    assert len(shim.read_text().splitlines()) == 2
    code = "import sys, fastnn; print('fastnn.cli' in sys.modules, 'fastnn.recipes' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(Path(fastnn.__file__).parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_python_dash_m_entry_point(in_tmp):
    env = dict(os.environ, PYTHONPATH=str(Path(fastnn.__file__).parents[1]))
    ok = subprocess.run([sys.executable, "-m", "fastnn", "info"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and "SIMD" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastnn", "train", "--batch-size", "x"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--batch-size" in bad.stderr


def _small_digits(monkeypatch, side: int | None = None) -> None:
    """The digits cut to 100 training / 40 test images (and to side x side pixels if given), so
    that every model trains an epoch in a moment."""
    full = fastnn.data.digits

    def small(seed: int = 0, test_fraction: float = 0.2):
        parts = []
        for part, n in zip(full(seed=seed, test_fraction=test_fraction), (100, 40)):
            x = part.x[:n] if side is None else np.ascontiguousarray(part.x[:n, :, :side, :side])
            parts.append(fastnn.data.ArrayDataset(x, part.y[:n], classes=part.classes))
        return tuple(parts)

    monkeypatch.setattr(fastnn.data, "digits", small)


def _dataset_args(dataset: str, root: Path) -> list[str]:
    if dataset == "digits":
        return []
    if dataset in ("mnist", "fashion-mnist"):
        write_mnist(root / dataset, n_train=12, n_test=6)
    else:
        small_cifar10(root / dataset, archive=False, n=2)
    return ["--dataset", dataset, "--data-dir", str(root / dataset)]


# Every model on the bundled digits (cut short), and each file format with a different model.
# The resnets of other depths share resnet20's and resnet110's builder and CLI path; every
# model x dataset pair is also built and run forward and backward in test_recipes.py.
TRAIN_PAIRS = [(m, "digits") for m in recipes.MODEL_NAMES if m not in ("resnet32", "resnet44", "resnet56")] + [
    ("lenet5", "mnist"), ("resnet20", "fashion-mnist"), ("simple_cnn", "cifar10")]


@pytest.mark.parametrize("model, dataset", TRAIN_PAIRS)
def test_models_train_and_evaluate_from_the_cli(in_tmp, capsys, monkeypatch, model, dataset):
    """Issue 17 item 1: a --model x --dataset pair trains and evaluates (LeNet-5 pads the 8x8
    digits up), on the bundled digits (cut short) and on small files in the published formats."""
    _small_digits(monkeypatch)
    argv = ["train", "--model", model, "--epochs", "1", "--threads", "1", "--batch-size", "50", "--out", "run",
            *_dataset_args(dataset, in_tmp)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"training {model}" in out and "test accuracy" in out
    assert main(["eval", "run/checkpoint.fastnn", "--threads", "1", *argv[-2:]] if dataset != "digits"
                else ["eval", "run/checkpoint.fastnn", "--threads", "1"]) == 0
    assert f"{model} on {dataset} test set" in capsys.readouterr().out


def test_model_that_does_not_fit_is_one_line_naming_the_models_that_do(in_tmp, capsys, monkeypatch):
    """Issue 17 item 1: a builder's refusal is the CLI's one-line error, not a traceback."""
    _small_digits(monkeypatch, side=3)
    assert main(["train", "--model", "simple_cnn", "--threads", "1"]) == 1
    line = one_line_error(capsys, "--model simple_cnn does not fit --dataset digits",
                          "needs images of at least 4x4 pixels, not 3x3", "the models that take 1x3x3 images: mlp, lenet5")
    assert "resnet" not in line
    assert not Path("runs").exists()


def test_builder_errors_never_escape_as_tracebacks(in_tmp, capsys, monkeypatch):
    """Whatever a model builder raises for a shape the recipes believed it takes comes out as
    the one-line error too."""
    import fastnn.models

    def refuses(*args, **kwargs):
        raise ValueError("fastnn.models.mlp: argument 'input_size' is odd today")

    monkeypatch.setattr(fastnn.models, "mlp", refuses)
    _small_digits(monkeypatch)
    assert main(["train", "--model", "mlp", "--threads", "1"]) == 1
    one_line_error(capsys, "--model mlp does not fit --dataset digits", "is odd today")


def test_deeper_resnets_by_name(in_tmp, capsys, monkeypatch):
    """Issue 17 item 16: --model resnet32 (and 44, 56, 110) build the ResNet of that depth."""
    _small_digits(monkeypatch)
    assert main(["train", "--model", "resnet32", "--epochs", "1", "--threads", "1", "--out", "r32"]) == 0
    assert "training resnet32 (466,618 parameters)" in capsys.readouterr().out
    assert json.loads(Path("r32/report.json").read_text())["config"]["model"] == "resnet32"
    assert main(["train", "--model", "resnet30"]) == 2
    one_line_error(capsys, "invalid choice: 'resnet30'", "resnet110")


def test_out_refuses_a_folder_with_files_unless_overwrite(in_tmp, capsys, monkeypatch):
    """Issue 17 item 8: --out never silently overwrites an earlier run."""
    _small_digits(monkeypatch)
    run = ["train", *FAST, "--epochs", "1", "--quiet", "--out", "run"]
    Path("empty").mkdir()
    assert main([*run[:-1], "empty"]) == 0  # an empty folder is as good as a new one
    assert main(run) == 0
    first = Path("run/report.json").read_text()
    Path("run/notes.txt").write_text("mine")

    assert main([*run, "--seed", "1"]) == 1
    one_line_error(capsys, "--out run already holds files", "--overwrite")
    assert Path("run/report.json").read_text() == first  # untouched

    stale = Path("run/curves.png")
    stale.write_bytes(b"an old picture")
    monkeypatch.setattr(fastnn.report, "plot_curves", lambda *args, **kwargs: False)  # as without matplotlib
    assert main([*run, "--seed", "1", "--overwrite"]) == 0
    report = json.loads(Path("run/report.json").read_text())
    assert report["config"]["seed"] == 1 and "--overwrite" in report["command"]
    assert not stale.exists()  # the old run's files are gone, not mixed with the new ones
    assert Path("run/notes.txt").read_text() == "mine"  # and nothing else is touched

    Path("file").write_text("x")
    assert main([*run[:-1], "file", "--overwrite"]) == 1
    one_line_error(capsys, "--out file is a file, not a folder")

    # Resuming carries on in the checkpoint's own folder without --overwrite.
    assert main(["train", "--resume", "run/checkpoint.fastnn", "--quiet"]) == 0


def test_errors_name_flags_not_python_arguments(in_tmp, capsys, monkeypatch):
    """Issue 17 item 10: the CLI's advice names its flags (--download, --lr), never the Python
    API's (download=True, checkpoint=), and a NaN loss says whether the data or the weights were
    to blame."""
    assert main(["train", *FAST, "--dataset", "fashion-mnist", "--data-dir", "nowhere"]) == 1
    line = one_line_error(capsys, "nowhere does not exist", "add --download")
    assert "download=True" not in line

    assert main(["train", *FAST, "--lr", "1e30", "--schedule", "none", "--epochs", "2", "--out", "big"]) == 1
    line = one_line_error(capsys, "the training loss became nan at epoch 1", "the weights diverged",
                          "nothing was saved", "a lower --lr than 1e+30")
    assert "checkpoint=" not in line and "learning rate" not in line

    _small_digits(monkeypatch)
    clean = fastnn.data.digits

    def with_a_nan(seed: int = 0, test_fraction: float = 0.2):
        train_set, test_set = clean(seed=seed, test_fraction=test_fraction)
        train_set.x[train_set.y == train_set.y[0]] = np.nan  # every image of one class
        return train_set, test_set

    monkeypatch.setattr(fastnn.data, "digits", with_a_nan)
    assert main(["train", *FAST, "--epochs", "1", "--out", "nan"]) == 1
    line = one_line_error(capsys, "input images of that batch hold NaN or infinite values", "--data-dir")
    assert "--lr" not in line
