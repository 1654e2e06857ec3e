"""Augmentation: views/s of CLMR's chain per example (batch of 1) and batched, and ms per crop of each transform.

    python bench/bench_augmentation.py                 # prints the tables
    python bench/bench_augmentation.py --record        # and rewrites `## Augmentation` of docs/PERFORMANCE.md
    python bench/bench_augmentation.py --device cuda   # the chain on a GPU

Crops are 59,049 samples at 22,050 Hz (CLMR's audio_length), the chain is build_augmentation_chain with
CLMR's probabilities (polarity 0.8, noise 0.01, gain 0.3, filters 0.8, delay 0.3, pitch 0.6, reverb 0.6).
"Per example" runs the chain on (1, 1, 59049), as a DataLoader worker does; "batched" on (48, 1, 59049),
as the training step does with augment_on: device. Every number is a median of repeated runs.
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import machine, median_time, record, table
from clmr.augmentations import (
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    Reverb,
    build_augmentation_chain,
)

SAMPLE_RATE = 22050
CROP = 59049
PROBABILITIES = dict(transforms_polarity=0.8, transforms_noise=0.01, transforms_gain=0.3, transforms_filters=0.8,
                     transforms_delay=0.3, transforms_pitch=0.6, transforms_reverb=0.6)
NOTE = """CLMR's augmentation chain (`clmr/augmentations`) on 59,049-sample crops at 22,050 Hz with CLMR's
probabilities. Per example: the chain on one crop at a time, as in DataLoader workers (`augment_on: workers`);
batched: one call on a batch, as after the transfer to the training device (`augment_on: device`). Targets:
batched >= 200 views/s, per example no slower than the original torchaudio-augmentations + sox stack
(68 views/s, i.e. 14.7 ms per view; its PitchShift took 15.6 ms and its Reverb 6.6 ms per crop)."""
# The original stack (torchaudio-augmentations 0.2.4 with sox), on the same kind of machine, ms per crop at p=1.
ORIGINAL = {"chain": 1000 / 68, "PitchShift": 15.6, "Reverb": 6.6}


def timer(device: torch.device):
    """median_time that waits for the device."""
    def run(fn, repeat, warmup=1):
        def synced():
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return median_time(synced, repeat=repeat, warmup=warmup)
    return run


def chain_rates(chain, crops: torch.Tensor, time_it, batch: int, per_example_views: int) -> tuple[float, float]:
    """Views/s per example (calls on (1, 1, T), a fresh crop each) and batched (calls on (batch, 1, T))."""
    def one_at_a_time():
        for i in range(per_example_views):
            chain(crops[i % len(crops)].unsqueeze(0))

    per_example = time_it(one_at_a_time, repeat=5) / per_example_views
    batched = time_it(lambda: chain(crops[:batch]), repeat=5) / batch
    return 1 / per_example, 1 / batched


def transform_ms(transforms, crops: torch.Tensor, time_it, batch: int) -> list[list[object]]:
    """ms per crop of each transform applied to every example, per example and batched."""
    rows = []
    for transform in transforms:
        name = type(transform).__name__
        single = time_it(lambda: transform(crops[:1]), repeat=21, warmup=3) * 1e3
        batched = time_it(lambda: transform(crops[:batch]), repeat=5) * 1e3 / batch
        original = ORIGINAL.get(name)
        rows.append([name, single, batched, "%.1f" % original if original else ""])
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
    chain = build_augmentation_chain(cfg).to(device)
    crops = 0.1 * torch.randn(max(args.batch, 64), 1, CROP, device=device)
    with torch.no_grad():
        per_example, batched = chain_rates(chain, crops, time_it, args.batch, per_example_views=40)
        transforms = [PolarityInversion(), Noise(), Gain(), HighLowPass(SAMPLE_RATE), Delay(SAMPLE_RATE),
                      PitchShift(CROP, SAMPLE_RATE), Reverb(SAMPLE_RATE)]
        rows = transform_ms([t.to(device) for t in transforms], crops, time_it, args.batch)

    chain_table = table(
        ["chain (CLMR probabilities)", "views/s", "ms per view", "original CLMR stack"],
        [["per example (batch of 1)", per_example, 1e3 / per_example, "68 views/s, 14.7 ms"],
         [f"batched (batch of {args.batch})", batched, 1e3 / batched, ""]],
    )
    transform_table = table(["transform at p=1", "ms/crop per example", f"ms/crop batched ({args.batch})",
                             "original ms/crop"], rows)
    command = "python bench/bench_augmentation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"{NOTE}\n\n{header}\n\n`{command.strip()}`, device {device}\n\n"
            f"{chain_table}\n\n{transform_table}\n")
    print(body)
    if args.record:
        record("Augmentation", body)


if __name__ == "__main__":
    main()
