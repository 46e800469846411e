"""Files under a dataset folder: errors, checksums, atomic downloads and safe tar extraction.

Every file that arrives from the network is written to a temporary file in the destination
folder, hashed while it streams, checked against its expected digest and only then renamed into
place (``os.replace`` is atomic within one file system). A failed or interrupted download
therefore never leaves a partial file under the published name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from fastnn._atomic import atomic_path

# A digest is "<algorithm>:<hex>" or a bare hex string (64 hex digits: SHA-256, 32: MD5).
Checksums = Mapping[str, str]

_CHUNK = 1 << 20


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, truncated, fails verification or is unsafe to read.
    The message names the file."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset folder or one of its files does not exist (and ``download`` was not asked)."""


def parse_digest(digest: str) -> tuple[str, str]:
    """``"sha256:ab..."`` / ``"md5:ab..."`` / bare hex (algorithm from its length) -> (algorithm, hex)."""
    text = digest.strip().lower()
    if ":" in text:
        algorithm, hexdigest = text.split(":", 1)
    else:
        algorithm, hexdigest = {64: "sha256", 32: "md5"}.get(len(text), "?"), text
    expected_len = {"sha256": 64, "md5": 32}.get(algorithm)
    if expected_len is None or len(hexdigest) != expected_len or any(c not in "0123456789abcdef" for c in hexdigest):
        raise ValueError(f"fastnn.data: checksum {digest!r} is neither 'sha256:<64 hex>' nor 'md5:<32 hex>'")
    return algorithm, hexdigest


def file_digests(path: str | os.PathLike) -> dict[str, str]:
    """SHA-256 and MD5 of a file, in one pass."""
    with open(path, "rb") as f:
        return _digest_stream(f, sink=None)


def _digest_stream(src: BinaryIO, sink: BinaryIO | None, progress=None) -> dict[str, str]:
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    while chunk := src.read(_CHUNK):
        for h in hashes.values():
            h.update(chunk)
        if sink is not None:
            sink.write(chunk)
        if progress is not None:
            progress.update(len(chunk))
    return {name: h.hexdigest() for name, h in hashes.items()}


def verify_digests(name: str, actual: Mapping[str, str], expected: list[str]) -> None:
    """Raises DatasetError unless every expected digest matches."""
    for digest in expected:
        algorithm, hexdigest = parse_digest(digest)
        if actual[algorithm] != hexdigest:
            raise DatasetError(
                f"fastnn.data: {name} failed verification: {algorithm} is {actual[algorithm]}, "
                f"expected {hexdigest} (corrupt or different file)"
            )


def expected_digests(filename: str, known: Mapping[str, list[str]], override: Checksums | None) -> list[str]:
    """The digests a file must match: the caller's (``checksums={filename: digest}``) when
    given, else the published ones fastnn knows."""
    if override is not None and filename in override:
        return [override[filename]]
    return list(known.get(filename, []))


def download(url: str, dest: Path, expected: list[str]) -> None:
    """Fetches ``url`` into ``dest`` atomically, verifying ``expected`` digests first.

    Raises DatasetError (naming the URL or file) on network errors and checksum mismatches; in
    either case nothing is left at ``dest`` or beside it.
    """
    import http.client
    import urllib.error
    import urllib.request

    if not expected:
        raise DatasetError(f"fastnn.data: no checksum known for {dest.name}; pass checksums={{{dest.name!r}: ...}}")
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as sink:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with _download_progress(dest.name, total) as bar:
                        actual = _digest_stream(response, sink, bar)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise DatasetError(f"fastnn.data: could not download {url}: {reason}") from e
        verify_digests(f"download of {url}", actual, expected)


def local_or_download(path: Path, url: str, known: Mapping[str, list[str]], checksums: Checksums | None,
                      fetch: bool, missing: str) -> Path:
    """``path`` if it exists (verified against the caller's ``checksums`` for its name when given:
    a re-compressed copy of the published file is fine otherwise); else downloads it from
    ``url`` when ``fetch``, verified against the caller's or the ``known`` published digests;
    else raises DatasetNotFoundError with the message ``missing``."""
    if path.is_file():
        if checksums is not None and path.name in checksums:
            verify_digests(str(path), file_digests(path), [checksums[path.name]])
        return path
    if not fetch:
        raise DatasetNotFoundError(missing)
    download(url, path, expected_digests(path.name, known, checksums))
    return path


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _download_progress(name: str, total: int | None):
    """A tqdm byte counter on an interactive terminal, else nothing."""
    if not sys.stderr.isatty():
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}", leave=False)


def _checked_members(archive: tarfile.TarFile, archive_name: str) -> Iterator[tarfile.TarInfo]:
    """The archive's members, refusing anything that could write outside the target folder:
    absolute paths, '..' components, links and device files."""
    for member in archive:
        parts = Path(member.name).parts
        if member.name.startswith(("/", "\\")) or Path(member.name).is_absolute() or ".." in parts or not parts:
            raise DatasetError(f"fastnn.data: {archive_name}: refusing member with unsafe path {member.name!r}")
        if member.issym() or member.islnk():
            raise DatasetError(f"fastnn.data: {archive_name}: refusing link member {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise DatasetError(f"fastnn.data: {archive_name}: refusing special member {member.name!r}")
        yield member


def safe_extract(archive_path: Path, target: Path, top_folder: str) -> Path:
    """Extracts ``top_folder`` of a .tar.gz into ``target`` and returns its path.

    Regular files and folders only (see :func:`_checked_members`), written through Python (no
    permissions, owners or links from the archive). Extraction goes to a temporary folder beside
    the destination that is renamed into place when complete, so an interrupted or refused
    extraction leaves nothing behind.
    """
    final = target / top_folder
    staging = Path(tempfile.mkdtemp(prefix=f".{top_folder}.", suffix=".part", dir=target))
    try:
        try:
            with tarfile.open(archive_path, "r:*") as archive:
                for member in _checked_members(archive, archive_path.name):
                    out = staging / member.name
                    if member.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = archive.extractfile(member)
                    assert src is not None  # regular files always have a payload
                    with src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DatasetError(f"fastnn.data: {archive_path} is not a readable .tar.gz (truncated or corrupt): {e}") from e
        if not (staging / top_folder).is_dir():
            raise DatasetError(f"fastnn.data: {archive_path} does not contain the folder {top_folder}/")
        os.replace(staging / top_folder, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
