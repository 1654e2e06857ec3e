"""Atomic file writes: write to a temporary name beside the target, then rename into place.

A crash or a kill never leaves a half-written checkpoint, cache, result or converted file under the
final name; at worst a `.tmp-*` file remains, which a re-run ignores and overwrites. A write that fails
(a full disk, a read-only folder) raises OSError naming the final path, not the temporary one.

`check_writable(folder, flag)` proves an output folder takes a file before long work starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clmr.config import ConfigError
from clmr.filenames import shown

PROBE_BYTES = 4096  # what check_writable writes: a full disk often still creates an empty file


class OutputPathError(ConfigError):
    """An output folder that cannot be written: read-only, full, not a folder, not permitted."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success rename it to `path`.

    An OSError while creating, writing (one that names no other file) or renaming it names `path`.
    """
    path = Path(path)
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming(path, tmp_path):
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users of a cluster
            yield tmp_path
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Re-raise an OSError about the temporary file (or about no file) as one about `path`; while creating
    the temporary (`tmp` None) every OSError is about `path`."""
    try:
        yield
    except OSError as err:
        about = None if err.filename is None else os.fsdecode(err.filename)
        if tmp is not None and about not in (None, str(tmp), str(path)):
            raise  # about another file (an input read while writing): its own name is the right one
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write `data` to `path` atomically, through os.write (a failing write raises OSError naming `path`)."""
    view = memoryview(data).cast("B")
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text; a file name that is not valid UTF-8 is written as its own bytes rather than refused."""
    write_bytes(path, text.encode("utf-8", "surrogateescape"))


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Indented JSON; a name that is not valid UTF-8 is written as Python's \\udcNN escape (see clmr.filenames)."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def check_writable(folder: str | os.PathLike, flag: str) -> Path:
    """Create `folder` if needed and write a small file in it; raise OutputPathError naming the folder and
    `flag` (the option that chose it) when that fails: a read-only or full target is refused before the work.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise OutputPathError(
            f"{shown(folder)}: cannot write there ({err.strerror or err}); choose another folder with {flag}"
        ) from None
    return folder
