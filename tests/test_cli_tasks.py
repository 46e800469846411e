"""`fastnn train --task binary|attributes|verification|identification` end to end on small data,
`eval` re-scoring each with its task, and the one-line errors of bad task options (nothing
written). Runs use the digits cut to 600 training / 200 test images and the MLP on one thread;
the scores checked are bounds any working model clears after a few epochs (a broken label
mapping, head, loss or metric lands near chance), plus exact agreement between train's report
and eval's re-scoring of the kept weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.cli import main

from cli_runs import one_line_error, report, small_digits_in
from conftest import NEEDS_DIGITS

pytestmark = NEEDS_DIGITS

FAST = ["--model", "mlp", "--threads", "1", "--quiet", "--no-augment"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    yield from small_digits_in(tmp_path, monkeypatch, 600, 200)


def drew(*names: str) -> None:
    """The run folder holds the task's pictures (where matplotlib is installed)."""
    if importlib.util.find_spec("matplotlib"):
        missing = [name for name in names if not (Path("run") / name).is_file()]
        assert not missing, f"not drawn: {missing}"


def eval_json(checkpoint: str, path: str = "eval.json") -> dict:
    assert main(["eval", checkpoint, "--threads", "1", "--json", path]) == 0
    return json.loads(Path(path).read_text())


@pytest.mark.pictures
def test_binary(in_tmp, capsys):
    assert main(["train", *FAST, "--task", "binary", "--positive", "1,3,5,7,9", "--epochs", "6", "--out", "run"]) == 0
    drew("curves.png", "confusion.png", "roc.png")
    final = report("run")["final"]
    assert final["task"] == "binary" and final["classes"] == ["no", "yes"]
    binary = final["binary"]
    assert binary["positive_classes"] == ["1", "3", "5", "7", "9"]
    assert binary["auc"] > 0.9 and binary["average_precision"] > 0.85 and binary["accuracy"] > 0.8
    assert 0 < binary["f1"] <= 1 and binary["threshold"] == 0.5
    assert binary["positives"] + binary["negatives"] == 200
    again = eval_json("run/best.fastnn")
    assert again["binary"]["auc"] == pytest.approx(binary["auc"], abs=1e-12)


@pytest.mark.pictures
def test_attributes(in_tmp):
    assert main(["train", *FAST, "--task", "attributes", "--epochs", "6", "--out", "run"]) == 0
    drew("curves.png", "attributes.png")
    final = report("run")["final"]
    attributes = final["attributes"]
    names = [name for name in attributes if name != "mean"]
    assert final["classes"] == names and len(names) >= 3
    assert final["test_accuracy"] is None  # no single class per image
    for name in names:
        entry = attributes[name]
        assert entry["known"] == 200 and entry["unknown"] == 0
        assert entry["accuracy"] > 0.7, (name, entry)
        assert (entry.get("auc") or entry.get("macro_f1")) > 0.6, (name, entry)
    assert attributes["mean"]["accuracy"] == pytest.approx(np.mean([attributes[n]["accuracy"] for n in names]))
    again = eval_json("run/best.fastnn")
    assert again["attributes"]["mean"] == attributes["mean"]


def test_attributes_from_a_csv_with_unknown_cells(in_tmp):
    rows = ["id,odd,big"] + [f"train/{i},{i % 2},{'' if i % 7 == 0 else int(i % 10 >= 5)}" for i in range(600)]
    rows += [f"test/{i},{i % 2}," for i in range(200)]  # 'big' unknown on every test image
    Path("table.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", *FAST, "--task", "attributes", "--attributes", "table.csv", "--epochs", "2",
                 "--out", "run"]) == 0
    attributes = report("run")["final"]["attributes"]
    assert set(attributes) == {"odd", "big", "mean"}
    assert attributes["odd"]["known"] == 200 and attributes["big"]["known"] == 0
    assert attributes["big"]["accuracy"] is None


@pytest.mark.parametrize("loss", ["arcface", pytest.param("triplet", marks=pytest.mark.pictures)])
def test_verification(in_tmp, loss):
    assert main(["train", *FAST, "--task", "verification", "--loss", loss, "--epochs", "4", "--pairs", "400",
                 "--out", "run"]) == 0
    if loss == "triplet":
        drew("curves.png", "roc.png", "scores.png")
    config, final = report("run")["config"], report("run")["final"]
    assert config["eval_class_names"] == ["6", "7", "8", "9"] and config["num_classes"] == 6
    verification = final["verification"]
    for result in (verification, verification["closed_set"]):
        assert result["pairs"] == 400 and result["same_pairs"] == 200
        assert 0 <= result["eer"] <= 0.5 and 0 <= result["auc"] <= 1
        assert set(result["tar_at_far"]) == {"1e-1", "1e-2"}  # 200 impostor pairs cannot resolve 1e-3
    assert verification["closed_set"]["auc"] > 0.9  # the training identities separate
    assert verification["auc"] > 0.6  # unseen identities: better than chance, far from closed set
    again = eval_json("run/best.fastnn")
    assert again["verification"]["auc"] == pytest.approx(verification["auc"], abs=1e-9)


@pytest.mark.pictures
def test_identification_open_set(in_tmp):
    assert main(["train", *FAST, "--task", "identification", "--eval-classes", "5,6,7,8,9", "--enroll", "3",
                 "--unknown-classes", "1", "--epochs", "4", "--out", "run"]) == 0
    drew("curves.png", "cmc.png")
    identification = report("run")["final"]["identification"]
    assert identification["gallery"] == 4 and identification["enroll"] == 3
    assert identification["non_mated_probes"] > 0 and identification["dir_at_far"]
    assert len(identification["cmc"]) == 4 and identification["cmc"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(identification["cmc"]) >= 0)
    assert identification["rank1"] > 0.4  # chance is 1/4
    assert identification["closed_set"]["rank1"] > 0.8


