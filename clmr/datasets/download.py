"""Fetching dataset files: resumable HTTP downloads, checksums, merging split archives, safe zip extraction.

Every step can be interrupted and re-run: a download grows a `<name>.part` file, resumed with an HTTP
Range request and renamed once its checksum matches; merged archives and extracted members are
written under temporary names and renamed.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clmr.atomic import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file that could not be fetched, failed its checksum, or an archive that is unsafe to extract."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name on disk, its URL, and its checksum.

    `checksum` is "md5:<hex>", "git-blob:<hex prefix>" (the Git blob id, for files whose md5 was never
    published but whose repository commit is known), or "" for none.
    """

    name: str
    url: str
    checksum: str = ""


def file_digest(path: str | os.PathLike, kind: str = "md5") -> str:
    """Hex digest of a file: "md5", or "git-blob" (sha1 of `blob <size>\\0` + content, as `git hash-object`)."""
    path = Path(path)
    if kind == "md5":
        digest = hashlib.md5()
    elif kind == "git-blob":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        raise ValueError(f"unknown checksum kind {kind!r}; expected md5 or git-blob")
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | os.PathLike, checksum: str) -> None:
    """Raise DownloadError unless `path` matches `checksum` ("md5:<hex>", "git-blob:<prefix>" or "")."""
    if not checksum:
        return
    kind, _, expected = checksum.partition(":")
    actual = file_digest(path, kind)
    if not actual.startswith(expected.lower()) or not expected:
        raise DownloadError(f"{path}: checksum mismatch ({kind} {actual}, expected {expected})")


def download(
    url: str,
    dest: str | os.PathLike,
    checksum: str = "",
    retries: int = 3,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch `url` to `dest`, resuming `dest.part` where a previous attempt stopped.

    An existing `dest` that matches `checksum` is kept (no request is made). A connection that drops
    is retried up to `retries` times, each time asking only for the missing bytes (HTTP Range). If the
    finished file fails its checksum it is deleted and DownloadError says so: run again to refetch.
    `progress(done_bytes, total_bytes)` is called as bytes arrive.
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            verify(dest, checksum)
            return dest
        except DownloadError:
            log.warning("%s exists but fails its checksum; downloading it again", dest)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch(url, part, timeout, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                kept = f"{have} bytes kept in {part}, run again to resume" if have else "run again to retry"
                raise DownloadError(f"{url}: download failed after {retries} retries ({err}); {kept}") from None
            log.warning("%s: %s; resuming (retry %d of %d)", url, err, attempt, retries)
            time.sleep(min(2.0 ** (attempt - 1), 10.0) * 0.1)
    try:
        verify(part, checksum)
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None) -> None:
    """Append the missing bytes of `url` to `part` (one request); raise on a short or failed transfer."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "clmr-preprocess"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the Range header: start over
            log.warning("%s: server does not resume downloads; starting again from byte 0", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        with part.open("ab" if have else "wb") as f:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                received += len(block)
                if progress:
                    progress(received, total)
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def download_all(files: Iterable[RemoteFile], folder: str | os.PathLike, **kwargs) -> list[Path]:
    """`download` each file into `folder`, with one tqdm bar per file."""
    from tqdm import tqdm

    paths = []
    for remote in files:
        with tqdm(desc=remote.name, unit="B", unit_scale=True, unit_divisor=1024, leave=False) as bar:

            def progress(done: int, total: int | None, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            paths.append(download(remote.url, Path(folder) / remote.name, remote.checksum, progress=progress, **kwargs))
        log.info("%s: ok", paths[-1])
    return paths


def merge_parts(parts: Iterable[str | os.PathLike], dest: str | os.PathLike) -> Path:
    """Concatenate split-archive parts (`mp3.zip.001`, `.002`, ...) into one file, atomically."""
    parts = [Path(p) for p in parts]
    for p in parts:
        if not p.is_file():
            raise DownloadError(f"{p}: archive part not found")
    with atomic_path(dest) as tmp, tmp.open("wb") as out:
        for p in parts:
            with p.open("rb") as f:
                shutil.copyfileobj(f, out, CHUNK)
    return Path(dest)


def _member_target(name: str, target: Path) -> Path:
    """Where member `name` goes under `target`; DownloadError if it is absolute or leaves `target`."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in clean.split("/"):
        raise DownloadError(f"refusing archive member {name!r}: absolute path or '..' leaves {target}")
    path = (target / posixpath.normpath(clean)).resolve()
    if path != target and target not in path.parents:
        raise DownloadError(f"refusing archive member {name!r}: it resolves to {path}, outside {target}")
    return path


def extract_zip(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract every member of a zip archive under `target`, refusing the archive if any member would leave it.

    All names are checked before anything is written. Members already extracted with the right size
    are kept, so an interrupted extraction resumes; each file is written under a temporary name.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive}: not a readable zip archive ({err})") from None
    with zf:
        members = [(info, _member_target(info.filename, target)) for info in zf.infolist()]
        from tqdm import tqdm

        written = []
        for info, path in tqdm(members, desc=f"extract {Path(archive).name}", unit="file", leave=False):
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            if path.is_file() and path.stat().st_size == info.file_size:
                written.append(path)
                continue
            try:
                with zf.open(info) as src, atomic_path(path) as tmp, tmp.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise DownloadError(f"{archive}: member {info.filename!r} is damaged ({err})") from None
            written.append(path)
    return written
