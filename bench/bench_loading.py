"""Loading: crops/s of window reads vs whole-file decode of 30 s clips, and crop_loader pairs/s.

    python bench/bench_loading.py           # prints the tables
    python bench/bench_loading.py --record  # and rewrites `## Loading` of docs/PERFORMANCE.md

Clips are generated in a temporary folder: 30 s mono at 22,050 Hz as 16-bit wav and as mp3, and the
same samples as a raw int16 .npy (read through a memory map) to see whether a faster on-disk format
would be worth adding. Each crop is `audio_length` samples (2.7 s) at a random offset of a random clip.
A few clips are also written as 32-bit float wav, to time what the NaN/Inf check of a window read costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from _common import command, machine, median_time, record, table
from clmr.audio import INTEGER_SUBTYPES, check_finite, read_window
from clmr.config import load_config
from clmr.datasets.dataset import AudioDataset
from clmr.datasets.views import CropDataset
from clmr.stages import training_loader

SAMPLE_RATE = 22050
SECONDS = 30
CROP = 59049


def make_clips(folder: Path, n: int, mp3: int, seed: int = 0) -> None:
    """`n` wav clips (and .npy twins), the first `mp3` of them also as mp3: tones over noise, peak below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    for i in range(n):
        audio = 0.05 * rng.standard_normal(t.size)
        for f in rng.uniform(80, 2000, 4):
            audio += 0.15 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * rng.uniform(0.1, 2) * t)) / 2
        audio = (audio / np.abs(audio).max() * 0.9).astype(np.float32)
        sf.write(folder / f"clip{i:03d}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        np.save(folder / f"clip{i:03d}.npy", (audio * 32767).astype(np.int16))
        if i < mp3:
            sf.write(folder / f"clip{i:03d}.mp3", audio, SAMPLE_RATE, format="MP3")
            (folder / "float32").mkdir(exist_ok=True)
            sf.write(folder / "float32" / f"clip{i:03d}.wav", audio, SAMPLE_RATE, subtype="FLOAT")


class Clips(AudioDataset):
    """Every wav clip of the folder, as a training set."""

    def __init__(self, folder: Path):
        super().__init__(folder, "train", SAMPLE_RATE, CROP)
        self.files = sorted(folder.glob("*.wav"))


def drop_cache(path: Path) -> None:
    """Ask the kernel to forget the file's pages, so that the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def window(path: Path, start: int) -> np.ndarray:
    return read_window(path, start, CROP)


def whole_file(path: Path, start: int) -> np.ndarray:
    """What the original CLMR did: decode the whole file, then slice the crop."""
    audio, _ = sf.read(str(path), dtype="float32")
    return np.ascontiguousarray(audio[start : start + CROP])


def npy_memmap(path: Path, start: int) -> np.ndarray:
    samples = np.load(path.with_suffix(".npy"), mmap_mode="r")
    return samples[start : start + CROP].astype(np.float32) * np.float32(1 / 32768)


@contextlib.contextmanager
def quiet_stderr():
    """Silence C-level stderr: mpg123 reports each seek into a frame whose bit reservoir it lacks."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def crops_per_second(read, files: list[Path], n: int, repeat: int, cold: bool = False) -> float:
    rng = np.random.default_rng(1)
    jobs = [(files[rng.integers(len(files))], int(rng.integers(SECONDS * SAMPLE_RATE - CROP))) for _ in range(n)]

    def run() -> None:
        for path, start in jobs:
            if cold:
                drop_cache(path if read is not npy_memmap else path.with_suffix(".npy"))
            read(path, start)

    return n / median_time(run, repeat)


def single_reads(folder: Path, args) -> tuple[str, dict]:
    wavs = sorted(folder.glob("*.wav"))
    mp3s = sorted(folder.glob("*.mp3"))
    rows, rates = [], {}
    cases = [
        ("wav", "window read (seek)", window, wavs, False),
        ("wav", "whole-file decode, slice", whole_file, wavs, False),
        ("int16 .npy", "memory-mapped slice", npy_memmap, wavs, False),
        ("wav, cold cache", "window read (seek)", window, wavs, True),
        ("wav, cold cache", "whole-file decode, slice", whole_file, wavs, True),
        ("mp3", "window read (seek)", window, mp3s, False),
        ("mp3", "whole-file decode, slice", whole_file, mp3s, False),
    ]
    for fmt, method, read, files, cold in cases:
        n = args.crops if "whole" not in method else max(args.crops // 4, 8)
        with quiet_stderr() if fmt == "mp3" else contextlib.nullcontext():
            rate = crops_per_second(read, files, n, args.repeat, cold)
        rates[(fmt, method)] = rate
        rows.append([fmt, method, f"{rate:,.0f}", f"{1e3 / rate:.2f}"])
        print(f"  {fmt:16s} {method:26s} {rate:9,.0f} crops/s", flush=True)
    for fmt in ("wav", "wav, cold cache", "mp3"):
        rates[fmt] = rates[(fmt, "window read (seek)")] / rates[(fmt, "whole-file decode, slice")]
    text = table(["format", "read", "crops/s", "ms/crop"], rows)
    npy = rates[("int16 .npy", "memory-mapped slice")] / rates[("wav", "window read (seek)")]
    text += (
        "\n\nWindow read vs whole-file decode: "
        + ", ".join(f"**{rates[f]:.1f}x** ({f})" for f in ("wav", "wav, cold cache", "mp3"))
        + f". A raw int16 `.npy` memory map reads at {npy:.1f}x the speed of a wav window read"
        + (": not worth a second on-disk format, so wav stays the one format." if npy < 1.5 else ".")
        + " mp3 window reads land within a frame of the exact samples; libmpg123 prints a warning for each seek "
        "into a frame whose bit reservoir it has not read (silenced here), so datasets are converted to wav "
        "(`preprocess.py`)."
    )
    return text, rates


def finite_check_cost(folder: Path, args) -> str:
    """What read_window's NaN/Inf check adds to a window read: the subtype look-up for every file, and the
    scan of the samples for float ones. The check is timed alone, right after each read
    (its samples still in the cache, as in read_window), since the difference of two whole-read timings
    drowns in the noise of a busy machine."""
    rng = np.random.default_rng(2)
    rows = []
    for fmt, files in (
        ("wav, 16-bit", sorted(folder.glob("clip*.wav"))),
        ("wav, 32-bit float", sorted((folder / "float32").glob("*.wav"))),
    ):
        jobs = [
            (files[rng.integers(len(files))], int(rng.integers(SECONDS * SAMPLE_RATE - CROP)))
            for _ in range(args.crops)
        ]
        read_s = median_time(lambda: [window(path, start) for path, start in jobs], args.repeat) / len(jobs)

        def checks() -> float:
            spent = 0.0
            for path, start in jobs:
                with sf.SoundFile(os.fsencode(path)) as f:
                    f.seek(start)
                    data = f.read(CROP, dtype="float32", always_2d=True)
                    began = time.perf_counter()
                    if not f.subtype.startswith(INTEGER_SUBTYPES):
                        check_finite(path, data, start)
                    spent += time.perf_counter() - began
            return spent

        check_s = float(np.median([checks() for _ in range(args.repeat)])) / len(jobs)
        rows.append([fmt, f"{read_s * 1e3:.3f}", f"{check_s * 1e6:.1f}", f"{check_s / read_s:.1%}"])
        print(f"  {fmt:18s} read {read_s * 1e3:.3f} ms, check {check_s * 1e6:.1f} us", flush=True)
    return (
        "NaN/Inf check of window reads (a window of a float file holding NaN or infinity is refused, and "
        "the track skipped):\n\n"
        + table(["format", "window read, ms/crop", "the check, us/crop", "share of the read"], rows)
    )


def item_overhead(folder: Path, args) -> str:
    """Per-item Python work of CropDataset (random offsets, tensors, stacking) against bare reads of the same windows."""
    dataset = Clips(folder)
    crops = CropDataset(dataset, n_views=2)
    items = list(range(len(crops)))

    def run_items() -> None:
        torch.manual_seed(0)
        for i in items:
            crops[i]

    torch.manual_seed(0)  # the offsets the items draw, in the same order
    windows = [
        (dataset.files[i], int(torch.randint(dataset.num_frames(i) - CROP + 1, (1,)))) for i in items for _ in range(2)
    ]
    item_s = median_time(run_items, args.repeat) / len(windows)
    bare_s = median_time(lambda: [window(path, start) for path, start in windows], args.repeat) / len(windows)
    return (
        f"CropDataset item (two views): {item_s * 1e3:.3f} ms per crop; bare window reads of the same crops: "
        f"{bare_s * 1e3:.3f} ms; the rest (offsets, tensors, stacking the views) is "
        f"{max(item_s - bare_s, 0) / item_s:.0%} of an item."
    )


def loader_throughput(folder: Path, args) -> str:
    dataset = Clips(folder)
    rows = []
    for batch in (16, 48):
        for workers in (0, 2):
            cfg = load_config(["--batch_size", str(batch), "--workers", str(workers)])
            loader = training_loader(dataset, cfg, train=True, n_views=2)
            per_epoch = len(loader)
            epochs = max(1, -(-args.loader_batches // per_epoch))
            for _ in loader:  # start the workers and warm the cache
                pass

            def run(loader=loader) -> None:  # bound now: the loop deletes its own name below
                for _ in range(epochs):
                    for views, _ in loader:
                        assert views.shape == (batch, 2, 1, CROP)

            seconds = median_time(run, args.repeat, warmup=0)
            pairs = epochs * per_epoch * batch
            rows.append([batch, workers, f"{pairs / seconds:,.0f}", f"{seconds / (epochs * per_epoch) * 1e3:.1f}"])
            print(f"  batch {batch:3d} workers {workers}: {pairs / seconds:8,.0f} pairs/s", flush=True)
            del loader
    return table(["batch", "workers", "pairs/s", "ms/batch"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48, help="30 s wav clips (at least 48, one batch)")
    parser.add_argument("--mp3_clips", type=int, default=8)
    parser.add_argument("--crops", type=int, default=256, help="crops per timed run")
    parser.add_argument("--loader_batches", type=int, default=12, help="batches per timed DataLoader run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--record", action="store_true", help="rewrite `## Loading` of docs/PERFORMANCE.md")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    info = machine()
    print(info)
    with tempfile.TemporaryDirectory(prefix="clmr-bench-loading-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        make_clips(folder, max(args.clips, 48), args.mp3_clips)
        print(f"generated {max(args.clips, 48)} clips of {SECONDS} s in {time.perf_counter() - began:.0f} s")
        print("single crops:")
        reads, rates = single_reads(folder, args)
        print("the NaN/Inf check of window reads:")
        finite = finite_check_cost(folder, args)
        overhead = item_overhead(folder, args)
        print(overhead)
        print("crop_loader (pairs of crops, no augmentation):")
        loaders = loader_throughput(folder, args)
    text = (
        f"Machine: {info}.\n\nCommand: `{command()}` "
        f"(median of {args.repeat} runs; {SECONDS} s mono clips at {SAMPLE_RATE} Hz, crops of {CROP} samples; "
        f'"cold cache" drops the file\'s pages with posix_fadvise before each read).\n\n'
        f"{reads}\n\nTarget: window reads at least 5x whole-file decode for a crop of a 30 s wav clip: "
        f"**{'met' if rates['wav'] >= 5 else 'not met'}** ({rates['wav']:.1f}x).\n\n"
        f"{finite}\n\n{overhead}\n\n"
        f"`crop_loader` pairs (two crops per track, no augmentation), wav:\n\n{loaders}\n\n"
        f"Load average at the end: {os.getloadavg()[0]:.1f}.\n"
    )
    print()
    print(text)
    if args.record:
        record("Loading", text)
        print("recorded in docs/PERFORMANCE.md (## Loading)")


if __name__ == "__main__":
    main()
