"""CIFAR-10 and CIFAR-100, "python version", as published.

The archives hold pickled dicts (written by Python 2): ``data`` is an (N, 3072) uint8 array of
R, G, B planes of 32x32 images, labels are lists of ints. Pickle can run arbitrary code, so the
batches are read with an unpickler that admits only the globals those files use (NumPy's array
and dtype reconstruction) and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.data.dataset import ArrayDataset
from fastnn.data.files import Checksums, DatasetError, DatasetNotFoundError, local_or_download, safe_extract

CIFAR_BASE_URL = "https://www.cs.toronto.edu/~kriz/"

# The published archives' MD5s (from the dataset page, as torchvision lists them).
KNOWN_CHECKSUMS: dict[str, list[str]] = {
    "cifar-10-python.tar.gz": ["md5:c58f30108f718f92721af3b95e74349a"],
    "cifar-100-python.tar.gz": ["md5:eb9058c3a382ffc7106e4002c42a8d85"],
}

_LAYOUTS = {
    10: dict(archive="cifar-10-python.tar.gz", folder="cifar-10-batches-py",
             train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
             meta="batches.meta"),
    100: dict(archive="cifar-100-python.tar.gz", folder="cifar-100-python", train=["train"], test=["test"],
              meta="meta"),
}


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes;
    only the latin-1 round trip is admitted."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError("refusing _codecs.encode other than str -> latin1 bytes")
    return text.encode("latin1")


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    # The array rebuild functions, taken from what NumPy itself pickles (no private imports);
    # files written by NumPy 1.x name them under numpy.core, NumPy 2.x under numpy._core.
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): _latin1_encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Builtin containers, strings, numbers and NumPy arrays; nothing else."""

    _allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_pickle(path: Path) -> Any:
    """Unpickles a CIFAR batch with the restricted unpickler; DatasetError naming the file when
    it is corrupt, truncated or asks for anything outside the allowed set."""
    payload = Path(path).read_bytes()
    try:
        # CPython's unpickler allocates what a string's length field says before reading it, so
        # a damaged length (up to 2^64) would be a huge allocation. pickletools walks the
        # opcodes in Python and checks each length against the bytes actually there first.
        for _ in pickletools.genops(io.BytesIO(payload)):
            pass
        return _RestrictedUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, struct.error) as e:
        # MemoryError: a damaged array header asking for an impossible shape.
        raise DatasetError(f"fastnn.data: cannot read {path}: {type(e).__name__}: {e}") from e


def _read_batches(folder: Path, names: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DatasetNotFoundError(f"fastnn.data: {path} is missing")
        batch = load_pickle(path)
        data = batch.get("data") if isinstance(batch, dict) else None
        batch_labels = batch.get(label_key) if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DatasetError(f"fastnn.data: {path} must hold 'data' as an (N, 3072) uint8 array")
        if not isinstance(batch_labels, (list, np.ndarray)) or len(batch_labels) != data.shape[0]:
            raise DatasetError(f"fastnn.data: {path} must hold {data.shape[0]} '{label_key}'")
        images.append(data)
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _to_dataset(data: np.ndarray, labels: np.ndarray, classes: list[str], where: Path) -> ArrayDataset:
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DatasetError(f"fastnn.data: labels in {where} lie outside 0..{len(classes) - 1}")
    pixels = data.reshape(-1, 3, 32, 32).astype(np.float32)
    pixels /= np.float32(255.0)  # correctly rounded k/255, as torchvision's ToTensor gives
    return ArrayDataset(pixels, labels, classes)


def _find_folder(root: Path, layout: dict, fetch: bool, base_url: str, checksums: Checksums | None) -> Path:
    """The extracted batches folder: ``root`` itself, ``root/<folder>``, or extracted from
    ``root/<archive>`` (downloaded first when ``fetch``)."""
    if (root / layout["meta"]).is_file():
        return root
    if (root / layout["folder"]).is_dir():
        return root / layout["folder"]
    archive = local_or_download(
        root / layout["archive"], base_url.rstrip("/") + "/" + layout["archive"], KNOWN_CHECKSUMS, checksums, fetch,
        f"fastnn.data: {root} holds neither {layout['folder']}/ nor {layout['archive']} (pass download=True to fetch it)")
    return safe_extract(archive, root, layout["folder"])


def _cifar(num_classes: int, root: str | Path, download: bool, base_url: str | None, checksums: Checksums | None,
           label_key: str, names_key: str) -> tuple[ArrayDataset, ArrayDataset]:
    layout = _LAYOUTS[num_classes]
    root = Path(root)
    if not download and not root.is_dir():
        raise DatasetNotFoundError(f"fastnn.data: data folder {root} does not exist (pass download=True to fetch it)")
    root.mkdir(parents=True, exist_ok=True)
    folder = _find_folder(root, layout, download, base_url or CIFAR_BASE_URL, checksums)
    meta_path = folder / layout["meta"]
    if not meta_path.is_file():
        raise DatasetNotFoundError(f"fastnn.data: {meta_path} is missing")
    meta = load_pickle(meta_path)
    classes = meta.get(names_key) if isinstance(meta, dict) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f"fastnn.data: {meta_path} must hold the list '{names_key}'")
    train = _to_dataset(*_read_batches(folder, layout["train"], label_key), classes, folder)
    test = _to_dataset(*_read_batches(folder, layout["test"], label_key), classes, folder)
    return train, test


def cifar10(root: str | Path, download: bool = False, base_url: str | None = None,
            checksums: Checksums | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of CIFAR-10 as (N, 3, 32, 32) float32 in [0, 1] (50,000 / 10,000 images).

    ``root`` holds ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py/`` (or is
    that folder). An archive is extracted once, safely (no absolute paths, '..' or links) and
    atomically. ``download=True`` fetches the archive from ``base_url`` and verifies its
    published MD5 (or ``checksums={"cifar-10-python.tar.gz": "sha256:<hex>"}``) first.
    """
    return _cifar(10, root, download, base_url, checksums, "labels", "label_names")


def cifar100(root: str | Path, download: bool = False, base_url: str | None = None,
             checksums: Checksums | None = None, labels: str = "fine") -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of CIFAR-100 like :func:`cifar10`, from ``cifar-100-python.tar.gz`` or
    ``cifar-100-python/``; ``labels="fine"`` (100 classes) or ``"coarse"`` (20 superclasses)."""
    if labels not in ("fine", "coarse"):
        raise ValueError(f"fastnn.data.cifar100: argument 'labels' must be 'fine' or 'coarse'; got {labels!r}")
    return _cifar(100, root, download, base_url, checksums, f"{labels}_labels", f"{labels}_label_names")
