"""Converting a dataset's audio to mono 16-bit wav at one sample rate, in parallel, resumably, with a manifest.

`plan_mirror` lists the conversion jobs for a folder tree (each input's output mirrors its path, with
`.wav`); `convert_all` runs them over worker processes and writes `<output root>/manifest.json`:

    {"converted": [...], "skipped": [{"input", "output", "reason"}], "failed": [{"input", "reason"}], ...}

A re-run converts only what is missing: an output that exists, reads as mono at the target rate and is
not empty is kept ("up to date"); outputs are written under a temporary name and renamed, so a killed
run never leaves a half-written file under the final name; inputs that failed before and have not
changed since (same size and modification time) are not decoded again. Corrupt or empty inputs are
recorded as failed with the reason, never fatal; a file that kills its worker process fails alone.

Decoding is libsndfile's (wav, flac, ogg, mp3, aiff, au); resampling is soxr's, which
bench/bench_preprocess.py measured faster than torchaudio's and at least as accurate.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import soundfile as sf

from clmr.atomic import write_json
from clmr.audio import AUDIO_EXTENSIONS, AudioFileError, audio_info, load_mono, write_wav

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
UNCHANGED = " (unchanged since the last run)"
INPUT_EXTENSIONS = AUDIO_EXTENSIONS + (".au", ".snd")


class PreprocessError(ValueError):
    """A conversion that cannot start: missing input folder, bad option."""


@dataclass(frozen=True)
class Job:
    """Convert `src` to `dst`; `skip` holds a reason when the input is known to be unusable."""

    src: Path
    dst: Path
    skip: str = ""


@dataclass
class Result:
    src: str
    dst: str
    status: str  # converted | skipped | failed
    reason: str = ""
    seconds: float = 0.0  # audio seconds written
    size: int = -1  # input size and mtime, to recognise an unchanged failed input
    mtime_ns: int = -1


def plan_mirror(src_root: str | os.PathLike, dst_root: str | os.PathLike,
                exclude: Mapping[str, str] | None = None,
                extensions: Iterable[str] = INPUT_EXTENSIONS) -> list[Job]:
    """One job per audio file below `src_root`, its output at the same relative path below `dst_root` as .wav.

    `exclude` maps relative input paths (with `/`) to the reason they are skipped.
    """
    if not Path(src_root).is_dir():
        raise PreprocessError(f"{src_root}: input folder not found")
    src_root, dst_root = Path(src_root).resolve(), Path(dst_root).resolve()
    extensions = tuple(e.lower() for e in extensions)
    exclude = exclude or {}
    jobs = []
    for src in sorted(src_root.rglob("*")):
        if src.suffix.lower() not in extensions or src.name.startswith(".") or not src.is_file():
            continue
        rel = src.relative_to(src_root)
        if dst_root in src.parents:  # an output folder inside the input folder is not input
            continue
        jobs.append(Job(src, dst_root / rel.with_suffix(".wav"), exclude.get(rel.as_posix(), "")))
    return jobs


def is_up_to_date(dst: Path, sample_rate: int) -> bool:
    """An existing output that reads as mono at `sample_rate` with at least one frame."""
    try:
        info = audio_info(dst)
    except AudioFileError:
        return False
    return info.sample_rate == sample_rate and info.channels == 1 and info.frames > 0


def convert_file(job: Job, sample_rate: int) -> Result:
    """Decode, mix to mono, resample and write one file; never raises for a bad input."""
    src, dst = job.src, job.dst
    try:
        stat = src.stat()
    except OSError as err:
        return Result(str(src), str(dst), "failed", f"input not readable ({err.strerror or err})")
    result = Result(str(src), str(dst), "failed", size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    if job.skip:
        result.status, result.reason = "skipped", job.skip
        return result
    if stat.st_size == 0:
        result.reason = "empty file (0 bytes)"
        return result
    try:
        audio = load_mono(src, sample_rate)
        write_wav(dst, audio, sample_rate)
    except AudioFileError as err:
        result.reason = str(err).removeprefix(f"{src}: ")
        return result
    except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as err:
        result.reason = f"cannot decode ({type(err).__name__}: {err})"
        return result
    result.status, result.seconds = "converted", len(audio) / sample_rate
    return result


def _convert_star(args: tuple[Job, int]) -> Result:
    return convert_file(*args)


def _previous_failures(manifest: Path) -> dict[str, dict]:
    """Failed inputs of the previous run, by input path, to skip those that have not changed."""
    import json

    try:
        data = json.loads(manifest.read_text())
        return {f["input"]: f for f in data.get("failed", []) if f.get("size", -1) >= 0}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _remove_stale_temporaries(dst_root: Path) -> int:
    stale = [p for p in dst_root.rglob(".*.tmp-*") if p.is_file()] if dst_root.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def convert_all(jobs: list[Job], dst_root: str | os.PathLike, sample_rate: int, workers: int = 0,
                dataset: str = "", progress: bool = True) -> dict:
    """Run `jobs` over `workers` processes (0 or 1: in this process); write and return the manifest.

    The manifest is written atomically to `<dst_root>/manifest.json` and also lists, for each file,
    why it was skipped or failed.
    """
    if sample_rate <= 0:
        raise PreprocessError(f"--sample_rate must be positive, got {sample_rate}")
    dst_root = Path(dst_root)
    manifest_path = dst_root / MANIFEST
    removed = _remove_stale_temporaries(dst_root)
    if removed:
        log.info("removed %d half-written temporary file(s) of an interrupted run", removed)
    before = _previous_failures(manifest_path)
    results: list[Result] = []
    todo: list[Job] = []
    for job in jobs:
        if job.skip:
            results.append(convert_file(job, sample_rate))
        elif is_up_to_date(job.dst, sample_rate):
            results.append(Result(str(job.src), str(job.dst), "skipped", "up to date"))
        elif (old := before.get(str(job.src))) and _unchanged(job.src, old):
            reason = old["reason"].removesuffix(UNCHANGED) + UNCHANGED
            results.append(Result(str(job.src), str(job.dst), "failed", reason, size=old["size"],
                                  mtime_ns=old["mtime_ns"]))
        else:
            todo.append(job)
    started = time.perf_counter()
    results.extend(_run(todo, sample_rate, workers, progress))
    elapsed = time.perf_counter() - started
    manifest = _manifest(results, dataset, sample_rate, workers, elapsed, dst_root)
    write_json(manifest_path, manifest)
    return manifest


def _unchanged(src: Path, old: dict) -> bool:
    try:
        stat = src.stat()
    except OSError:
        return False
    return stat.st_size == old.get("size") and stat.st_mtime_ns == old.get("mtime_ns")


def _run(todo: list[Job], sample_rate: int, workers: int, progress: bool) -> list[Result]:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="convert", unit="file", disable=not progress or not todo)
    results: list[Result] = []
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            results.append(convert_file(job, sample_rate))
            bar.update()
    else:
        pending = list(todo)
        while pending:
            done = _run_pool(pending, sample_rate, workers, results, bar)
            pending = pending[done:]
            if pending:  # a worker died (a decoder crash, the OOM killer): try the next file alone
                suspect = pending.pop(0)
                results.append(_run_isolated(suspect, sample_rate))
                bar.update()
    bar.close()
    return results


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork: workers start at once and need nothing from the parent but the jobs they are sent.
    methods = multiprocessing.get_all_start_methods()
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("fork" if "fork" in methods else None))


def _run_pool(jobs: list[Job], sample_rate: int, workers: int, results: list[Result], bar) -> int:
    """Convert `jobs` in order over a pool, appending to `results`; the number done before the pool broke."""
    done = 0
    chunk = max(1, min(32, len(jobs) // (workers * 8)))
    try:
        with _pool(workers) as pool:
            for result in pool.map(_convert_star, ((job, sample_rate) for job in jobs), chunksize=chunk):
                results.append(result)
                done += 1
                bar.update()
    except BrokenProcessPool:
        log.warning("a conversion worker died; restarting the pool after checking %s alone", jobs[done].src)
    return done


def _run_isolated(job: Job, sample_rate: int) -> Result:
    """Convert one file in a process of its own, so that a crash fails that file and nothing else."""
    try:
        with _pool(1) as pool:
            return pool.submit(_convert_star, (job, sample_rate)).result()
    except BrokenProcessPool:
        return Result(str(job.src), str(job.dst), "failed", "the decoder crashed on this file (worker process died)")


def _manifest(results: list[Result], dataset: str, sample_rate: int, workers: int, elapsed: float,
              dst_root: Path) -> dict:
    def entry(r: Result, *keys: str) -> dict:
        d = asdict(r)
        out = {"input": d["src"], "output": d["dst"]}
        out.update({k: d[k] for k in keys})
        return out

    converted = [entry(r, "seconds") for r in results if r.status == "converted"]
    skipped = [entry(r, "reason") for r in results if r.status == "skipped"]
    failed = [entry(r, "reason", "size", "mtime_ns") for r in results if r.status == "failed"]
    audio_seconds = sum(r.seconds for r in results if r.status == "converted")
    return {
        "dataset": dataset,
        "output_root": str(dst_root),
        "sample_rate": sample_rate,
        "format": "wav, mono, PCM_16",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workers": workers,
        "counts": {"converted": len(converted), "skipped": len(skipped), "failed": len(failed)},
        "wall_seconds": round(elapsed, 3),
        "audio_seconds_converted": round(audio_seconds, 3),
        "converted": converted,
        "skipped": skipped,
        "failed": failed,
    }


def summary(manifest: dict) -> str:
    """One line per outcome, and the first few failures with their reasons."""
    c = manifest["counts"]
    lines = [f"{manifest['dataset'] or 'audio'}: {c['converted']} converted, {c['skipped']} skipped, "
             f"{c['failed']} failed -> {manifest['output_root']} (manifest: {MANIFEST})"]
    reasons: dict[str, int] = {}
    for s in manifest["skipped"]:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    lines += [f"  skipped {n}: {reason}" for reason, n in sorted(reasons.items())]
    lines += [f"  failed: {f['input']}: {f['reason']}" for f in manifest["failed"][:10]]
    if len(manifest["failed"]) > 10:
        lines.append(f"  ... and {len(manifest['failed']) - 10} more failures in the manifest")
    return "\n".join(lines)


def bare_flags(argv: list[str], names: Iterable[str]) -> list[str]:
    """Let boolean flags stand alone: `--download` becomes `--download 1` (the config parser wants a value)."""
    names = {f"--{n}" for n in names}
    out = []
    for i, word in enumerate(argv):
        out.append(word)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if word in names and (nxt is None or nxt.startswith("--")):
            out.append("1")
    return out