@pytest.mark.parametrize("argv, fragments", [
    (["--task", "verification", "--eval-classes", "9"], ["--eval-classes", "at least 2"]),
    (["--task", "binary", "--positive", "1,eleven"], ["--positive", "eleven"]),
    (["--task", "binary"], ["--positive"]),
    (["--positive", "1"], ["--positive", "binary"]),
    (["--embedding-dim", "8"], ["--embedding-dim", "verification"]),
    (["--task", "attributes", "--monitor", "val_acc"], ["--monitor", "attributes"]),
    (["--task", "identification", "--enroll", "500"], ["--enroll"]),
])
def test_bad_task_options_fail_in_one_line_and_write_nothing(in_tmp, capsys, argv, fragments):
    assert main(["train", *FAST, "--epochs", "1", "--out", "run", *argv]) != 0
    one_line_error(capsys, *fragments)
    assert not Path("run").exists()


@pytest.mark.parametrize("rows, fragments", [
    (["id,odd", "train/0,1", "nowhere/3,0"], ["--attributes", "unknown image id", "nowhere/3"]),
    (["id,odd", "train/0,yes"], ["--attributes", "row 2", "'yes'"]),
])
def test_bad_attribute_csv_fails_in_one_line_and_writes_nothing(in_tmp, capsys, rows, fragments):
    Path("table.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", *FAST, "--task", "attributes", "--attributes", "table.csv", "--epochs", "1",
                 "--out", "run"]) != 0
    one_line_error(capsys, *fragments)
    assert not Path("run").exists()


# The same commands on the published formats and on an image folder ----------------------------

def _files(dataset: str, root: Path) -> list[str]:
    from dataset_files import small_cifar10, write_mnist

    if dataset in ("mnist", "fashion-mnist"):
        write_mnist(root / dataset, n_train=200, n_test=60)
    else:
        small_cifar10(root / dataset, archive=False, n=40)
    return ["--dataset", dataset, "--data-dir", str(root / dataset)]


@pytest.mark.parametrize("dataset, task", [
    ("mnist", ["--task", "verification", "--pairs", "200"]),
    ("mnist", ["--task", "attributes"]),
    ("fashion-mnist", ["--task", "attributes"]),
    ("fashion-mnist", ["--task", "binary", "--positive", "5,7,9"]),
    ("cifar10", ["--task", "attributes"]),
    ("cifar10", ["--task", "identification", "--unknown-classes", "1"]),
])
def test_tasks_run_on_the_published_formats(in_tmp, capsys, dataset, task):
    """The task commands work on MNIST, Fashion-MNIST and CIFAR-10 files (random pixels and
    labels in the published formats: this checks the plumbing and the built-in attribute tables,
    not what is learnt)."""
    assert main(["train", *FAST, "--epochs", "1", "--out", "run", *task, *_files(dataset, in_tmp)]) == 0, \
        capsys.readouterr().err
    final = report("run")["final"]
    assert final["task"] == task[1] and final[task[1]]


def test_attributes_of_an_image_folder_from_a_csv_of_file_names(in_tmp):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    rows = ["file,bright,size"]
    for label, name in enumerate(["dark cats", "light dogs"]):
        (in_tmp / "imgs" / name).mkdir(parents=True)
        for i in range(10):
            level = 40 + 160 * label
            Image.fromarray(rng.integers(level, level + 40, (10, 10), dtype=np.uint8)).save(
                in_tmp / "imgs" / name / f"{i}.png")
            rows.append(f"{name}/{i}.png,{label},{'' if i == 0 else i % 3}")
    Path("table.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", *FAST, "--dataset", "folder", "--data-dir", "imgs", "--image-size", "8", "--task",
                 "attributes", "--attributes", "table.csv", "--epochs", "3", "--val-fraction", "0",
                 "--out", "run"]) == 0
    attributes = report("run")["final"]["attributes"]
    assert attributes["bright"]["kind"] == "binary" and attributes["size"]["kind"] == "multiclass"
    # 20 images, 4 held out as the test set; the two unknown 'size' cells are left out where they fall.
    assert attributes["bright"]["known"] == 4 and attributes["size"]["known"] + attributes["size"]["unknown"] == 4


def test_predict_answers_in_the_tasks_terms(in_tmp, capsys):
    Image = pytest.importorskip("PIL.Image")
    train, _ = fastnn.data.digits()
    for i in range(2):  # digits pixels are 0..1 (0..16 scaled): an 8-bit PNG of them reads back the same
        Image.fromarray((train.x[i, 0] * 255).round().astype(np.uint8)).save(f"d{i}.png")
    assert main(["train", *FAST, "--task", "verification", "--pairs", "200", "--epochs", "2", "--out", "ver"]) == 0
    capsys.readouterr()
    assert main(["predict", "ver/best.fastnn", "--pair", "d0.png", "d1.png", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    assert pair["threshold"] == report("ver")["final"]["verification"]["eer_threshold"]
    assert -1 - 1e-6 <= pair["similarity"] <= 1 + 1e-6 and pair["same"] == (pair["similarity"] >= pair["threshold"])
    assert main(["predict", "ver/best.fastnn", "d0.png"]) != 0  # an embedding model names no classes
    assert "--pair" in capsys.readouterr().err
    assert main(["train", *FAST, "--task", "attributes", "--epochs", "1", "--out", "att"]) == 0
    capsys.readouterr()
    assert main(["predict", "att/best.fastnn", "d0.png", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert set(result["attributes"]) == set(report("att")["config"]["classes"])
    assert all(0.5 <= v["probability"] <= 1 for v in result["attributes"].values())
