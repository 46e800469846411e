"""Fuzzing the file parsers (hypothesis) on mutated real-format files: IDX (plain and gzip),
CIFAR "python version" pickles, the CIFAR .tar.gz, and fastnn checkpoints.

Each iteration writes a valid file made in the test, damages it (flipped and overwritten bytes,
truncation, inserted junk, a rewritten length field) and parses it. The parser must either
return data of the promised form or raise its documented error (DatasetError /
CheckpointError, both ValueErrors naming the file): no other exception, no crash, no hang. The
iterations run in a child interpreter with a time limit (see test_fuzz_ops.run_in_child), so a
crash or a hang fails the test. ``FASTNN_FUZZ_EXAMPLES=N`` runs more.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataset_files import idx_bytes, py2_pickle, small_cifar10
from test_fuzz_ops import run_in_child


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` with a few random edits."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "int32"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # a length or dimension field becomes huge, zero or negative
            value = draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**31]))
            data[at:at + 4] = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
    return bytes(data)


def _fuzz(examples: int, original: bytes, parse, expected: type) -> int:
    """Runs ``parse(damaged bytes)`` ``examples`` times; only ``expected`` may be raised."""
    count = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(damaged(original))
    def prop(blob: bytes) -> None:
        nonlocal count
        count += 1
        try:
            parse(blob)
        except expected as e:
            assert "fastnn" in str(e), f"error does not name fastnn: {e}"

    prop()
    return count


def fuzz_idx(examples: int) -> int:
    from fastnn.data.mnist import read_idx

    original = idx_bytes(np.random.default_rng(0).integers(0, 256, (3, 5, 4), dtype=np.uint8))
    from fastnn.data.files import DatasetError

    with tempfile.TemporaryDirectory() as folder:
        plain, packed = Path(folder) / "x-idx3-ubyte", Path(folder) / "x-idx3-ubyte.gz"

        def parse(blob: bytes) -> None:
            plain.write_bytes(blob)
            x = read_idx(plain)
            assert x.dtype == np.uint8 and 4 + 4 * x.ndim + x.size == len(blob)

        def parse_gz(blob: bytes) -> None:
            packed.write_bytes(blob)
            read_idx(packed)

        return (_fuzz(examples, original, parse, DatasetError)
                + _fuzz(examples, gzip.compress(original), parse_gz, DatasetError))


def fuzz_cifar_pickle(examples: int) -> int:
    from fastnn import data
    from fastnn.data.files import DatasetError

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        small_cifar10(root, archive=False, n=2)
        batch = root / "cifar-10-batches-py" / "data_batch_1"
        original = batch.read_bytes()

        def parse(blob: bytes) -> None:
            batch.write_bytes(blob)
            train, _ = data.cifar10(root)
            assert train.x.dtype == np.float32 and train.x.shape[1:] == (3, 32, 32)

        return _fuzz(examples, original, parse, DatasetError)


def fuzz_cifar_tar(examples: int) -> int:
    from fastnn import data
    from fastnn.data.files import DatasetError

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source"
        small_cifar10(source, archive=True, n=2)
        original = (source / "cifar-10-python.tar.gz").read_bytes()
        work = Path(folder) / "work"

        def parse(blob: bytes) -> None:
            if work.exists():
                import shutil

                shutil.rmtree(work)
            work.mkdir()
            (work / "cifar-10-python.tar.gz").write_bytes(blob)
            data.cifar10(work)

        return _fuzz(examples, original, parse, DatasetError)


def fuzz_checkpoint(examples: int) -> int:
    import fastnn
    from fastnn import nn

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ck.zip"
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
        fastnn.save(path, model, epoch=3, history={"records": [{"loss": float("nan")}]})
        original = path.read_bytes()

        def parse(blob: bytes) -> None:
            path.write_bytes(blob)
            fastnn.load(path)

        return _fuzz(examples, original, parse, fastnn.CheckpointError)


EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", "100"))


@pytest.mark.parametrize("parser", ["fuzz_idx", "fuzz_cifar_pickle", "fuzz_cifar_tar", "fuzz_checkpoint"])
def test_damaged_files_give_only_clear_errors(parser):
    iterations = run_in_child("test_fuzz_parsers", parser, EXAMPLES, timeout=300)
    print(f"\n{parser}: {iterations} damaged files parsed")
    assert iterations >= EXAMPLES


def test_pickle_with_a_huge_length_field_is_refused_without_allocating(tmp_path):
    # Regression (found by fuzz_cifar_pickle): the unpickler read from the open file, which
    # allocates whatever a damaged length field asks for, and raised a bare MemoryError.
    import pickle
    import struct

    from fastnn.data.cifar import load_pickle
    from fastnn.data.files import DatasetError

    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x04" + pickle.BINBYTES8 + struct.pack("<Q", 2**60) + b"abc")
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_pickle(path)
