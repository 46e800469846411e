"""Checkpoint round trips, corruption and mismatch errors, atomic writes."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.checkpoint import CheckpointError


def model_and_optimizer(seed: int = 0):
    fastnn.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model[1].register_buffer("running_mean", np.arange(5, dtype=np.float32))  # stands in for BatchNorm stats
    opt = optim.AdamW(model.parameters(), lr=0.01)
    x = np.random.default_rng(seed).random((4, 1, 2, 3), dtype=np.float32)
    loss = nn.SoftmaxCrossEntropy()
    loss(model(x), np.array([0, 1, 2, 1]))
    model.backward(loss.backward())
    opt.step()
    return model, opt


EXTRA = {
    "epoch": 7,
    "ratio": 0.1 + 0.2,
    "missing": None,
    "flag": True,
    "betas": (0.9, 0.999),
    "by_index": {0: {"step": 3}, 12: [1, 2.5]},
    "odd_keys": {"$array": "not an array", "plain": "text"},
    "not_finite": [math.inf, -math.inf],
    "table": np.arange(6, dtype=np.int64).reshape(2, 3),
}


def test_round_trip(tmp_path):
    model, opt = model_and_optimizer()
    rng_before = fastnn.get_rng_state()
    path = fastnn.save(tmp_path / "ck.fastnn", model, opt, **EXTRA)
    ck = fastnn.load(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(ck["model"][name], value)
        assert ck["model"][name].dtype == value.dtype
    assert "1.running_mean" in ck["model"]
    saved_opt = ck["optimizer"]
    assert saved_opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(saved_opt["state"]) == {0, 1, 2, 3} and saved_opt["state"][0]["step"] == 1
    for key in ("epoch", "ratio", "missing", "flag", "betas", "by_index", "odd_keys", "not_finite"):
        assert ck[key] == EXTRA[key] and type(ck[key]) is type(EXTRA[key])
    np.testing.assert_array_equal(ck["table"], EXTRA["table"])
    assert ck["rng_state"] == rng_before and ck["format_version"] == 1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary files left


def test_restore_puts_state_back(tmp_path):
    model, opt = model_and_optimizer(seed=0)
    fastnn.save(tmp_path / "ck.fastnn", model, opt)
    expected_next = fastnn.random.default_generator().random()
    other, other_opt = model_and_optimizer(seed=1)
    fastnn.restore(tmp_path / "ck.fastnn", other, other_opt)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(opt.state_dict()["state"][2]["exp_avg"], other_opt.state_dict()["state"][2]["exp_avg"])
    assert fastnn.random.default_generator().random() == expected_next


def test_mismatched_model_is_a_clear_error(tmp_path):
    model, opt = model_and_optimizer()
    fastnn.save(tmp_path / "ck.fastnn", model, opt)
    wider = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(CheckpointError, match=r"ck.fastnn.*'model' does not match.*unexpected keys \['1.running_mean'\]"):
        fastnn.restore(tmp_path / "ck.fastnn", wider)
    wider[1].register_buffer("running_mean", np.zeros(8, np.float32))
    with pytest.raises(CheckpointError, match=r"ck.fastnn.*'model' does not match.*'1.weight' must have shape \(8, 6\)"):
        fastnn.restore(tmp_path / "ck.fastnn", wider)
    with pytest.raises(CheckpointError, match="no 'optimizer' state"):
        fastnn.save(tmp_path / "bare.fastnn", model)
        fastnn.restore(tmp_path / "bare.fastnn", model, opt)


def _rewrite(path, change):
    """Rewrites the archive with change(name, bytes) -> bytes applied to each member."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, change(name, payload))


def _flip_last_byte(name, payload):
    return payload[:-1] + bytes([payload[-1] ^ 1]) if name.endswith(".npy") else payload


def _with_meta(**fields):
    def change(name, payload):
        if name != "meta.json":
            return payload
        return json.dumps({**json.loads(payload), **fields}).encode()
    return change


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated, corrupted"),
    (lambda p: p.write_bytes(b"\x89PNG not a checkpoint" * 20), "not a readable fastnn checkpoint"),
    (lambda p: _rewrite(p, _flip_last_byte), "SHA-256"),
    (lambda p: _rewrite(p, _with_meta(version=99)), "version 99"),
    (lambda p: _rewrite(p, _with_meta(format="something-else")), "not a fastnn checkpoint"),
    (lambda p: _rewrite(p, lambda name, payload: b"{" if name == "meta.json" else payload), "not valid JSON"),
])
def test_damaged_files_are_clear_errors(tmp_path, damage, message):
    model, opt = model_and_optimizer()
    path = fastnn.save(tmp_path / "ck.fastnn", model, opt)
    damage(path)
    with pytest.raises(CheckpointError, match=message) as info:
        fastnn.load(path)
    assert "ck.fastnn" in str(info.value)


def test_bit_flip_inside_the_archive_is_caught(tmp_path):
    model, opt = model_and_optimizer()
    path = fastnn.save(tmp_path / "ck.fastnn", model, opt)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40  # somewhere in an array payload: zip's CRC or our SHA-256 notices
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="ck.fastnn"):
        fastnn.load(path)


def test_foreign_zip_and_missing_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError, match="no meta.json"):
        fastnn.load(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        fastnn.load(tmp_path / "nothing-here.fastnn")


def test_failed_save_keeps_the_old_file(tmp_path):
    model, opt = model_and_optimizer()
    path = fastnn.save(tmp_path / "ck.fastnn", model, opt, epoch=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store a object at note"):
        fastnn.save(path, model, opt, epoch=2, note=object())
    with pytest.raises(ValueError, match="reserved"):
        fastnn.save(path, model, opt, rng_state=1)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.fastnn"]


def test_zero_dim_and_non_contiguous_arrays_round_trip(tmp_path):
    # Regression: 0-d arrays (BatchNorm's num_batches_tracked) came back as shape (1,) and the
    # file failed its own shape check, so a BatchNorm model could not be resumed.
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model(np.ones((2, 1, 4, 4), np.float32))
    scalar, view = np.array(3.5), np.arange(12.0).reshape(3, 4)[:, ::2]
    path = fastnn.save(tmp_path / "ck.zip", model, scalar=scalar, view=view)
    ck = fastnn.load(path)
    assert ck["scalar"].shape == () and ck["scalar"] == 3.5
    np.testing.assert_array_equal(ck["view"], view)
    fastnn.restore(ck, nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))


@pytest.mark.parametrize("meta", [
    {"format": "fastnn-checkpoint", "version": 1, "arrays": [], "tree": {"model": {}}},
    {"format": "fastnn-checkpoint", "version": 1, "arrays": {"a0": "nope"}, "tree": {"model": {}}},
    {"format": "fastnn-checkpoint", "version": 1, "arrays": {}, "tree": {"model": {"$array": "a9"}}},
    {"format": "fastnn-checkpoint", "version": 1, "arrays": {}, "tree": {"model": {"$dict": 5}}},
    "deep",
], ids=["arrays-list", "record-string", "missing-array", "bad-dict", "deep-nesting"])
def test_hand_crafted_meta_gives_checkpoint_error(tmp_path, meta):
    import json
    import zipfile

    text = "[" * 100_000 + "]" * 100_000 if meta == "deep" else json.dumps(meta)
    path = tmp_path / "crafted.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.json", text)
    with pytest.raises(fastnn.CheckpointError, match="crafted.zip"):
        fastnn.load(path)
