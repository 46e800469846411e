"""Writers of the published dataset formats (IDX, CIFAR "python version" pickles in a tar.gz)
and a loopback HTTP server, shared by the dataset and command-line tests."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0, 0, 0x08 (unsigned byte), ndim, big-endian uint32 dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(root: Path, n_train: int = 30, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    """Four IDX files under the published names; returns the arrays and the files' SHA-256s."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if gz:
            payload, name = gzip.compress(payload), name + ".gz"
        (root / name).write_bytes(payload)
        digests[name] = "sha256:" + hashlib.sha256(payload).hexdigest()
    return {"arrays": arrays, "digests": digests}


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the published CIFAR batches were."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    def to_py2(o):
        if isinstance(o, str):
            return o.encode("latin1")
        if isinstance(o, dict):
            return {to_py2(k): to_py2(v) for k, v in o.items()}
        if isinstance(o, list):
            return [to_py2(v) for v in o]
        return o

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(to_py2(obj))
    # NumPy 1.x (which wrote the published files) names the rebuild function numpy.core...
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar10(root: Path, images: dict[str, np.ndarray], labels: dict[str, list[int]], archive: bool,
                  pickler=py2_pickle) -> None:
    """cifar-10-batches-py/ with the given batches (images (N, 3072) uint8), as a folder or a tar.gz."""
    files = {"batches.meta": pickler({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 10,
                                      "num_vis": 3072})}
    for name, x in images.items():
        files[name] = pickler({"batch_label": name, "data": x, "labels": labels[name],
                               "filenames": [f"{i}.png" for i in range(len(x))]})
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, payload in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    else:
        (root / "cifar-10-batches-py").mkdir()
        for name, payload in files.items():
            (root / "cifar-10-batches-py" / name).write_bytes(payload)


def small_cifar10(root: Path, archive: bool, n: int = 4, pickler=py2_pickle) -> tuple[dict, dict]:
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    images = {name: rng.integers(0, 256, (n, 3072), dtype=np.uint8) for name in names}
    labels = {name: rng.integers(0, 10, n).tolist() for name in names}
    write_cifar10(root, images, labels, archive, pickler)
    return images, labels


@pytest.fixture
def http_root(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


