"""MNIST and Fashion-MNIST from their published IDX files.

IDX layout (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), the number of
dimensions, then one uint32 per dimension and the values in C order. Images are
(N, 28, 28) uint8, labels (N,) uint8. Files may be gzipped (``.gz``, as published) or not.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from fastnn.data.dataset import ArrayDataset
from fastnn.data.files import Checksums, DatasetError, DatasetNotFoundError, local_or_download

MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# The dataset authors' bucket through S3's TLS endpoint (its website endpoint serves plain http only).
FASHION_MNIST_BASE_URL = "https://fashion-mnist.s3.eu-central-1.amazonaws.com/"

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"

# Digests of the published .gz files. SHA-256 where it is known for the published file; MD5
# (as listed by the dataset authors and torchvision) for the rest. Pass ``checksums=`` to pin
# a SHA-256 of your own.
KNOWN_CHECKSUMS: dict[str, dict[str, list[str]]] = {
    "digits": {
        "train-images-idx3-ubyte.gz": ["md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"],
        "train-labels-idx1-ubyte.gz": ["sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"],
        "t10k-images-idx3-ubyte.gz": ["sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"],
        "t10k-labels-idx1-ubyte.gz": ["sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"],
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": ["md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"],
        "train-labels-idx1-ubyte.gz": ["md5:25c81989df183df01b3e8a0aad5dffbe"],
        "t10k-images-idx3-ubyte.gz": ["md5:bef4ecab320f06d8554ea6380940ec79"],
        "t10k-labels-idx1-ubyte.gz": ["md5:bb300cfdad3c16e7a12a480ee83cd310"],
    },
}

_CLASSES = {
    "digits": [str(d) for d in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot"],
}
_BASE_URLS = {"digits": MNIST_BASE_URL, "fashion": FASHION_MNIST_BASE_URL}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped when its name ends in ``.gz``) as a uint8 array.

    Raises DatasetError naming the file when it is not IDX, not valid gzip, or its size
    disagrees with the dimensions in its header (truncated or padded).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(f"fastnn.data: {path} is not a valid gzip file (truncated or corrupt): {e}") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] == 0:
        raise DatasetError(f"fastnn.data: {path} is not an IDX file of unsigned bytes (header {raw[:4].hex()})")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(f"fastnn.data: {path} is truncated: {len(raw)} bytes, shorter than its IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = header_size + math.prod(dims)
    if len(raw) != expected:
        raise DatasetError(
            f"fastnn.data: {path} has {len(raw)} bytes but its IDX header {dims} needs {expected} "
            f"({'truncated' if len(raw) < expected else 'trailing data'})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def _locate(root: Path, name: str, kind: str, fetch: bool, base_url: str, checksums: Checksums | None) -> Path:
    """``root/name`` or ``root/name.gz``, downloading ``name.gz`` when neither exists and
    ``fetch`` is set."""
    gz = root / f"{name}.gz"
    raw = root / name
    return local_or_download(
        raw if raw.is_file() else gz, base_url.rstrip("/") + "/" + gz.name, KNOWN_CHECKSUMS[kind], checksums, fetch,
        f"fastnn.data.mnist: {root} has neither {name} nor {name}.gz (pass download=True to fetch them)")


def _load_split(root: Path, images: str, labels: str, kind: str, fetch: bool, base_url: str,
                checksums: Checksums | None) -> ArrayDataset:
    image_path = _locate(root, images, kind, fetch, base_url, checksums)
    label_path = _locate(root, labels, kind, fetch, base_url, checksums)
    x, y = read_idx(image_path), read_idx(label_path)
    if x.ndim != 3:
        raise DatasetError(f"fastnn.data: {image_path} must hold (N, H, W) images; its header says {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(
            f"fastnn.data: {label_path} must hold {x.shape[0]} labels to match {image_path.name}; it holds shape {y.shape}"
        )
    if y.size and int(y.max()) >= 10:
        raise DatasetError(f"fastnn.data: {label_path} has label {int(y.max())}; MNIST labels lie in 0..9")
    pixels = x.astype(np.float32)
    pixels /= np.float32(255.0)  # correctly rounded k/255, as torchvision's ToTensor gives
    return ArrayDataset(pixels[:, None, :, :], y, list(_CLASSES[kind]))


def mnist(root: str | Path, kind: str = "digits", download: bool = False, base_url: str | None = None,
          checksums: Checksums | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of MNIST (``kind="digits"``) or Fashion-MNIST (``kind="fashion"``) as
    (N, 1, 28, 28) float32 in [0, 1] with int64 labels.

    ``root`` holds the four files under their published names (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each
    gzipped (``.gz``) or not. With ``download=True`` missing files are fetched as ``.gz`` from
    ``base_url`` (default: the dataset's public mirror), verified against the published digests
    (or ``checksums={"<file>.gz": "sha256:<hex>"}``) and written atomically.

    Raises DatasetNotFoundError when files are missing, DatasetError (naming the file) when a
    file is corrupt, truncated or fails verification.
    """
    if kind not in _CLASSES:
        raise ValueError(f"fastnn.data.mnist: argument 'kind' must be 'digits' or 'fashion'; got {kind!r}")
    root = Path(root)
    if not download and not root.is_dir():
        raise DatasetNotFoundError(f"fastnn.data.mnist: data folder {root} does not exist (pass download=True to fetch it)")
    url = base_url or _BASE_URLS[kind]
    train = _load_split(root, TRAIN_IMAGES, TRAIN_LABELS, kind, download, url, checksums)
    test = _load_split(root, TEST_IMAGES, TEST_LABELS, kind, download, url, checksums)
    return train, test
