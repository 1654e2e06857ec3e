"""Converting a dataset's audio to mono 16-bit wav at one sample rate, in parallel, resumably, with a manifest.

`plan_mirror` (clmr/conversion_plan.py) lists the conversion jobs for a folder tree; `convert_all` runs
them over worker processes and writes `<output root>/manifest.json`:

    {"converted": [...], "skipped": [{"input", "output", "reason"}], "failed": [{"input", "reason"}],
     "unwritten": [{"input", "output", "reason"}], ...}

A re-run converts only what is missing: an output that exists, reads as mono at the target rate and is
not empty is kept ("up to date"); outputs are written under a temporary name and renamed, so a killed
run never leaves a half-written file under the final name; inputs that failed before and have not
changed since (same size and modification time) are not decoded again. Corrupt, empty or non-finite
(NaN/Inf) inputs are recorded as failed with the reason, never fatal; a file that kills its worker
process fails alone. A failure of the output (a full disk) is not the input's: the run stops with one
line naming the file, the manifest lists it as unwritten, and the next run converts it.

Decoding is libsndfile's (wav, flac, ogg, mp3, aiff, au); resampling is soxr's, which
bench/bench_preprocess.py measured faster than torchaudio's and at least as accurate.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import soundfile as sf

from clmr.atomic import check_writable, write_json
from clmr.audio import AudioAccessError, AudioFileError, audio_info, load_mono, write_wav
from clmr.conversion_plan import INPUT_EXTENSIONS, Job, PreprocessError, distinct_outputs, plan_mirror
from clmr.filenames import shown

__all__ = [
    "INPUT_EXTENSIONS",
    "Job",
    "PreprocessError",
    "Result",
    "convert_all",
    "convert_file",
    "distinct_outputs",
    "plan_mirror",
    "summary",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: write failures are "unwritten", not "failed" (version 1's failures are retried once)
UNWRITTEN = "unwritten"
UNCHANGED = " (unchanged since the last run)"


@dataclass
class Result:
    src: str
    dst: str
    status: str  # converted | skipped | failed (the input) | unwritten (the output)
    reason: str = ""
    seconds: float = 0.0  # audio seconds written
    size: int = -1  # input size and mtime, to recognise an unchanged failed input
    mtime_ns: int = -1


def is_up_to_date(dst: Path, sample_rate: int) -> bool:
    """An existing output that reads as mono at `sample_rate` with at least one frame."""
    try:
        info = audio_info(dst)
    except AudioFileError:
        return False
    return info.sample_rate == sample_rate and info.channels == 1 and info.frames > 0


def convert_file(job: Job, sample_rate: int) -> Result:
    """Decode, mix to mono, resample and write one file; never raises for a bad input or a failed write.

    A bad input is "failed" (recorded; not decoded again while unchanged, except where the OS refused to
    open it, which the next run tries again); a failed write is "unwritten" (the output's fault, never
    recorded as the input's).
    """
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
    except AudioAccessError as err:
        return Result(str(src), str(dst), "failed", err.reason)  # no size: tried again by the next run
    except AudioFileError as err:
        result.reason = err.reason
        return result
    except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as err:
        result.reason = f"cannot decode ({type(err).__name__}: {err})"
        return result
    try:
        write_wav(dst, audio, sample_rate)
    except OSError as err:
        return Result(str(src), str(dst), UNWRITTEN, f"cannot write the converted file ({err.strerror or err})")
    result.status, result.seconds = "converted", len(audio) / sample_rate
    return result


def _convert_star(args: tuple[Job, int]) -> Result:
    return convert_file(*args)


def _previous_manifest(manifest: Path) -> dict:
    try:
        data = json.loads(manifest.read_bytes().decode("utf-8", "surrogateescape"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _previous_failures(previous: dict) -> dict[str, dict]:
    """Failed inputs of the previous run, by input path, to skip those that have not changed. A manifest
    of version 1 recorded full-disk write errors as decode failures: its failures are tried again."""
    if previous.get("version") != MANIFEST_VERSION:
        return {}
    try:
        return {f["input"]: f for f in previous.get("failed", []) if f.get("size", -1) >= 0}
    except (TypeError, AttributeError, KeyError):
        return {}


def _remove_renamed_outputs(previous: dict, jobs: list[Job], dst_root: Path) -> list[str]:
    """Outputs an earlier run wrote for an input that now has another output name (a collision found
    since, or the version that let tone.flac and tone.ogg overwrite each other's tone.wav): removed, so
    that the converted folder does not hold a track twice (or a wrongly named one)."""
    earlier: dict[str, str] = {}
    try:
        for entry in previous.get("converted", []) + previous.get("skipped", []):
            earlier[entry["input"]] = entry["output"]
    except (TypeError, AttributeError, KeyError):
        return []
    current = {str(job.dst) for job in jobs}
    removed = []
    for job in jobs:
        old = earlier.get(str(job.src))
        if (
            old
            and old != str(job.dst)
            and old not in current
            and Path(old).parent.is_relative_to(dst_root)
            and Path(old).is_file()
        ):
            Path(old).unlink()
            removed.append(old)
    return removed


def _remove_stale_temporaries(dst_root: Path) -> int:
    stale = [p for p in dst_root.rglob(".*.tmp-*") if p.is_file()] if dst_root.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def convert_all(
    jobs: list[Job],
    dst_root: str | os.PathLike,
    sample_rate: int,
    workers: int = 0,
    dataset: str = "",
    progress: bool = True,
    flag: str = "--dataset_dir",
) -> dict:
    """Run `jobs` over `workers` processes (0 or 1: in this process); write and return the manifest.

    The output folder is checked first (a read-only or full one is refused, naming it and `flag`, the
    option that chose it). The manifest is written atomically to `<dst_root>/manifest.json` and lists,
    for each file, why it was skipped or failed. A write that fails stops the run (PreprocessError).
    """
    if sample_rate <= 0:
        raise PreprocessError(f"--sample_rate must be positive, got {sample_rate}")
    dst_root = Path(dst_root)
    check_writable(dst_root, flag)
    manifest_path = dst_root / MANIFEST
    removed = _remove_stale_temporaries(dst_root)
    if removed:
        log.info("removed %d half-written temporary file(s) of an interrupted run", removed)
    previous = _previous_manifest(manifest_path)
    renamed = _remove_renamed_outputs(previous, jobs, dst_root.resolve())
    if renamed:
        log.info("removed %d output(s) of an earlier run whose inputs now have distinct output names", len(renamed))
    before = _previous_failures(previous)
    results: list[Result] = []
    todo: list[Job] = []
    for job in jobs:
        if job.skip:
            results.append(convert_file(job, sample_rate))
        elif is_up_to_date(job.dst, sample_rate):
            results.append(Result(str(job.src), str(job.dst), "skipped", "up to date"))
        elif (old := before.get(str(job.src))) and _unchanged(job.src, old):
            reason = old["reason"].removesuffix(UNCHANGED) + UNCHANGED
            results.append(
                Result(str(job.src), str(job.dst), "failed", reason, size=old["size"], mtime_ns=old["mtime_ns"])
            )
        else:
            todo.append(job)
    started = time.perf_counter()
    results.extend(_run(todo, sample_rate, workers, progress))
    elapsed = time.perf_counter() - started
    manifest = _manifest(results, dataset, sample_rate, workers, elapsed, dst_root)
    manifest["removed_renamed_outputs"] = renamed
    unwritten = manifest[UNWRITTEN]
    try:
        write_json(manifest_path, manifest)
    except OSError:
        if not unwritten:
            raise
        log.warning("could not write %s either", shown(manifest_path))
    if unwritten:
        first = unwritten[0]
        raise PreprocessError(
            f"{shown(first['output'])}: {first['reason']}; stopped after converting "
            f"{manifest['counts']['converted']} file(s), which are kept: run preprocess.py "
            f"again to convert the rest once the folder can be written"
        )
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
            if results[-1].status == UNWRITTEN:
                break
    else:
        pending = list(todo)
        while pending:
            done = _run_pool(pending, sample_rate, workers, results, bar)
            pending = pending[done:]
            if results and results[-1].status == UNWRITTEN:
                break
            if pending:  # a worker died (a decoder crash, the OOM killer): try the next file alone
                suspect = pending.pop(0)
                results.append(_run_isolated(suspect, sample_rate))
                bar.update()
    bar.close()
    return results


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork: workers start at once and need nothing from the parent but the jobs they are sent.
    methods = multiprocessing.get_all_start_methods()
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork" if "fork" in methods else None)
    )


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
                if result.status == UNWRITTEN:  # the output folder is full or gone: the rest would fail too
                    pool.shutdown(wait=True, cancel_futures=True)
                    break
    except BrokenProcessPool:
        log.warning("a conversion worker died; restarting the pool after checking %s alone", shown(jobs[done].src))
    return done


def _run_isolated(job: Job, sample_rate: int) -> Result:
    """Convert one file in a process of its own, so that a crash fails that file and nothing else."""
    try:
        with _pool(1) as pool:
            return pool.submit(_convert_star, (job, sample_rate)).result()
    except BrokenProcessPool:
        return Result(str(job.src), str(job.dst), "failed", "the decoder crashed on this file (worker process died)")


def _manifest(
    results: list[Result], dataset: str, sample_rate: int, workers: int, elapsed: float, dst_root: Path
) -> dict:
    def entry(r: Result, *keys: str) -> dict:
        d = asdict(r)
        out = {"input": d["src"], "output": d["dst"]}
        out.update({k: d[k] for k in keys})
        return out

    converted = [entry(r, "seconds") for r in results if r.status == "converted"]
    skipped = [entry(r, "reason") for r in results if r.status == "skipped"]
    failed = [entry(r, "reason", "size", "mtime_ns") for r in results if r.status == "failed"]
    unwritten = [entry(r, "reason") for r in results if r.status == UNWRITTEN]
    audio_seconds = sum(r.seconds for r in results if r.status == "converted")
    return {
        "version": MANIFEST_VERSION,
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
        UNWRITTEN: unwritten,
    }


def summary(manifest: dict) -> str:
    """One line per outcome, and the first few failures with their reasons (or the note of a dataset that
    needed no conversion)."""
    if "note" in manifest:
        return manifest["note"]
    c = manifest["counts"]
    lines = [
        f"{manifest['dataset'] or 'audio'}: {c['converted']} converted, {c['skipped']} skipped, "
        f"{c['failed']} failed -> {shown(manifest['output_root'])} (manifest: {MANIFEST})"
    ]
    reasons: dict[str, int] = {}
    for s in manifest["skipped"]:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    lines += [f"  skipped {n}: {reason}" for reason, n in sorted(reasons.items())]
    if manifest.get("removed_renamed_outputs"):
        lines.append(
            f"  removed {len(manifest['removed_renamed_outputs'])} output(s) of an earlier run whose "
            f"inputs now have distinct output names"
        )
    lines += [f"  failed: {shown(f['input'])}: {f['reason']}" for f in manifest["failed"][:10]]
    if len(manifest["failed"]) > 10:
        lines.append(f"  ... and {len(manifest['failed']) - 10} more failures in the manifest")
    return "\n".join(lines)
