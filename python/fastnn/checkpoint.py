"""Checkpoints: one versioned file holding weights, buffers, optimizer state, schedule
position, epoch, RNG state and anything else a run needs to continue exactly.

Format (no pickle, so loading a file cannot run code): a zip archive of

* ``meta.json``: ``{"format": "fastnn-checkpoint", "version": 1, "fastnn": <version>,
  "arrays": {name: {"sha256", "shape", "dtype"}}, "tree": <the saved object tree>}``
* ``arrays/<name>.npy``: one NumPy array each, read back with ``allow_pickle=False``.

The tree is JSON with a few tagged forms for what JSON lacks: ``{"$array": name}``,
``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}`` (dicts with non-string keys) and
``{"$float": "nan"}`` (non-finite floats). Files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fastnn._atomic import atomic_path

FORMAT = "fastnn-checkpoint"
VERSION = 1
_META = "meta.json"
_RESERVED = ("model", "optimizer", "rng_state")


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted, not a fastnn checkpoint, from a newer format,
    or does not match the model/optimizer it is restored into. The message names the file."""


class _Encoder:
    """Turns an object tree into JSON-able data, collecting its arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, np.bool_, str)):
            return bool(obj) if isinstance(obj, np.bool_) else obj
        if isinstance(obj, (int, np.integer)):
            return int(obj)
        if isinstance(obj, (float, np.floating)):
            value = float(obj)
            return value if math.isfinite(value) else {"$float": repr(value)}
        if hasattr(obj, "__cuda_array_interface__") and hasattr(obj, "get"):
            obj = obj.get()  # CuPy array: store its host copy
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "biuf":
                raise TypeError(f"fastnn.save: cannot store an array of dtype {obj.dtype} at {where}")
            name = f"a{len(self.arrays)}"
            self.arrays[name] = obj
            return {"$array": name}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in obj):
                return {k: self.encode(v, f"{where}.{k}") for k, v in obj.items()}
            return {"$dict": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in obj.items()]}
        if hasattr(obj, "state_dict"):
            return self.encode(obj.state_dict(), where)
        raise TypeError(f"fastnn.save: cannot store a {type(obj).__name__} at {where}")


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "$array" in node:
        return arrays[node["$array"]]
    if "$tuple" in node:
        return tuple(_decode(v, arrays) for v in node["$tuple"])
    if "$dict" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["$dict"]}
    if "$float" in node:
        return float(node["$float"])
    return {k: _decode(v, arrays) for k, v in node.items()}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # Not np.ascontiguousarray: it turns a 0-d array (a BatchNorm batch count) into shape (1,),
    # which then fails the shape check on load.
    np.save(buffer, np.require(array, requirements="C"), allow_pickle=False)
    return buffer.getvalue()


def save(path: str | os.PathLike, model: Any, optimizer: Any = None, **extra: Any) -> Path:
    """Writes ``model``'s parameters and buffers, ``optimizer``'s state, fastnn's global RNG
    state and every ``extra`` value into one file at ``path``, atomically.

    Extra values may be numbers, strings, lists, tuples, dicts, NumPy arrays, or objects with a
    ``state_dict()`` (a schedule, a DataLoader), whose state dict is stored. Returns the path.
    """
    from fastnn.random import get_rng_state

    for key in extra:
        if key in _RESERVED:
            raise ValueError(f"fastnn.save: '{key}' is reserved; pass it under another name")
    encoder = _Encoder()
    tree = {
        "model": encoder.encode(model.state_dict(), "model"),
        "optimizer": encoder.encode(optimizer.state_dict() if optimizer is not None else None, "optimizer"),
        "rng_state": encoder.encode(get_rng_state(), "rng_state"),
        **{k: encoder.encode(v, k) for k, v in extra.items()},
    }
    payloads = {name: _npy_bytes(a) for name, a in encoder.arrays.items()}
    from fastnn import __version__

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "fastnn": __version__,
        "arrays": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(encoder.arrays[name].shape),
                   "dtype": encoder.arrays[name].dtype.str}
            for name, data in payloads.items()
        },
        "tree": tree,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_META, json.dumps(meta))
            for name, data in payloads.items():
                archive.writestr(f"arrays/{name}.npy", data)
    return path


def _read_meta(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(archive.read(_META))
    except KeyError:
        raise CheckpointError(f"fastnn.load: {path} is a zip archive but not a fastnn checkpoint (no {_META})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: absurd nesting
        raise CheckpointError(f"fastnn.load: {path}: {_META} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"fastnn.load: {path} is not a fastnn checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"fastnn.load: {path} is not a fastnn checkpoint")
    if not isinstance(meta.get("arrays", {}), dict) or not all(isinstance(v, dict) for v in meta.get("arrays", {}).values()):
        raise CheckpointError(f"fastnn.load: {path}: {_META} has a malformed 'arrays' record")
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"fastnn.load: {path} has checkpoint format version {version!r}; this fastnn reads "
                              f"versions up to {VERSION} (upgrade fastnn)")
    return meta


def _read_array(archive: zipfile.ZipFile, path: Path, name: str, info: dict[str, Any]) -> np.ndarray:
    member = f"arrays/{name}.npy"
    try:
        data = archive.read(member)
    except KeyError:
        raise CheckpointError(f"fastnn.load: {path} lacks {member} (incomplete checkpoint)") from None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise CheckpointError(f"fastnn.load: {path}: {member} fails its SHA-256 check (corrupted)")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise CheckpointError(f"fastnn.load: {path}: {member} is not a plain array ({e})") from e
    if list(array.shape) != info.get("shape") or array.dtype.str != info.get("dtype"):
        raise CheckpointError(f"fastnn.load: {path}: {member} has shape {array.shape} {array.dtype}, "
                              f"its record says {info.get('shape')} {info.get('dtype')}")
    return array


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save`: ``{"model": state dict, "optimizer": state
    dict or None, "rng_state": ..., **extra}`` (plus ``"format_version"``). Every array is
    checked against its SHA-256.

    Raises FileNotFoundError for a missing file and CheckpointError for a truncated, corrupted
    or foreign one. Use :func:`restore` to put the state back into live objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fastnn.load: no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = _read_meta(archive, path)
            arrays = {name: _read_array(archive, path, name, info) for name, info in meta.get("arrays", {}).items()}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(f"fastnn.load: {path} is not a readable fastnn checkpoint (truncated, corrupted or "
                              f"another kind of file): {e}") from e
    try:
        tree = _decode(meta["tree"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"fastnn.load: {path}: malformed checkpoint tree ({e!r})") from e
    if not isinstance(tree, dict) or "model" not in tree:
        raise CheckpointError(f"fastnn.load: {path}: the checkpoint holds no model state")
    tree["format_version"] = meta["version"]
    return tree


def restore(checkpoint: str | os.PathLike | dict[str, Any], model: Any, optimizer: Any = None,
            rng: bool = True, **stateful: Any) -> dict[str, Any]:
    """Loads a checkpoint (a path or what :func:`load` returned) into ``model``, ``optimizer``,
    fastnn's global RNG (unless ``rng=False``) and each ``name=object`` in ``stateful`` (objects
    with ``load_state_dict``, restored from the extra saved under the same name).

    Returns the checkpoint dict. Raises CheckpointError when the state does not fit.
    """
    from fastnn.random import set_rng_state

    where = checkpoint if not isinstance(checkpoint, dict) else "checkpoint"
    ck = load(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    targets = [("model", model)] + ([("optimizer", optimizer)] if optimizer is not None else []) + list(stateful.items())
    for name, target in targets:
        if ck.get(name) is None:
            raise CheckpointError(f"fastnn.restore: {where} holds no '{name}' state")
        try:
            target.load_state_dict(ck[name])
        except (KeyError, ValueError, TypeError, IndexError) as e:
            detail = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError's str() adds quotes
            raise CheckpointError(f"fastnn.restore: {where}: the saved '{name}' does not match: {detail}") from e
    if rng:
        set_rng_state(ck["rng_state"])
    return ck
