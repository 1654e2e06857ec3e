"""Evaluation: test tracks/s of the linear probe's test pass (extraction + head + track-level scoring).

    python bench/bench_evaluation.py            # prints the table
    python bench/bench_evaluation.py --record   # and writes `## Evaluation` of docs/PERFORMANCE.md

The test subset of a synthetic dataset (generated in a temporary folder unless --dataset_dir) is cut
into non-overlapping 59,049-sample chunks and encoded by a random SampleCNN (the weights do not change
the speed), then scored by a linear head and averaged per track. Two ways to batch the encoder:
chunks of many tracks per batch (what linear_evaluation.py does), and one track per batch (the
original CLMR's evaluation loop).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time

import numpy as np
import torch

from _common import machine, record, table
from clmr.checkpoints import random_encoder
from clmr.datasets.synthetic import SyntheticDataset
from clmr.evaluation import probabilities, track_level_scores, track_metrics
from clmr.models import build_head
from clmr.representations import crop_plan, encode


def test_pass(encoder, head, dataset, tracks, starts, batch_size: int, device: str) -> dict[str, float]:
    """Seconds spent encoding, in the head, and scoring; the scores themselves are discarded."""
    began = time.perf_counter()
    if batch_size:
        features = encode(encoder, dataset, tracks, starts, batch_size, device=device)
    else:  # one track per batch
        features = torch.cat(
            [
                encode(encoder, dataset, tracks[tracks == t], starts[tracks == t], 1 << 16, device=device)
                for t in range(len(dataset))
            ]
        )
    encoded = time.perf_counter()
    with torch.no_grad():
        logits = head(features).numpy()
    headed = time.perf_counter()
    scores = track_level_scores(probabilities(logits, True), tracks, len(dataset))
    track_metrics(dataset.targets, scores, dataset.tag_names, True)
    done = time.perf_counter()
    return {"encode": encoded - began, "head": headed - encoded, "score": done - headed, "total": done - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default=None, help="default: a temporary folder")
    parser.add_argument("--n_tracks", type=int, default=160, help="synthetic tracks in all (15%% are the test set)")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per track (4 chunks at 12 s)")
    parser.add_argument("--batch_size", type=int, default=256, help="chunks per batch (finetuner_batch_size)")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each kind; the table shows medians")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--record", action="store_true", help="write the table to docs/PERFORMANCE.md")
    args = parser.parse_args()
    about = machine()  # before the run: its load average is the one at the start

    dataset = SyntheticDataset(
        args.dataset_dir or tempfile.mkdtemp(), "test", n_tracks=args.n_tracks, duration=args.duration, seed=42
    )
    tracks, starts = crop_plan(dataset, "chunks")
    encoder, head = random_encoder(0), build_head(512, dataset.n_classes, mlp=False)
    print(f"{len(dataset)} test tracks, {len(tracks)} chunks, device {args.device}")

    variants = (
        (f"chunks of many tracks, batch {args.batch_size}", args.batch_size),
        ("one track per batch (original)", 0),
    )
    times: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for _ in range(args.repeat):  # interleaved, so that a change of load hits both alike
        for name, batch in variants:
            times[name].append(test_pass(encoder, head, dataset, tracks, starts, batch, args.device))
    rows, totals = [], []
    for name, _ in variants:
        t = {k: float(np.median([x[k] for x in times[name]])) for k in times[name][0]}
        totals.append(t)
        rows.append(
            [
                name,
                len(dataset) / t["total"],
                len(tracks) / t["encode"],
                t["encode"],
                1000 * t["head"],
                1000 * t["score"],
            ]
        )
    text = table(["batching", "tracks/s", "chunks/s (encoder)", "encode s", "head ms", "scoring ms"], rows)
    command = "python bench/bench_evaluation.py " + shlex.join(sys.argv[1:])
    body = (
        f"Test pass of `linear_evaluation.py`: {len(dataset)} synthetic tracks of {args.duration:g} s, "
        f"{len(tracks)} chunks of 59,049 samples, SampleCNN on {args.device}, linear head, track-level "
        f"averaging and macro ROC-AUC/PR-AUC.\n\n{text}\n\n"
        f"The encoder takes {totals[0]['encode'] / totals[0]['total']:.1%} of the batched pass; batching chunks "
        f"of many tracks is {totals[1]['total'] / totals[0]['total']:.2f}x as fast as one track per batch "
        f"here. The representations are cached, so a second probe of the same checkpoint skips the "
        f"encoder.\n\n{about}\n\n`{command.strip()}`"
    )
    print("\n" + text)
    if args.record:
        record("Evaluation", body)
        print("recorded in docs/PERFORMANCE.md (## Evaluation)")


if __name__ == "__main__":
    main()
