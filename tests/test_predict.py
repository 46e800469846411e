"""``fastnn train --dataset folder`` end to end on a tiny generated tree, and ``fastnn predict``
(text and JSON) against probabilities computed here from the saved model; a digits model
predicting PNG files; the CLI's errors for missing data naming the flags that fix them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fastnn
import fastnn.report
from fastnn import data, recipes
from fastnn.cli import main
from fastnn.cli.predict import preprocessing
from conftest import require_digits

Image = pytest.importorskip("PIL.Image", reason="image folders are decoded with Pillow (fastnn[images])")

CLASSES = ["dark", "light stripes", "ünïcode"]


def write_classes(root: Path, per_class: int, seed: int = 0) -> None:
    """Three easily told classes of 10x14 RGB images: dark noise, light vertical stripes, and
    mid-gray with a bright centre."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (10, 14, 3))
            if label == 1:
                image[:, ::2] += 180
            elif label == 2:
                image += 90
                image[3:7, 5:9] = 250
            Image.fromarray(image.astype(np.uint8)).save(root / name / f"{i}.{'png' if i % 3 else 'jpg'}")


@pytest.fixture(scope="module", autouse=True)
def no_pictures():
    """The runs here draw no curves.png / confusion.png (matplotlib takes seconds; test_cli.py
    covers the pictures)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastnn.report, "plot_curves", lambda *args, **kwargs: False)
        patch.setattr(fastnn.report, "plot_confusion", lambda *args, **kwargs: False)
        yield


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, no_pictures):
    """A 2-epoch MLP trained on a tiny folder (8x8 RGB after resizing, augmented with crops of
    that size and flips): (tree, run folder)."""
    tmp = tmp_path_factory.mktemp("folder_run")
    tree = tmp / "tree"
    write_classes(tree, per_class=10)
    (tree / CLASSES[0] / "notes.txt").write_text("not an image")
    threads = fastnn.get_num_threads()
    try:
        assert main(["train", "--dataset", "folder", "--data-dir", str(tree), "--image-size", "8", "--model", "mlp",
                     "--epochs", "2", "--augment", "--threads", "1", "--out", str(tmp / "run"), "--quiet"]) == 0
    finally:
        fastnn.set_num_threads(threads)
    return tree, tmp / "run"


def expected_probabilities(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    """Softmax of the saved model's logits on ``x`` (float32 in [0, 1]), in float64 NumPy."""
    ck = fastnn.load(checkpoint)
    config = ck["config"]
    model = recipes.build_model(config["model"], x.shape[1:], config["num_classes"])
    fastnn.restore(ck, model, rng=False)
    model.eval()
    logits = np.asarray(model(data.Normalize(config["normalize_mean"], config["normalize_std"])(x)), np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_folder_run_stores_its_preprocessing(folder_run):
    tree, run = folder_run
    config = fastnn.load(run / "checkpoint.fastnn")["config"]
    assert config["dataset"] == "folder" and config["image_size"] == 8 and config["channels"] is None
    prep = config["preprocessing"]
    assert prep["image_size"] == 8 and prep["channels"] == 3 and prep["classes"] == CLASSES
    assert prep["normalize_mean"] == config["normalize_mean"] and len(prep["normalize_std"]) == 3
    # An older checkpoint (no "preprocessing" key) gets the same from its other keys.
    assert preprocessing({k: v for k, v in config.items() if k != "preprocessing"}) == prep
    report = json.loads((run / "report.json").read_text())
    assert report["final"]["classes"] == CLASSES and report["evaluation"]["sets"]["test"] == 6  # 0.2 of 30


def test_predict_json_matches_the_model(folder_run, capsys):
    tree, run = folder_run
    capsys.readouterr()
    assert main(["predict", str(run / "checkpoint.fastnn"), str(tree), "--json", "--top-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    files = sorted(p for p in tree.rglob("*") if p.suffix in (".png", ".jpg"))
    assert [r["path"] for r in results] == [str(p) for p in files]
    # The images as the training reader decodes them, through the model here.
    reader, _ = data.image_folder(tree, image_size=8, cache=False)
    probabilities = expected_probabilities(run / "checkpoint.fastnn", reader.x)
    by_path = dict(zip(reader.paths, probabilities))
    for result in results:
        p = by_path[result["path"]]
        top = np.argsort(-p)[:2]
        assert [t["class"] for t in result["top_k"]] == [CLASSES[i] for i in top]
        # float32 forward pass and softmax against float64 here: 1e-5 absolute on probabilities.
        np.testing.assert_allclose([t["probability"] for t in result["top_k"]], p[top], atol=1e-5)


def test_predict_text_skips_bad_paths(folder_run, tmp_path, capsys):
    tree, run = folder_run
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG truncated")
    one = tree / CLASSES[1] / "1.png"
    capsys.readouterr()
    assert main(["predict", str(run / "best.fastnn"), str(one), str(bad), str(tmp_path / "nowhere.png"),
                 "--top-k", "9", "--batch-size", "1"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{one}: ")
    shown = lines[0].split(": ", 1)[1].split(", ")
    assert len(shown) == 3  # --top-k 9 of 3 classes shows the 3
    assert {s.rsplit(" (", 1)[0] for s in shown} == set(CLASSES)
    assert abs(sum(float(s.rsplit("(", 1)[1].rstrip("%)")) for s in shown) - 100) < 0.2  # 3 roundings to 0.1%
    assert f"skipped {bad}:" in captured.err and f"skipped {tmp_path / 'nowhere.png'}: no such file" in captured.err
    assert "Traceback" not in captured.err


def test_predict_fails_only_when_nothing_was_classified(folder_run, tmp_path, capsys):
    _, run = folder_run
    bad = tmp_path / "x.jpg"
    bad.write_text("no image")
    assert main(["predict", str(run / "checkpoint.fastnn"), str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fastnn: error: no image could be classified")
    assert main(["predict", str(tmp_path / "none.fastnn"), str(bad)]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_eval_of_a_folder_run(folder_run, capsys):
    _, run = folder_run
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoint.fastnn")]) == 0
    assert "mlp on folder test set (6 images)" in capsys.readouterr().out


def test_digits_model_predicts_png_files(tmp_path, capsys):
    """A digits model (8x8, 1 channel, pixels 0..16 / 16) on PNGs of digits images (pixel * 255,
    rounded to a byte) and on 4x larger RGB copies: predict converts and resizes them, and its
    classes agree with the model's own on the arrays."""
    require_digits()
    threads = fastnn.get_num_threads()
    try:
        assert main(["train", "--model", "mlp", "--epochs", "2", "--threads", "1", "--out", str(tmp_path / "run"),
                     "--quiet"]) == 0
    finally:
        fastnn.set_num_threads(threads)
    _, test_set = data.digits(seed=0)
    images = test_set.x[:40]
    for i, image in enumerate(images):
        gray = np.round(image[0] * 255).astype(np.uint8)
        Image.fromarray(gray).save(tmp_path / f"{i:02d}.png")
        big = np.repeat(np.repeat(gray, 4, axis=0), 4, axis=1)
        Image.fromarray(np.stack([big] * 3, axis=-1)).save(tmp_path / f"{i:02d}_big.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run" / "checkpoint.fastnn"), str(tmp_path), "--json", "--top-k", "1"]) == 0
    results = {Path(r["path"]).name: r["top_k"][0]["class"] for r in json.loads(capsys.readouterr().out)}
    own = expected_probabilities(tmp_path / "run" / "checkpoint.fastnn", images).argmax(axis=1)
    for suffix in ("", "_big"):
        agree = np.mean([results[f"{i:02d}{suffix}.png"] == str(c) for i, c in enumerate(own)])
        # Rounding to bytes moves pixels by <= 0.5/255 and the resize back from 32x32 by a few
        # levels: a handful of borderline images may flip, not more.
        assert agree >= 0.9, (suffix, agree)


def test_cli_errors_name_the_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "folder"]) == 1
    assert "--dataset folder needs --data-dir" in capsys.readouterr().err
    assert main(["train", "--dataset", "folder", "--data-dir", "missing"]) == 1
    line = capsys.readouterr().err
    assert "image folder missing does not exist" in line and "--data-dir" in line and "Traceback" not in line
    assert main(["train", "--dataset", "mnist", "--data-dir", "nowhere", "--model", "mlp"]) == 1
    line = capsys.readouterr().err
    assert "add --download" in line and "--data-dir" in line and "download=True" not in line
    assert main(["train", "--dataset", "mnist", "--image-size", "8"]) == 1
    assert "--image-size applies to --dataset folder only" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "flat" / "a.png")
    assert main(["train", "--dataset", "folder", "--data-dir", "flat", "--model", "mlp"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no class folders" in err[0]
