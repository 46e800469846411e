"""Folders of image files (the torchvision ImageFolder layout), decoded with Pillow.

Layout: ``root/<class name>/<image files>``, one sub-folder per class; the folder names, sorted
(by code point, as torchvision sorts them), are the class names, so their order fixes the labels.
Optionally ``root/train/<class>/...`` and ``root/test/<class>/...`` hold a ready-made split.

Every image becomes a (C, H, W) float32 array in [0, 1] (pixel / 255), C = 1 (Pillow's "L",
ITU-R 601 luma) or 3 (RGB; an alpha channel is dropped). Resizing keeps the aspect ratio: the
shorter side is scaled to ``image_size`` (bilinear, antialiased when shrinking) and the longer
side is cut to it around the centre (torchvision's ``Resize(s)`` + ``CenterCrop(s)``), so
nothing is stretched and the centre of a non-square image is kept.

Decoded images are cached as one uint8 .npz per folder and setting, keyed by the file list,
sizes and modification times: a second load with the same files reads no image.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from fastnn._atomic import atomic_path
from fastnn.data.dataset import ArrayDataset
from fastnn.data.files import DatasetError, DatasetNotFoundError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
"""File name endings read as images (any letter case). Other files are listed in ``ignored``."""

CACHE_FOLDER = ".fastnn-cache"
"""The cache folder made inside ``root`` when no ``cache_dir`` is given."""

# Bumped whenever decoding changes what a cached array would hold.
_CACHE_VERSION = 1
# Pillow modes that hold one channel of gray; the 16-bit ones are scaled to 8 bits by hand
# because Pillow's convert("L") clips them at 255 instead of scaling.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_EXIF_ORIENTATION = 0x0112


class ImageFolderWarning(UserWarning):
    """Files under an image folder were skipped because they could not be decoded."""


class ImageFolderDataset(ArrayDataset):
    """An :class:`ArrayDataset` read from an image folder, with where each image came from.

    ``paths[i]`` is the file of image ``i``; ``skipped`` lists ``(path, reason)`` for files with
    an image ending that could not be decoded (truncated, empty, not an image); ``ignored``
    lists the files without an image ending (README.txt ...). Hidden files and folders (names
    starting with ".", such as .DS_Store and the cache folder) are passed over silently.
    ``ids[i]`` is image ``i``'s path relative to the folder :func:`image_folder` read
    (``cats/001.png``, or ``train/cats/001.png`` in a train/test folder): what an attribute
    table (``--attributes``) names it by.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: list[str], paths: list[str],
                 skipped: list[tuple[str, str]], ignored: list[str], top: Path | None = None) -> None:
        super().__init__(x, y, classes)
        self.paths, self.skipped, self.ignored, self.top = paths, skipped, ignored, top

    @property
    def ids(self) -> list[str]:
        """Each image's path relative to the folder that was read (POSIX separators)."""
        if self.top is None:
            return [Path(p).as_posix() for p in self.paths]
        return [Path(p).relative_to(self.top).as_posix() for p in self.paths]

    def subset(self, index: np.ndarray) -> "ImageFolderDataset":
        """The images at ``index`` (an index array), with their paths."""
        return ImageFolderDataset(self.x[index], self.y[index], list(self.classes),
                                  [self.paths[i] for i in index], self.skipped, self.ignored, self.top)


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError('fastnn.data.image_folder needs Pillow to decode images: pip install "fastnn[images]"') from e
    return Image


