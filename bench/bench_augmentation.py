"""Augmentation: views/s of CLMR's chain per example (batch of 1) and batched, and ms per crop of each transform.

    python bench/bench_augmentation.py                 # prints the tables
    python bench/bench_augmentation.py --record        # and rewrites `## Augmentation` of docs/PERFORMANCE.md
    python bench/bench_augmentation.py --device cuda   # the chain on a GPU

Crops are 59,049 samples at 22,050 Hz (CLMR's audio_length), the chain is build_augmentation_chain with
CLMR's probabilities (polarity 0.8, noise 0.01, gain 0.3, filters 0.8, delay 0.3, pitch 0.6, reverb 0.6).
"Per example" runs the chain on (1, 1, 59049), as a DataLoader worker does; "batched" on (48, 1, 59049),
as the training step does with augment_on: device. Numbers are medians of repeated runs, with the best run
beside them (the machine may be shared: the load average at the start is in the header).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from _common import machine, record, table
from clmr.augmentations import (
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    Reverb,
)
from clmr.stages import augmentation_chain

SAMPLE_RATE = 22050
CROP = 59049
PROBABILITIES = dict(
    transforms_polarity=0.8,
    transforms_noise=0.01,
    transforms_gain=0.3,
    transforms_filters=0.8,
    transforms_delay=0.3,
    transforms_pitch=0.6,
    transforms_reverb=0.6,
)
NOTE = """CLMR's augmentation chain (`clmr/augmentations`) on 59,049-sample crops at 22,050 Hz with CLMR's
probabilities. Per example: the chain on one crop at a time, as in DataLoader workers (`augment_on: workers`);
batched: one call on a batch, as after the transfer to the training device (`augment_on: device`). Targets:
batched >= 200 views/s, per example no slower than the original torchaudio-augmentations + sox stack
(68 views/s, i.e. 14.7 ms per view; its PitchShift took 15.6 ms and its Reverb 6.6 ms per crop).
Reverb is sox's freeverb exactly (closed-form response, one FFT convolution per stereo side, see
docs/AUGMENTATIONS.md); PitchShift a batched WSOLA stretch plus resampling after sox's `pitch`."""
# The original stack (torchaudio-augmentations 0.2.4 with sox), on the same kind of machine, ms per crop at p=1.
ORIGINAL = {"PitchShift": 15.6, "Reverb": 6.6}


def timer(device: torch.device):
    """Seconds of each of `repeat` runs of fn (after `warmup` untimed ones), waiting for the device."""

    def run(fn, repeat: int, warmup: int = 1) -> list[float]:
        def synced():
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for _ in range(warmup):
            synced()
        seconds = []
        for _ in range(repeat):
            began = time.perf_counter()
            synced()
            seconds.append(time.perf_counter() - began)
        return seconds

    return run


def chain_rows(chain, crops: torch.Tensor, time_it, batch: int, views: int = 30) -> list[list[object]]:
    """Views/s and ms per view per example (calls on (1, 1, T), a new crop each) and batched (calls on (batch, 1, T))."""

    def one_at_a_time():
        for i in range(views):
            chain(crops[i % len(crops)].unsqueeze(0))

    threads = torch.get_num_threads()
    runs = {"per example (batch of 1)": [t / views for t in time_it(one_at_a_time, repeat=7)]}
    torch.set_num_threads(1)  # what a DataLoader worker gets
    runs["per example, 1 thread (as in a DataLoader worker)"] = [t / views for t in time_it(one_at_a_time, repeat=7)]
    torch.set_num_threads(threads)
    runs[f"batched (batch of {batch})"] = [t / batch for t in time_it(lambda: chain(crops[:batch]), repeat=7)]
    rows = [[name, 1 / statistics.median(r), 1 / min(r), 1e3 * statistics.median(r), ""] for name, r in runs.items()]
    rows[0][-1] = "68 views/s (14.7 ms per view)"
    return rows


def summary(rows: list[list[object]]) -> str:
    """One sentence: the medians against the targets."""
    per_example, batched = rows[0][1], rows[-1][1]
    return (
        f"Medians: batched {batched:.0f} views/s ({batched / 68:.1f}x the original stack, target 200); "
        f"per example {1e3 / per_example:.1f} ms per view ({per_example / 68:.1f}x as fast as the original's 14.7 ms)."
    )


def transform_rows(transforms, crops: torch.Tensor, time_it, batch: int) -> list[list[object]]:
    """ms per crop of each transform applied to every example, per example and batched: median (best)."""
    rows = []
    for transform in transforms:
        name = type(transform).__name__
        single = [1e3 * t for t in time_it(lambda: transform(crops[:1]), repeat=21, warmup=3)]
        batched = [1e3 * t / batch for t in time_it(lambda: transform(crops[:batch]), repeat=5)]
        original = ORIGINAL.get(name)
        rows.append(
            [
                name,
                "%.3g (%.3g)" % (statistics.median(single), min(single)),
                "%.3g (%.3g)" % (statistics.median(batched), min(batched)),
                "%.1f" % original if original else "",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument("--batch", type=int, default=48, help="batch size of the batched chain (default: 48)")
    parser.add_argument("--record", action="store_true", help="rewrite `## Augmentation` of docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    time_it = timer(device)
    header = machine()

    cfg = argparse.Namespace(**PROBABILITIES, sample_rate=SAMPLE_RATE, audio_length=CROP)
    chain = augmentation_chain(cfg).to(device)
    crops = 0.1 * torch.randn(max(args.batch, 64), 1, CROP, device=device)
    with torch.no_grad():
        rows = chain_rows(chain, crops, time_it, args.batch)
        chain_table = table(
            [
                "chain, CLMR probabilities",
                "views/s (median)",
                "views/s (best)",
                "ms per view (median)",
                "original CLMR stack",
            ],
            rows,
        )
        transforms = [
            PolarityInversion(),
            Noise(),
            Gain(),
            HighLowPass(SAMPLE_RATE),
            Delay(SAMPLE_RATE),
            PitchShift(CROP, SAMPLE_RATE),
            Reverb(SAMPLE_RATE),
        ]
        transform_table = table(
            [
                "transform at p=1",
                "ms/crop per example: median (best)",
                f"ms/crop batched ({args.batch}): median (best)",
                "original ms/crop",
            ],
            transform_rows([t.to(device) for t in transforms], crops, time_it, args.batch),
        )
    command = "python bench/bench_augmentation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load = "%.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "?"
    body = (
        f"{NOTE}\n\n{header}; load average {load} at the end\n\n`{command.strip()}`, device {device}\n\n"
        f"{chain_table}\n\n{transform_table}\n\n{summary(rows)}\n"
    )
    print(body)
    if args.record:
        record("Augmentation", body)


if __name__ == "__main__":
    main()
