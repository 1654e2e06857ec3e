"""Embeddings of a music collection, resumable: one 512-d row per file (`predict.py --embeddings OUT`).

summary = embed_files(["~/music"], load_model("encoder.ckpt"), "embeddings/")
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clmr.atomic import write_bytes, write_json, write_text
from clmr.audio import AudioFileError
from clmr.checkpoints import CheckpointError
from clmr.filenames import os_name, shown
from clmr.hear import ClmrModel
from clmr.inference import EncodedTrack, encode_files, expand_paths
from clmr.models import N_FEATURES

EMBEDDINGS, INDEX, CHUNKS, META, PARTS = "embeddings.npy", "index.csv", "chunk_embeddings.npy", "meta.json", "parts"


@dataclass
class EmbeddingSummary:
    out_dir: Path
    n_files: int
    embedded: int  # rows written
    computed: int  # of which computed in this run (the rest were found in parts/)
    failed: list[tuple[Path, str]]
    total_chunks: int


def _part_path(out_dir: Path, path: Path) -> Path:
    key = hashlib.sha1(os_name(path.resolve())).hexdigest()[:24]
    return out_dir / PARTS / f"{key}.npz"


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_part(part: Path, path: Path, need_chunks: bool) -> dict | None:
    """A file's saved result if it is still valid (same file size and mtime, chunks if needed, finite: an
    earlier version saved the NaN embeddings of files holding NaN samples)."""
    if not part.is_file():
        return None
    try:
        with np.load(part, allow_pickle=False) as data:
            saved = {k: data[k] for k in data.files}
        if (int(saved["size"]), int(saved["mtime_ns"])) != _stamp(path) or (need_chunks and "chunks" not in saved):
            return None
        if not all(np.isfinite(saved[k]).all() for k in ("embedding", "chunks") if k in saved):
            return None
        return saved
    except (OSError, ValueError, KeyError, EOFError):
        return None  # half-written by a killed run of an older version, or unreadable: recompute


def _write_part(part: Path, track: EncodedTrack, keep_chunks: bool) -> dict:
    size, mtime_ns = _stamp(track.path)
    arrays = dict(
        embedding=track.embedding.numpy().astype(np.float32),
        n_chunks=np.int64(track.n_chunks),
        duration_s=np.float64(track.duration_s),
        size=np.int64(size),
        mtime_ns=np.int64(mtime_ns),
    )
    if keep_chunks:
        arrays.update(chunks=track.embeddings.numpy().astype(np.float32), times_ms=track.times_ms)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(part, buf.getbuffer())
    return arrays


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """An .npy file, atomically; a failed write is an OSError naming `path`."""
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes(path, buf.getbuffer())


def _check_model(out_dir: Path, model: ClmrModel) -> None:
    """parts/ of one output folder all come from one model; another model's would be silently mixed in."""
    stamp = out_dir / PARTS / "model.json"
    if stamp.is_file():
        found = json.loads(stamp.read_text()).get("fingerprint")
        if found != model.fingerprint:
            raise CheckpointError(
                f"--embeddings {shown(out_dir)}: holds embeddings of another model or chunking "
                f"({found}, now {model.fingerprint}); use another folder or delete it"
            )
    else:
        write_json(stamp, {"fingerprint": model.fingerprint})


def embed_files(
    inputs: Sequence[str | os.PathLike],
    model: ClmrModel,
    out_dir: str | os.PathLike,
    chunk_embeddings: bool = False,
    workers: int = 0,
    progress: bool = True,
    on_error: Callable[[Path, str], None] | None = None,
) -> EmbeddingSummary:
    """One 512-d embedding per file (the mean over its chunks) into `out_dir`:

        embeddings.npy        (N, 512) float32, row i = row i of index.csv
        index.csv             row, path (shown: undecodable bytes as \\xNN), duration_s, n_chunks, chunk_offset
        chunk_embeddings.npy  (sum of n_chunks, 512), with chunk_embeddings: rows chunk_offset ... + n_chunks
        meta.json             the model, the chunking, the files skipped and why
        parts/                one .npz per finished file: a re-run skips files already embedded

    Each file's result is written as soon as its last chunk is encoded, so a killed run loses at most
    the files in the current batch. Unusable files are reported through `on_error` and skipped.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    paths = expand_paths(inputs)
    if not paths:
        raise AudioFileError(f"no audio files in {', '.join(map(shown, inputs))}")
    _check_model(out_dir, model)
    report = on_error or (lambda path, reason: tqdm.write(f"skipped {reason}", file=sys.stderr))
    saved: dict[int, dict] = {}
    todo: list[int] = []
    for i, path in enumerate(paths):
        part = _read_part(_part_path(out_dir, path), path, chunk_embeddings) if path.is_file() else None
        if part is None:
            todo.append(i)
        else:
            saved[i] = part
    failed: dict[int, str] = {}
    bar = tqdm(
        total=len(paths), initial=len(saved), unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )
    with bar:
        for track in encode_files([paths[i] for i in todo], model, workers):
            i = todo[track.index]
            if track.ok:
                saved[i] = _write_part(_part_path(out_dir, paths[i]), track, chunk_embeddings)
            else:
                failed[i] = track.error
                report(paths[i], track.error)
            bar.update(1)
    rows = [i for i in range(len(paths)) if i in saved]
    _assemble(out_dir, model, paths, rows, saved, failed, chunk_embeddings)
    return EmbeddingSummary(
        out_dir,
        len(paths),
        len(rows),
        len(todo) - len(failed),
        [(paths[i], failed[i]) for i in sorted(failed)],
        sum(int(saved[i]["n_chunks"]) for i in rows),
    )


def _assemble(
    out_dir: Path,
    model: ClmrModel,
    paths: list[Path],
    rows: list[int],
    saved: dict[int, dict],
    failed: dict[int, str],
    chunk_embeddings: bool,
) -> None:
    embeddings = (
        np.stack([saved[i]["embedding"] for i in rows]).astype(np.float32)
        if rows
        else np.zeros((0, N_FEATURES), np.float32)
    )
    save_npy(out_dir / EMBEDDINGS, embeddings)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["row", "path", "duration_s", "n_chunks", "chunk_offset"])
    offset = 0
    for row, i in enumerate(rows):
        n = int(saved[i]["n_chunks"])
        writer.writerow([row, shown(paths[i]), f"{float(saved[i]['duration_s']):.3f}", n, offset])
        offset += n
    write_text(out_dir / INDEX, text.getvalue())
    if chunk_embeddings:
        chunks = np.concatenate([saved[i]["chunks"] for i in rows]) if rows else np.zeros((0, N_FEATURES), np.float32)
        save_npy(out_dir / CHUNKS, chunks.astype(np.float32))
    write_json(
        out_dir / META,
        {
            "checkpoint": model.source,
            "model": model.fingerprint,
            "sample_rate": model.sample_rate,
            "audio_length": model.audio_length,
            "hop_length": model.hop_length,
            "embedding": "mean of the chunk representations (512-d)",
            "files": len(paths),
            "rows": len(rows),
            "chunk_embeddings": CHUNKS if chunk_embeddings else None,
            "failed": [
                {"path": str(paths[i]), "reason": failed[i].removeprefix(f"{shown(paths[i])}: ")}
                for i in sorted(failed)
            ],
        },
    )