def _check_options(op: str, image_size: int | None, channels: int | None, size_required: bool = False) -> None:
    if image_size is None and not size_required:
        pass
    elif isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"fastnn.data.{op}: argument 'image_size' must be an int >= 1"
                         f"{'' if size_required else ' or None'}; got {image_size!r}")
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ValueError(f"fastnn.data.{op}: argument 'channels' must be 1, 3 or None; got {channels!r}")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path``'s name ends in one of :data:`IMAGE_EXTENSIONS` and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _decode(path: str, image_size: int | None, channels: int | None) -> np.ndarray:
    """One file as an (H, W, C) uint8 array, C = ``channels`` (None: 1 for gray files, else 3).
    Raises whatever Pillow raises for a file it cannot decode."""
    Image = _pillow()
    with Image.open(path) as img:
        if image_size is not None and img.format == "JPEG":
            img.draft(None, (image_size, image_size))  # decode at a reduced DCT scale, never below the size
        img.load()  # GIF and animated WebP: Image.open stands on the first frame
        if "exif" in img.info and img.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # a rotated camera picture
            from PIL import ImageOps

            img = ImageOps.exif_transpose(img)
        if img.mode in _WIDE_GRAY_MODES:
            wide = np.asarray(img, dtype=np.float32)
            img = Image.fromarray(np.clip(wide * np.float32(255 / 65535) + 0.5, 0, 255).astype(np.uint8), "L")
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # what Pillow asks for before such a palette is converted
        gray = channels == 1 or (channels is None and img.mode in _GRAY_MODES)
        if img.mode != ("L" if gray else "RGB"):
            img = img.convert("L" if gray else "RGB")
        if image_size is not None and img.size != (image_size, image_size):
            width, height = img.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR,
                             box=(left, top, left + side, top + side))
        pixels = np.asarray(img, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _decode_all(paths: Sequence[str], image_size: int | None,
                channels: int | None) -> tuple[list[np.ndarray], list[int], list[tuple[str, str]]]:
    """Decodes each file; returns the (H, W, C) arrays, the indexes of the files they came from,
    and ``(path, reason)`` for each file that could not be decoded."""
    arrays, kept, skipped = [], [], []
    for i, path in enumerate(paths):
        try:
            arrays.append(_decode(path, image_size, channels))
        # Any decoder failure is a property of that one file (Pillow raises OSError, ValueError,
        # SyntaxError, DecompressionBombError, struct.error ... depending on the format): it is
        # reported and skipped, so one bad file never loses the whole folder.
        except Exception as e:  # noqa: BLE001
            if os.path.isfile(path) and os.path.getsize(path) == 0:
                reason = "empty file (0 bytes)"
            elif type(e).__name__ == "UnidentifiedImageError":  # its message repeats the path
                reason = "not an image Pillow can decode"
            else:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            skipped.append((str(path), reason))
        else:
            kept.append(i)
    return arrays, kept, skipped


def _stack(op: str, arrays: list[np.ndarray], paths: Sequence[str]) -> np.ndarray:
    """(N, C, H, W) uint8 of (H, W, C) arrays: gray ones repeated to 3 channels when others are
    in colour; ValueError naming two files when the sizes differ (no ``image_size``)."""
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        first = arrays[0].shape[:2]
        other = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
        raise DatasetError(f"fastnn.data.{op}: the images differ in size ({paths[0]} is {first[1]}x{first[0]}, "
                         f"{paths[other]} is {arrays[other].shape[1]}x{arrays[other].shape[0]}); pass "
                         "image_size= (--image-size) to resize them all to one square size")
    channels = max(a.shape[2] for a in arrays)
    batch = np.stack([a if a.shape[2] == channels else np.repeat(a, channels, axis=2) for a in arrays])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def load_images(paths: Sequence[str | os.PathLike], image_size: int,
                channels: int) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Decodes image files as one (N, ``channels``, ``image_size``, ``image_size``) float32 batch
    in [0, 1], resized as the module docstring says.

    Returns the batch, the paths of its images (in order) and ``(path, reason)`` for each file
    that could not be decoded; those are skipped, never raised. ImportError naming the extra
    when Pillow is missing; ValueError for a bad ``image_size`` or ``channels``.
    """
    _check_options("load_images", image_size, channels, size_required=True)
    if channels is None:
        raise ValueError("fastnn.data.load_images: argument 'channels' must be 1 or 3; got None")
    _pillow()
    names = [os.fspath(p) for p in paths]
    arrays, kept, skipped = _decode_all(names, int(image_size), channels)
    if not arrays:
        return np.zeros((0, channels, image_size, image_size), np.float32), [], skipped
    return _to_float(_stack("load_images", arrays, names)), [names[i] for i in kept], skipped


def find_images(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """The image files named by ``paths``: files as given, folders walked (sorted, recursively,
    hidden names passed over) for files with an image ending. Returns (images, missing) where
    ``missing`` are the given paths that do not exist."""
    images, missing = [], []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                images.extend(os.path.join(folder, f) for f in sorted(files) if is_image_file(f))
        elif os.path.exists(path):
            images.append(path)
        else:
            missing.append(path)
    return images, missing


def _to_float(pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)  # correctly rounded k/255, as the MNIST reader and torchvision's ToTensor give
    return x


def _scan(op: str, root: Path) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """Class names, (image path, label) pairs and ignored files of one class-per-folder tree."""
    class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"fastnn.data.{op}: {root} holds no class folders; expected one sub-folder of images per "
                         "class (root/<class name>/<image files>)")
    files, ignored = [], [str(p) for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")]
    for label, name in enumerate(class_dirs):
        found = 0
        for folder, dirs, names in os.walk(root / name):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(names):
                path = os.path.join(folder, file)
                if is_image_file(file):
                    files.append((path, label))
                    found += 1
                elif not file.startswith("."):
                    ignored.append(path)
        if not found:
            raise DatasetError(f"fastnn.data.{op}: class folder {root / name} holds no image files "
                             f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images")
    return class_dirs, files, ignored


def _cache_key(files: list[tuple[str, int]], classes: list[str], image_size: int | None,
               channels: int | None) -> str:
    entries = []
    for path, label in files:
        st = os.stat(path)
        entries.append([path, label, st.st_size, st.st_mtime_ns])
    text = json.dumps([_CACHE_VERSION, image_size, channels, classes, entries], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) != key:
                return None
            return {name: cached[name] for name in cached.files}
    except Exception:  # noqa: BLE001 - missing, foreign or damaged: decode again and rewrite it
        return None


def _write_cache(op: str, path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:  # a read-only data folder still loads, only more slowly next time
        warnings.warn(f"fastnn.data.{op}: could not write the decoded-image cache {path}: {e}; pass cache_dir= "
                      "(--cache-dir) to a writable folder", ImageFolderWarning, stacklevel=4)


def _load_tree(op: str, root: Path, image_size: int | None, channels: int | None, cache_file: Path | None,
               classes: list[str] | None = None, top: Path | None = None) -> ImageFolderDataset:
    """One class-per-folder tree; ``classes`` (the training split's) fixes the labels of a test split."""
    found_classes, files, ignored = _scan(op, root)
    if classes is not None:
        extra = [c for c in found_classes if c not in classes]
        if extra:
            raise DatasetError(f"fastnn.data.{op}: {root} has class folders that train/ lacks: {', '.join(extra)}")
        files = [(path, classes.index(found_classes[label])) for path, label in files]
    else:
        classes = found_classes
    key = _cache_key(files, classes, image_size, channels) if cache_file is not None else ""
    cached = _read_cache(cache_file, key) if cache_file is not None else None
    if cached is not None:
        pixels, labels, paths = cached["pixels"], cached["labels"], [str(p) for p in cached["paths"]]
        skipped = [(str(p), str(r)) for p, r in zip(cached["skipped_paths"], cached["skipped_reasons"])]
    else:
        names = [path for path, _ in files]
        arrays, kept, skipped = _decode_all(names, image_size, channels)
        labels = np.array([files[i][1] for i in kept], dtype=np.int64)
        paths = [names[i] for i in kept]
        if not arrays:
            raise DatasetError(f"fastnn.data.{op}: none of the {len(files)} image files under {root} could be "
                             f"decoded (first: {skipped[0][0]}: {skipped[0][1]})")
        pixels = _stack(op, arrays, paths)
        if cache_file is not None:
            _write_cache(op, cache_file, {
                "key": np.array(key), "pixels": pixels, "labels": labels, "paths": np.array(paths, dtype=str),
                "skipped_paths": np.array([p for p, _ in skipped], dtype=str),
                "skipped_reasons": np.array([r for _, r in skipped], dtype=str)})
    empty = [classes[c] for c in range(len(classes)) if not np.any(labels == c)]
    if empty and classes is found_classes:
        raise DatasetError(f"fastnn.data.{op}: no image of class folder(s) {', '.join(empty)} under {root} could be "
                         "decoded; see the files skipped")
    if skipped:
        listed = "; ".join(f"{p} ({r})" for p, r in skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
        warnings.warn(f"fastnn.data.{op}: skipped {len(skipped)} of {len(files)} image files under {root} that "
                      f"could not be decoded: {listed}", ImageFolderWarning, stacklevel=3)
    return ImageFolderDataset(_to_float(pixels), labels, list(classes), paths, skipped, ignored, top)


def image_folder(root: str | os.PathLike, image_size: int | None = None, channels: int | None = None, *,
                 cache: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> tuple[ImageFolderDataset, ImageFolderDataset | None]:
    """(train, test) read from a folder of images, one sub-folder per class; ``test`` is None
    unless ``root`` holds ``train/`` and ``test/`` folders (each with the class sub-folders), so
    a caller without a ready-made split makes one, e.g. with :func:`fastnn.data.stratified_split`.

    - ``image_size``: resize every image to ``image_size`` x ``image_size`` (shorter side
      scaled, longer side centre-cropped: see the module docstring). None keeps each image's
      size, which must then be the same for all.
    - ``channels``: 1 (grayscale), 3 (RGB) or None: 1 when every image is gray, else 3.
    - Reads PNG, JPEG, BMP, GIF (its first frame) and WebP (where Pillow was built with it),
      recognised by their endings (:data:`IMAGE_EXTENSIONS`), in every folder below a class
      folder. Files with an image ending that cannot be decoded (truncated, empty, not an
      image) are skipped with one :class:`ImageFolderWarning` naming them and listed in the
      dataset's ``skipped``; other files (README.txt ...) are listed in ``ignored``; hidden names
      (.DS_Store, .git, the cache folder) are passed over.
    - ``cache``: keep the decoded pixels (uint8) in ``cache_dir`` (default: ``root/.fastnn-cache``)
      and reuse them while the files, their sizes and modification times, ``image_size`` and
      ``channels`` are unchanged. A cache folder that cannot be written only gives a warning.

    Returns :class:`ImageFolderDataset` objects: ``.x`` float32 (N, C, H, W) in [0, 1], ``.y``
    int64, ``.classes`` the sorted folder names (a test split uses the training split's). Raises
    DatasetNotFoundError when ``root`` does not exist; DatasetError (a ValueError) when it has no
    class folders, a class folder has no image, no image of a class decodes, the sizes differ
    without ``image_size``, or test/ has a class train/ lacks; ValueError for a bad
    ``image_size`` or ``channels``; ImportError naming ``fastnn[images]`` when Pillow is missing.
    """
    op = "image_folder"
    _check_options(op, image_size, channels)
    _pillow()
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"fastnn.data.{op}: image folder {root} does not exist")
    cache_root = Path(cache_dir) if cache_dir is not None else root / CACHE_FOLDER
    tag = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:12]

    def cache_file(split: str) -> Path | None:
        if not cache:
            return None
        return cache_root / f"images-{tag}-{split}-{image_size or 'native'}-{channels or 'auto'}.npz"

    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise DatasetError(f"fastnn.data.{op}: {root} has {present}/ but no {absent}/; a split needs both "
                         f"(root/train/<class>/..., root/test/<class>/...), a single set neither")
    if not has_train:
        return _load_tree(op, root, image_size, channels, cache_file("all"), top=root), None
    train = _load_tree(op, root / "train", image_size, channels, cache_file("train"), top=root)
    # The test split is read in the training split's channels, so both stack into one model.
    test_channels = channels if channels is not None else train.x.shape[1]
    test = _load_tree(op, root / "test", image_size, test_channels, cache_file("test"), classes=train.classes,
                      top=root)
    if test.x.shape[2:] != train.x.shape[2:]:
        raise DatasetError(f"fastnn.data.{op}: test/ images are {test.x.shape[3]}x{test.x.shape[2]}, train/ images "
                         f"{train.x.shape[3]}x{train.x.shape[2]}; pass image_size= (--image-size) to resize both")
    return train, test


__all__ = ["CACHE_FOLDER", "IMAGE_EXTENSIONS", "ImageFolderDataset", "ImageFolderWarning", "find_images",
           "image_folder", "is_image_file", "load_images"]
