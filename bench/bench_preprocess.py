"""Preprocessing benchmark: the resampler choice, and conversion throughput per worker count.

    python bench/bench_preprocess.py                 # print the tables
    python bench/bench_preprocess.py --record        # and write them to docs/PERFORMANCE.md (## Preprocessing)

1. Resamplers on 30 s, 16 kHz mono (MagnaTagATune's format) to 22,050 Hz: soxr (HQ, VHQ) against
   torchaudio.functional.resample (its default Hann window, and its Kaiser "best" setting), each on one
   thread: time per clip, the worst signal-to-residual ratio on tones from 100 Hz to 7 kHz (each
   tone's gain and phase fitted first), the passband ripple (gain error) over those tones, and the image rejection on a 20 Hz - 7.9 kHz sine sweep (energy above 8.1 kHz in
   the output, where an ideal resampler puts none).
2. Throughput of clmr.preprocessing.convert_all on MTAT-like clips (30 s mono mp3 at 16 kHz, ~32 kbps,
   made with soundfile) to 22,050 Hz wav: files/s and audio-seconds/s, in total and per worker.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio
import torchaudio.functional as AF

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clmr.atomic import write_text  # noqa: E402
from clmr.preprocessing import convert_all, plan_mirror  # noqa: E402

SOURCE, TARGET, SECONDS = 16000, 22050, 30.0
TONES = (100.0, 1000.0, 3000.0, 5000.0, 6000.0, 7000.0)


def resamplers() -> dict:
    def ta(**kw):
        return lambda x: AF.resample(torch.from_numpy(x), SOURCE, TARGET, **kw).numpy()

    return {
        "soxr HQ (clmr.audio.resample)": lambda x: soxr.resample(x, SOURCE, TARGET, quality="HQ"),
        "soxr VHQ": lambda x: soxr.resample(x, SOURCE, TARGET, quality="VHQ"),
        "torchaudio default (hann, width 6)": ta(),
        "torchaudio kaiser_best (width 64)": ta(
            lowpass_filter_width=64,
            rolloff=0.9475937167399596,
            resampling_method="sinc_interp_kaiser",
            beta=14.769656459379492,
        ),
    }


def tone_quality(fn) -> tuple[float, float]:
    """Over the test tones: the worst signal-to-residual ratio (dB) once each output tone's own gain and phase
    are fitted (what is left is aliasing, imaging and noise), and the largest gain error (passband ripple, dB)."""
    worst_snr, ripple = np.inf, 0.0
    for f in TONES:
        x = np.sin(2 * np.pi * f * np.arange(int(4 * SOURCE)) / SOURCE).astype(np.float32)
        y = np.asarray(fn(x), dtype=np.float64)
        t = np.arange(len(y)) / TARGET
        keep = slice(TARGET // 2, len(y) - TARGET // 2)  # ignore the edges
        basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)[keep]
        coef, *_ = np.linalg.lstsq(basis, y[keep], rcond=None)
        fitted = basis @ coef
        residual = y[keep] - fitted
        worst_snr = min(worst_snr, 10 * np.log10(np.sum(fitted**2) / max(np.sum(residual**2), 1e-30)))
        ripple = max(ripple, abs(20 * np.log10(np.hypot(*coef))))
    return worst_snr, ripple


def image_rejection(fn) -> float:
    """dB of output energy above 8.1 kHz relative to the total, for a 20 Hz - 7.9 kHz linear sweep."""
    t = np.arange(int(10 * SOURCE)) / SOURCE
    f0, f1 = 20.0, 7900.0
    sweep = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * t[-1]) * t**2)).astype(np.float32)
    y = np.asarray(fn(sweep), dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / TARGET)
    return 10 * np.log10(spectrum[freqs > 8100].sum() / spectrum.sum())


def time_per_clip(fn, clip: np.ndarray, repeats: int = 9) -> float:
    """The fastest of `repeats` calls: other load on the machine only ever adds time."""
    fn(clip)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(clip)
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def mtat_like_clip(rng: np.random.Generator) -> np.ndarray:
    """30 s of harmonic notes with vibrato, a noise floor and a beat: enough content to make mp3 decoding realistic."""
    t = np.arange(int(SECONDS * SOURCE)) / SOURCE
    x = np.zeros_like(t)
    for _ in range(4):
        f = rng.uniform(80, 800) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
        phase = 2 * np.cumsum(np.pi * f / SOURCE)
        for h in range(1, 6):
            x += rng.uniform(0.02, 0.1) / h * np.sin(h * phase)
    beat = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.95) * rng.standard_normal(len(t)) * 0.2
    x += beat + 0.01 * rng.standard_normal(len(t))
    return (0.8 * x / np.max(np.abs(x))).astype(np.float32)


def make_clips(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    base = mtat_like_clip(rng)
    for i in range(n):
        sub = folder / "0123456789abcdef"[i % 16]
        sub.mkdir(parents=True, exist_ok=True)
        clip = np.roll(base, int(rng.integers(len(base)))) * rng.uniform(0.5, 1.0)
        sf.write(
            sub / f"clip-{i:04d}.mp3",
            clip,
            SOURCE,
            format="MP3",
            subtype="MPEG_LAYER_III",
            bitrate_mode="CONSTANT",
            compression_level=0.85,
        )  # 32 kbps, as MagnaTagATune's files


def throughput(n_clips: int, workers: list[int], repeats: int) -> tuple[list[tuple], float]:
    """Per worker count, the fastest of `repeats` runs (other load on the machine only ever slows a run down)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mp3"
        make_clips(src, n_clips)
        kbps = sum(p.stat().st_size for p in src.rglob("*.mp3")) * 8 / (n_clips * SECONDS) / 1000
        for w in workers:
            best = None
            for _ in range(repeats):
                out = Path(tmp) / f"wav{w}"
                start = time.perf_counter()
                manifest = convert_all(plan_mirror(src, out), out, TARGET, workers=w, progress=False)
                wall = time.perf_counter() - start
                shutil.rmtree(out)
                best = wall if best is None else min(best, wall)
            done = manifest["counts"]["converted"]
            audio = manifest["audio_seconds_converted"]
            rows.append((w, done, best, done / best, audio / best, done / best / w, audio / best / w))
    return rows, kbps


