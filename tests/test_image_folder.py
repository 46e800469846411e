"""fastnn.data.image_folder on generated trees of PNG, JPEG, BMP, GIF and WebP files: class names
from folders (spaces, unicode), pixels against the arrays the files were written from, resizing,
channels, bad and junk files, the decoded-image cache, train/ + test/ splits and the errors."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastnn import data

# The module itself: fastnn.data's `image_folder` attribute is the function of that name.
image_folder_module = importlib.import_module("fastnn.data.image_folder")

Image = pytest.importorskip("PIL.Image", reason="image folders are decoded with Pillow (fastnn[images])")
from PIL import features  # noqa: E402 (after the skip)

CLASSES = ["cat s", "dög 猫", "zebra"]  # sorted by code point, as image_folder sorts them


def pixels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write_tree(root: Path, per_class: int = 3, size: tuple[int, int] = (12, 12), color: bool = True,
               seed: int = 0) -> dict[str, np.ndarray]:
    """``per_class`` lossless PNG/BMP images per class in CLASSES; returns {path: pixels (H, W, C)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            array = pixels(rng, (*size, 3) if color else size)
            path = root / name / f"{i}.{'png' if i % 2 == 0 else 'bmp'}"
            Image.fromarray(array).save(path)
            written[str(path)] = array if array.ndim == 3 else array[:, :, None]
    return written


def add_junk(root: Path) -> dict[str, str]:
    """Bad image files (returned as {path: what the reason must mention}) and files that are not
    images (hidden or not) in the class folders."""
    good = root / CLASSES[0] / "0.png"
    bad = {
        str(root / CLASSES[0] / "truncated.png"): "truncated",
        str(root / CLASSES[1] / "text.jpg"): "not an image",
        str(root / CLASSES[2] / "empty.bmp"): "empty",
    }
    raw = good.read_bytes()
    Path(list(bad)[0]).write_bytes(raw[: len(raw) // 2])
    Path(list(bad)[1]).write_text("this is not a JPEG")
    Path(list(bad)[2]).write_bytes(b"")
    (root / CLASSES[0] / ".DS_Store").write_bytes(b"\0\1junk")
    (root / CLASSES[1] / "README.txt").write_text("notes")
    (root / "LICENSE").write_text("top-level file")
    (root / ".hidden_class").mkdir()
    (root / ".hidden_class" / "x.png").write_bytes(raw)
    return bad


def load(root: Path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.ImageFolderWarning)  # a test that expects one catches it
        return data.image_folder(root, **kwargs)


def test_reads_classes_labels_and_lossless_pixels(tmp_path):
    written = write_tree(tmp_path)
    train, test = load(tmp_path)
    assert test is None
    assert train.classes == CLASSES and train.x.dtype == np.float32 and train.x.shape == (9, 3, 12, 12)
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for i, path in enumerate(train.paths):
        # PNG and BMP are lossless: the float pixels are exactly the written bytes / 255.
        expected = written[path].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(train.x[i], expected)
        assert Path(path).parent.name == CLASSES[train.y[i]]


def test_jpeg_gif_first_frame_and_webp(tmp_path):
    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(pixels(rng, (2, 2, 3)), 8, axis=0), 8, axis=1)  # 16x16, flat 8x8 blocks
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.fromarray(smooth).save(tmp_path / "a" / "photo.JPG", quality=95, subsampling=0)
    first, second = np.full((16, 16), 40, np.uint8), np.full((16, 16), 200, np.uint8)
    Image.fromarray(first).save(tmp_path / "b" / "anim.gif", save_all=True, append_images=[Image.fromarray(second)])
    webp = features.check("webp")  # Pillow builds without libwebp exist
    if webp:
        Image.fromarray(smooth).save(tmp_path / "a" / "lossless.webp", lossless=True)
    train, _ = load(tmp_path, channels=3)
    by_name = {Path(p).name: train.x[i] for i, p in enumerate(train.paths)}
    # JPEG is lossy: at quality 95 without chroma subsampling, flat blocks aligned with its 8x8
    # DCT blocks come back within a few levels (quantisation and YCbCr rounding).
    error = np.abs(by_name["photo.JPG"] - smooth.transpose(2, 0, 1) / 255)
    assert error.max() <= 4 / 255
    # A GIF is its first frame; a gray GIF holds its gray levels exactly.
    np.testing.assert_array_equal(by_name["anim.gif"], np.full((3, 16, 16), np.float32(40) / np.float32(255)))
    if webp:
        np.testing.assert_array_equal(by_name["lossless.webp"], smooth.transpose(2, 0, 1) / np.float32(255))


def test_bad_files_are_skipped_with_a_warning_and_junk_ignored(tmp_path):
    write_tree(tmp_path, per_class=2)
    bad = add_junk(tmp_path)
    with pytest.warns(data.ImageFolderWarning, match="skipped 3 of 9 image files") as caught:
        train, _ = data.image_folder(tmp_path)
    message = str(caught[0].message)
    assert all(path in message for path in bad)
    assert len(train) == 6 and train.classes == CLASSES  # the hidden folder is no class
    assert {p for p, _ in train.skipped} == set(bad)
    for path, reason in train.skipped:
        assert bad[path] in reason, (path, reason)
    assert sorted(Path(p).name for p in train.ignored) == ["LICENSE", "README.txt"]
    assert not any(".DS_Store" in p for p in train.paths + train.ignored)


def test_nested_folders_belong_to_their_class(tmp_path):
    """As torchvision's ImageFolder: images in folders below a class folder are of that class."""
    write_tree(tmp_path, per_class=1)
    deeper = tmp_path / CLASSES[2] / "2019" / "summer"
    deeper.mkdir(parents=True)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(deeper / "deep.png")
    train, _ = load(tmp_path)
    assert train.y[train.paths.index(str(deeper / "deep.png"))] == 2 and len(train) == 4


def test_resize_keeps_the_centre_and_the_aspect_ratio(tmp_path):
    """A 20x40 image whose middle columns (8..31, a little wider than the centre 20x20 square so
    the resampling filter's support stays inside) hold one value and whose sides hold others:
    cropping the centre gives that value everywhere; stretching would mix in the sides."""
    image = np.zeros((20, 40), np.uint8)
    image[:, :8], image[:, 8:32], image[:, 32:] = 10, 150, 250
    (tmp_path / "only").mkdir()
    Image.fromarray(image).save(tmp_path / "only" / "wide.png")
    Image.fromarray(image.T.copy()).save(tmp_path / "only" / "tall.png")
    for size in (5, 10, 37):  # shrinking, and growing past the source
        train, _ = load(tmp_path, image_size=size, cache=False)
        assert train.x.shape == (2, 1, size, size)
        np.testing.assert_allclose(train.x, 150 / 255, atol=1 / 255)


def test_large_jpeg_is_decoded_at_a_reduced_scale_and_cropped(tmp_path):
    """JPEGs are decoded at the smallest DCT scale that still covers the size (``draft``); the
    result is the same centre crop. The constant middle (columns 16..111 of 128) is wider than
    the centre square (32..95), so JPEG ringing at the edges stays outside it."""
    image = np.zeros((64, 128, 3), np.uint8)
    image[:, :16], image[:, 16:112], image[:, 112:] = (0, 0, 255), (90, 160, 30), (255, 0, 0)
    (tmp_path / "only").mkdir()
    Image.fromarray(image).save(tmp_path / "only" / "big.jpeg", quality=95, subsampling=0)
    train, _ = load(tmp_path, image_size=8, cache=False)
    # JPEG's loss on flat colour: a few levels.
    np.testing.assert_allclose(train.x[0], np.broadcast_to(np.array([90, 160, 30])[:, None, None] / 255, (3, 8, 8)),
                               atol=4 / 255)


def test_channels(tmp_path):
    rgb = pixels(np.random.default_rng(2), (6, 6, 3))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.fromarray(rgb).save(tmp_path / "a" / "rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "b" / "gray.png")
    mixed, _ = load(tmp_path, cache=False)
    assert mixed.x.shape[1] == 3  # one colour image makes the set RGB; gray ones are repeated
    np.testing.assert_array_equal(mixed.x[1], np.repeat(rgb[None, :, :, 0] / np.float32(255), 3, axis=0))
    gray, _ = load(tmp_path, channels=1, cache=False)
    # ITU-R 601 luma (Pillow's "L"), rounded to a byte: within half a level of the formula.
    luma = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(gray.x[0, 0], luma, atol=1 / 255)
    Image.fromarray(rgb[:, :, 1]).save(tmp_path / "a" / "rgb.png")
    assert load(tmp_path, cache=False)[0].x.shape[1] == 1  # all gray: one channel


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    (tmp_path / "a").mkdir()
    wide = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "a" / "deep.png")
    train, _ = load(tmp_path, cache=False)
    np.testing.assert_array_equal(train.x[0, 0, 0], np.array([0, 100, 255], np.float32) / np.float32(255))


def test_second_load_reads_from_the_cache(tmp_path, monkeypatch):
    write_tree(tmp_path)
    decoded = []
    real_decode = image_folder_module._decode
    monkeypatch.setattr(image_folder_module, "_decode", lambda path, *a: decoded.append(path) or real_decode(path, *a))
    first, _ = load(tmp_path, image_size=8)
    assert len(decoded) == 9
    assert len(list((tmp_path / image_folder_module.CACHE_FOLDER).glob("*.npz"))) == 1
    decoded.clear()
    again, _ = load(tmp_path, image_size=8)
    assert decoded == []
    np.testing.assert_array_equal(again.x, first.x)
    assert again.paths == first.paths and again.classes == first.classes and again.y.tolist() == first.y.tolist()
    # Another size is another cache entry; a changed file is decoded again.
    load(tmp_path, image_size=4)
    assert len(decoded) == 9
    decoded.clear()
    changed = Path(first.paths[0])
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load(tmp_path, image_size=8)
    assert len(decoded) == 9
    decoded.clear()
    load(tmp_path, image_size=8, cache=False)
    assert len(decoded) == 9


def test_bad_files_are_reported_again_from_the_cache(tmp_path):
    write_tree(tmp_path, per_class=2)
    bad = add_junk(tmp_path)
    for _ in range(2):
        with pytest.warns(data.ImageFolderWarning, match="skipped 3 of 9"):
            train, _ = data.image_folder(tmp_path)
        assert {p for p, _ in train.skipped} == set(bad)


def test_cache_dir_argument_and_an_unwritable_cache(tmp_path):
    root = tmp_path / "images"
    write_tree(root, per_class=1)
    load(root, cache_dir=tmp_path / "elsewhere")
    assert not (root / image_folder_module.CACHE_FOLDER).exists()
    assert len(list((tmp_path / "elsewhere").glob("*.npz"))) == 1
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the cache folder would go")
    with pytest.warns(data.ImageFolderWarning, match="could not write the decoded-image cache"):
        train, _ = data.image_folder(root, cache_dir=blocker / "cache")
    assert len(train) == 3


def test_train_and_test_folders(tmp_path):
    write_tree(tmp_path / "train", per_class=2)
    rng = np.random.default_rng(3)
    for name in CLASSES[1:]:  # the test split may lack a class
        (tmp_path / "test" / name).mkdir(parents=True)
        Image.fromarray(pixels(rng, (12, 12, 3))).save(tmp_path / "test" / name / "t.png")
    train, test = load(tmp_path)
    assert train.classes == test.classes == CLASSES
    assert test.y.tolist() == [1, 2] and len(train) == 6
    (tmp_path / "test" / "unknown").mkdir()
    Image.fromarray(pixels(rng, (12, 12, 3))).save(tmp_path / "test" / "unknown" / "u.png")
    with pytest.raises(data.DatasetError, match="class folders that train/ lacks: unknown"):
        load(tmp_path)


def test_a_split_needs_both_folders(tmp_path):
    write_tree(tmp_path / "train", per_class=1)
    with pytest.raises(data.DatasetError, match="has train/ but no test/"):
        load(tmp_path)


@pytest.mark.parametrize("damage, words", [
    ("empty class", ["class folder", "holds no image files"]),
    ("no classes", ["holds no class folders", "one sub-folder of images per class"]),
    ("all bad in a class", ["no image of class folder(s) zebra", "could be decoded"]),
    ("sizes differ", ["differ in size", "image_size="]),
])
def test_layout_errors(tmp_path, damage, words):
    if damage == "no classes":
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "loose.png")
    else:
        write_tree(tmp_path, per_class=1)
    if damage == "empty class":
        (tmp_path / "empty one").mkdir()
    elif damage == "all bad in a class":
        for path in (tmp_path / "zebra").iterdir():
            path.write_bytes(b"broken")
    elif damage == "sizes differ":
        Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "zebra" / "odd.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.ImageFolderWarning)
        with pytest.raises(data.DatasetError) as info:
            data.image_folder(tmp_path)
    for word in words:
        assert word in str(info.value)


def test_argument_errors(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="image folder .* does not exist"):
        data.image_folder(tmp_path / "missing")
    for kwargs, name in (({"image_size": 0}, "image_size"), ({"image_size": 2.5}, "image_size"),
                         ({"channels": 2}, "channels"), ({"channels": True}, "channels")):
        with pytest.raises(ValueError, match=f"fastnn.data.image_folder: argument '{name}'"):
            data.image_folder(tmp_path, **kwargs)


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastnn\[images\]"'):
        data.image_folder(tmp_path)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[images\]"'):
        data.load_images([tmp_path / "x.png"], 8, 1)


def test_load_images_keeps_order_and_skips_bad_files(tmp_path):
    written = write_tree(tmp_path, per_class=1, size=(9, 9))
    paths = list(written)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n")
    x, kept, skipped = data.load_images([paths[2], broken, paths[0]], 9, 3)
    assert kept == [paths[2], paths[0]] and [p for p, _ in skipped] == [str(broken)]
    np.testing.assert_array_equal(x[1], written[paths[0]].transpose(2, 0, 1) / np.float32(255))
    empty, kept, skipped = data.load_images([broken], 9, 1)
    assert empty.shape == (0, 1, 9, 9) and kept == [] and len(skipped) == 1
