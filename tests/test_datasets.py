"""Dataset readers on files written here in the published formats (IDX raw and gzipped, CIFAR
"python version" pickles inside a tar.gz), downloads against a loopback HTTP server, checksum
and corruption paths, the restricted unpickler and safe tar extraction. Optional checks on the
real data in ../shared/data (or $FASTNN_REAL_DATA) skip where it is absent."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastnn import data
from fastnn.data import cifar as cifar_module
from fastnn.data.files import DatasetError, DatasetNotFoundError

from dataset_files import http_root, idx_bytes, py2_pickle, small_cifar10, write_cifar10, write_mnist  # noqa: F401 (fixture)

# fastnn.data.mnist is the function; the module of the same name holds the published digests.
mnist_module = importlib.import_module("fastnn.data.mnist")

REAL_DATA = Path(os.environ.get("FASTNN_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a failed write might leave."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


# --- IDX / MNIST ------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    train, test = data.mnist(tmp_path)
    assert train.x.shape == (30, 1, 28, 28) and train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert test.x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(train.x[:, 0], written["arrays"]["train-images-idx3-ubyte"] / np.float32(255))
    np.testing.assert_array_equal(test.y, written["arrays"]["t10k-labels-idx1-ubyte"])
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0


def test_fashion_mnist_has_class_names(tmp_path):
    write_mnist(tmp_path)
    train, _ = data.mnist(tmp_path, kind="fashion")
    assert train.classes[0] == "T-shirt/top" and train.num_classes == 10
    with pytest.raises(ValueError, match="'kind'"):
        data.mnist(tmp_path, kind="letters")


def test_mnist_missing_folder_and_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        data.mnist(tmp_path / "nowhere")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.mnist(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: gzip.compress(raw[:-100]), "truncated"),        # IDX body cut short
    (lambda raw: gzip.compress(raw + b"xx"), "trailing data"),    # extra bytes
    (lambda raw: gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]), "not an IDX file"),  # float type byte
    (lambda raw: gzip.compress(raw)[:-30], "not a valid gzip"),   # gzip stream cut short
    (lambda raw: b"garbage" * 10, "not a valid gzip"),
])
def test_corrupt_idx_names_the_file(tmp_path, damage, message):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(gzip.decompress(path.read_bytes())))
    with pytest.raises(DatasetError, match=message) as info:
        data.mnist(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def test_mnist_rejects_mismatched_counts_and_labels(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, np.uint8)))
    with pytest.raises(DatasetError, match="30 labels"):
        data.mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(30, 12, np.uint8)))
    with pytest.raises(DatasetError, match="label 12"):
        data.mnist(tmp_path)


def test_mnist_download_verifies_and_writes_atomically(tmp_path, http_root):
    served, url = http_root
    written = write_mnist(served)
    root = tmp_path / "mnist"
    train, test = data.mnist(root, download=True, base_url=url, checksums=written["digests"])
    assert len(train) == 30 and len(test) == 20
    assert sorted(p.name for p in root.iterdir()) == sorted(written["digests"])
    np.testing.assert_array_equal(test.y, written["arrays"]["t10k-labels-idx1-ubyte"])


def test_download_checksum_mismatch_leaves_nothing(tmp_path, http_root):
    served, url = http_root
    written = write_mnist(served)
    root = tmp_path / "mnist"
    # Without the caller's digests, the published ones apply: generated files cannot match.
    with pytest.raises(DatasetError, match="failed verification"):
        data.mnist(root, download=True, base_url=url)
    assert list(root.iterdir()) == []
    # A file truncated in transit fails its digest too, and leaves no partial file.
    payload = (served / "train-images-idx3-ubyte.gz").read_bytes()
    (served / "train-images-idx3-ubyte.gz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz.*sha256"):
        data.mnist(root, download=True, base_url=url, checksums=written["digests"])
    assert list(root.iterdir()) == []


def test_download_http_error_names_url(tmp_path, http_root):
    _, url = http_root
    with pytest.raises(DatasetError, match="could not download .*train-images-idx3-ubyte.gz"):
        data.mnist(tmp_path / "m", download=True, base_url=url, checksums={"train-images-idx3-ubyte.gz": "0" * 64})
    assert leftovers(tmp_path / "m") == []


def test_local_files_verified_against_given_checksums(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DatasetError, match="failed verification"):
        data.mnist(tmp_path, checksums={"t10k-images-idx3-ubyte.gz": "md5:" + "0" * 32})
    with pytest.raises(ValueError, match="neither"):
        data.mnist(tmp_path, checksums={"t10k-images-idx3-ubyte.gz": "abc"})


# --- CIFAR ------------------------------------------------------------------------------------

@pytest.mark.parametrize("archive", [True, False])
def test_cifar10_reads_python_version(tmp_path, archive):
    images, labels = small_cifar10(tmp_path, archive)
    train, test = data.cifar10(tmp_path)
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (4, 3, 32, 32) and train.x.dtype == np.float32
    # data rows are R, G, B planes of 32x32 in row-major order
    np.testing.assert_array_equal(test.x[0, 1, 2, 3], images["test_batch"][0, 1024 + 2 * 32 + 3] / np.float32(255))
    np.testing.assert_array_equal(train.y[4:8], labels["data_batch_2"])
    assert train.classes[3] == "class3"
    assert (tmp_path / "cifar-10-batches-py").is_dir() and leftovers(tmp_path) == []


def test_cifar10_root_may_be_the_extracted_folder(tmp_path):
    small_cifar10(tmp_path, archive=False)
    train, _ = data.cifar10(tmp_path / "cifar-10-batches-py")
    assert len(train) == 20


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_accepts_python3_pickles(tmp_path, protocol):
    small_cifar10(tmp_path, archive=False, pickler=lambda obj: pickle.dumps(obj, protocol=protocol))
    train, test = data.cifar10(tmp_path)
    assert len(train) == 20 and len(test) == 4


def test_cifar100_fine_and_coarse_labels(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "meta").write_bytes(py2_pickle({"fine_label_names": [f"f{i}" for i in range(100)],
                                              "coarse_label_names": [f"c{i}" for i in range(20)]}))
    for name, n in (("train", 6), ("test", 3)):
        (folder / name).write_bytes(py2_pickle({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                                "fine_labels": rng.integers(0, 100, n).tolist(),
                                                "coarse_labels": rng.integers(0, 20, n).tolist()}))
    train, test = data.cifar100(tmp_path)
    assert train.num_classes == 100 and test.x.shape == (3, 3, 32, 32)
    coarse, _ = data.cifar100(tmp_path, labels="coarse")
    assert coarse.num_classes == 20 and coarse.y.max() < 20


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_other_globals(tmp_path):
    small_cifar10(tmp_path, archive=False)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({"data": _Exploit(), "labels": []}, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_3.*refusing to load global (posix|os|nt)\.system"):
        data.cifar10(tmp_path)
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float64), "labels": [0, 1]}))
    with pytest.raises(DatasetError, match="uint8"):
        data.cifar10(tmp_path)
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})[:-20])
    with pytest.raises(DatasetError, match="data_batch_3"):
        data.cifar10(tmp_path)


def _tar_with(root: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> None:
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        if member.isfile():
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        else:
            tar.addfile(member)


@pytest.mark.parametrize("name, kind, message", [
    ("/absolute/evil", tarfile.REGTYPE, "unsafe path"),
    ("cifar-10-batches-py/../../evil", tarfile.REGTYPE, "unsafe path"),
    ("cifar-10-batches-py/link", tarfile.SYMTYPE, "link member"),
    ("cifar-10-batches-py/hard", tarfile.LNKTYPE, "link member"),
    ("cifar-10-batches-py/fifo", tarfile.FIFOTYPE, "special member"),
])
def test_tar_extraction_refuses_unsafe_members(tmp_path, name, kind, message):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/outside/the/target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    _tar_with(tmp_path, member)
    with pytest.raises(DatasetError, match=message):
        data.cifar10(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing extracted
    assert not (tmp_path.parent / "evil").exists()


def test_truncated_archive_is_reported(tmp_path):
    small_cifar10(tmp_path, archive=True)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz"):
        data.cifar10(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_cifar_download(tmp_path, http_root):
    served, url = http_root
    small_cifar10(served, archive=True)
    digest = "sha256:" + hashlib.sha256((served / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="md5"):  # the published MD5 rejects a generated archive
        data.cifar10(tmp_path / "c", download=True, base_url=url)
    train, _ = data.cifar10(tmp_path / "c", download=True, base_url=url,
                            checksums={"cifar-10-python.tar.gz": digest})
    assert len(train) == 20
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        data.cifar10(tmp_path / "empty", download=False)


# --- real data (optional) ---------------------------------------------------------------------

needs_real_mnist = pytest.mark.skipif(not (REAL_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                      reason="real MNIST files not found (set FASTNN_REAL_DATA)")


@needs_real_mnist
def test_real_mnist_files_match_known_checksums_over_http(tmp_path, http_root):
    from fastnn.data.files import download, expected_digests

    served, url = http_root
    known = mnist_module.KNOWN_CHECKSUMS["digits"]
    present = [name for name in known if (REAL_DATA / "mnist" / name).is_file()]
    for name in present:
        (served / name).write_bytes((REAL_DATA / "mnist" / name).read_bytes())
        download(url + name, tmp_path / name, expected_digests(name, known, None))  # the published digests
    images = data.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the published test set's first labels
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]


needs_real_cifar = pytest.mark.skipif(not (REAL_DATA / "cifar10" / "test_first1000.npz").is_file(),
                                      reason="real CIFAR-10 arrays not found (set FASTNN_REAL_DATA)")


@needs_real_cifar
def test_real_cifar10_images_round_trip(tmp_path):
    real = np.load(REAL_DATA / "cifar10" / "test_first1000.npz")
    x_hwc, y = real["x"][:200], real["y"][:200].astype(int).tolist()
    rows = x_hwc.transpose(0, 3, 1, 2).reshape(200, 3072)  # the published layout: R, G, B planes
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    write_cifar10(tmp_path, {n: rows for n in names}, {n: y for n in names}, archive=True)
    _, test = data.cifar10(tmp_path)
    assert y[:10] == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    np.testing.assert_array_equal(np.rint(test.x * 255).astype(np.uint8), x_hwc.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(test.y, y)


def test_known_checksums_are_well_formed():
    from fastnn.data.files import parse_digest

    for table in (*mnist_module.KNOWN_CHECKSUMS.values(), cifar_module.KNOWN_CHECKSUMS):
        for name, digests in table.items():
            assert name.endswith((".gz",)) and digests
            for d in digests:
                parse_digest(d)


def test_digits_read_from_scikit_learns_file_equal_load_digits():
    # fastnn reads scikit-learn's digits.csv.gz itself (importing scikit-learn costs ~2 s); the
    # images and labels must be exactly what load_digits gives, in its order.
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits data ships inside scikit-learn")
    from fastnn.data.digits import _load_digits

    x, y = _load_digits()
    bunch = datasets.load_digits()
    np.testing.assert_array_equal(x, (bunch.images.astype(np.float32) / 16.0)[:, None])
    np.testing.assert_array_equal(y, bunch.target)
    assert x.dtype == np.float32 and y.dtype == np.int64


def test_digits_without_scikit_learn_say_which_extra_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"fastnn\.data\.digits needs scikit-learn.*fastnn\[digits\]"):
        data.digits()