def decode_time(n: int = 5, repeats: int = 3) -> float:
    """Seconds to decode one MTAT-like mp3: per file the fastest of `repeats` reads, averaged over `n` files."""
    with tempfile.TemporaryDirectory() as tmp:
        make_clips(Path(tmp), n)
        best = []
        for f in sorted(Path(tmp).rglob("*.mp3")):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                sf.read(f, dtype="float32")
                times.append(time.perf_counter() - start)
            best.append(min(times))
        return float(np.mean(best))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def versions() -> str:
    return (
        f"Python {platform.python_version()}, soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}), "
        f"soxr {soxr.__version__}, torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
        f"numpy {np.__version__}"
    )


def report(args) -> str:
    torch.set_num_threads(1)  # one conversion process = one thread; compare resamplers on equal terms
    clip = mtat_like_clip(np.random.default_rng(1))
    lines = [
        f"Resampling one 30 s clip, 16,000 -> 22,050 Hz, one thread, fastest of 9 "
        f"(decoding that clip from a ~32 kbps mp3 takes {decode_time() * 1e3:.1f} ms):",
        "",
        "| resampler | ms per 30 s clip | x real time | worst tone SNR after gain fit, 0.1-7 kHz (dB) | passband ripple (dB) "
        "| image energy above 8.1 kHz (dB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, fn in resamplers().items():
        seconds = time_per_clip(fn, clip)
        snr, ripple = tone_quality(fn)
        lines.append(
            f"| {name} | {seconds * 1e3:.1f} | {SECONDS / seconds:,.0f} | {snr:.1f} | {ripple:.4f} "
            f"| {image_rejection(fn):.1f} |"
        )
    rows, kbps = throughput(args.clips, args.workers, args.repeats)
    lines += [
        "",
        f"Converting {args.clips} MTAT-like clips (30 s mono mp3, 16 kHz, {kbps:.0f} kbps) to 22,050 Hz "
        f"mono 16-bit wav with `convert_all` (decode, resample with soxr HQ, write; "
        f"fastest of {args.repeats} runs):",
        "",
        "| workers | files | wall (s) | files/s | audio-s/s | files/s per worker | audio-s/s per worker |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {w} | {n} | {wall:.2f} | {fps:.1f} | {aps:,.0f} | {fpw:.1f} | {apw:,.0f} |"
        for w, n, wall, fps, aps, fpw, apw in rows
    ]
    if len(rows) > 1 and rows[0][0] == 1:
        top = rows[-1]
        lines += [
            "",
            f"Speed-up with {top[0]} workers over 1: {top[3] / rows[0][3]:.2f}x, with a 1-minute load "
            f"average of {load_average():.1f} on {os.cpu_count()} cores (workers only help on free cores).",
        ]
    return "\n".join(lines)


def record(text: str, args, load_before: float) -> Path:
    """Write the `## Preprocessing` section of docs/PERFORMANCE.md, replacing an earlier one, keeping the rest."""
    path = ROOT / "docs" / "PERFORMANCE.md"
    command = "python bench/bench_preprocess.py --record " + " ".join(
        [f"--clips {args.clips}", "--workers " + ",".join(map(str, args.workers)), f"--repeats {args.repeats}"]
    )
    section = "\n".join(
        [
            "## Preprocessing",
            "",
            f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- Machine: {machine()}; 1-minute load average {load_before:.1f} before and {load_average():.1f} "
            f"after the run (other jobs share the machine: the fastest of --repeats runs is reported)",
            f"- Versions: {versions()}",
            f"- Command: `{command}`",
            "",
            text,
            "",
            "Choice: soxr HQ stays the resampler of `clmr.audio.resample` (and so of preprocess.py). soxr (HQ or "
            "VHQ) is faster than either torchaudio setting, and its images sit far below 16-bit resolution; torchaudio's default lets the images of the top "
            "octave through (and attenuates 7 kHz by almost 2 dB), and its 64-tap Kaiser setting, though its passband "
            "is flatter, is about 4x slower with about 30 dB more image energy. A passband ripple of 0.005 dB is far "
            "below anything a tagger could hear. Per file, decoding the mp3 costs more than resampling it.",
            "",
        ]
    )
    old = path.read_text() if path.is_file() else "# Performance\n"
    start = old.find("\n## Preprocessing")
    if start >= 0:
        end = old.find("\n## ", start + 1)
        new = old[: start + 1] + section + (old[end + 1 :] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    write_text(path, new)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="clips for the throughput table")
    parser.add_argument(
        "--workers",
        type=lambda s: [int(w) for w in s.split(",")],
        default=sorted({1, min(2, os.cpu_count() or 1)}),
        help="comma-separated worker counts",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs per worker count; the fastest is reported")
    parser.add_argument("--record", action="store_true", help="write the result to docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    load_before = load_average()
    text = report(args)
    print(f"{machine()}\n{versions()}\n\n{text}")
    if args.record:
        print(f"\nrecorded in {record(text, args, load_before)}")


if __name__ == "__main__":
    main()
