"""`bench/parity_original.py --mode pretraining`: pre-training with our chain against pre-training with views made
by torchaudio-augmentations 0.2.4, everything else equal, over several seeds, scored with paired intervals.

Our arm is bench/bench_learning.py's run of each seed (reused when that bench has already reached the step);
the original arm is the same main.py run with the chain swapped (bench/_pretrain_original.py): same seed,
synthetic data, crops, SampleCNN initialisation, optimiser and steps. Both are probed by linear_evaluation.py
on the same test tracks, so the difference ours - original has a paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench_learning as learning
from _common import ROOT, table
from clmr.uncertainty import compare_probes, interval_text

DRIVER = Path(__file__).with_name("_pretrain_original.py")


def learning_args(args: argparse.Namespace) -> argparse.Namespace:
    seeds = ",".join(str(s) for s in args.seeds)
    return learning.parse_args(["all", "--seeds", seeds, "--steps", str(args.step), "--out", str(args.out), "--quiet"])


def original_checkpoint(bench: argparse.Namespace, seed: int, step: int) -> Path:
    return bench.out / f"seed{seed}" / f"original_step{step}.ckpt"


def train_original(python: Path, bench: argparse.Namespace, seed: int, step: int) -> None:
    """The seed's main.py run with the original library's views, to `step` (kept when it exists)."""
    target = original_checkpoint(bench, seed, step)
    if target.exists():
        return
    run = f"pretrain_original_seed{seed}"
    last = bench.out / "runs" / run / "checkpoints" / "last.ckpt"
    argv = [sys.executable, str(DRIVER), str(python), *learning.common_flags(bench, seed), "--run_name", run]
    argv += ["--max_epochs", "-1", "--max_steps", str(step)] + (["--resume", "1"] if last.exists() else [])
    print(f"seed {seed}: pre-training with the original library's views to step {step}", flush=True)
    began, cpu = time.time(), learning.child_cpu_s()
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    timing = {"wall_s": time.time() - began, "cpu_s": learning.child_cpu_s() - cpu}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(last, tmp)
    os.replace(tmp, target)
    target.with_suffix(".json").write_text(json.dumps(timing))


def probe_original(bench: argparse.Namespace, seed: int, step: int) -> Path:
    """linear_evaluation.py of the original arm's checkpoint (same seed, so the same tracks and resamples)."""
    run = bench.out / "runs" / f"linear_original_seed{seed}_step{step}"
    if not (run / "results.json").exists():
        print(f"seed {seed}: probing the original arm at step {step}", flush=True)
        argv = [sys.executable, str(ROOT / "linear_evaluation.py"), *learning.common_flags(bench, seed)]
        argv += ["--checkpoint_path", str(original_checkpoint(bench, seed, step)), "--run_name", run.name]
        subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return run / "results.json"


def seed_entry(bench: argparse.Namespace, seed: int, step: int, original_results: Path) -> dict:
    """Both arms' scores and the paired differences of one seed."""
    ours_run = bench.out / "runs" / learning.linear_run(seed, step)
    ours = json.loads((ours_run / "results.json").read_text())
    random = json.loads(ours_run.with_name(ours_run.name + "_random").joinpath("results.json").read_text())
    original = json.loads(original_results.read_text())
    return {
        "seed": seed,
        "ours": ours,
        "original": original,
        "random": random,
        "ours_vs_original": compare_probes(ours, original)["difference"],
        "ours_vs_random": compare_probes(ours, random)["difference"],
        "original_vs_random": compare_probes(original, random)["difference"],
    }


def score(results: dict, key: str = "roc_auc") -> str:
    return f"{100 * results['metrics'][key]:.1f} {interval_text(results['metrics_ci'][key])}"


def difference(entry: dict, key: str = "roc_auc") -> str:
    return f"{100 * entry[key]['difference']:+.1f} {interval_text(entry[key]['ci'], signed=True)}"


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):+.1f} ± {100 * sd:.1f}"


def pretraining_mode(python: Path, args: argparse.Namespace) -> str:
    """Train and probe both arms for every seed (what exists is reused), then the table and its reading."""
    bench = learning_args(args)
    learning.train(bench)
    learning.probe(bench)
    for seed in bench.seeds:
        train_original(python, bench, seed, args.step)
    entries = [seed_entry(bench, s, args.step, probe_original(bench, s, args.step)) for s in bench.seeds]
    rows = [
        [
            str(e["seed"]),
            score(e["ours"]),
            score(e["original"]),
            score(e["random"]),
            difference(e["ours_vs_original"]),
            difference(e["ours_vs_original"], "pr_auc"),
            difference(e["ours_vs_random"]),
            difference(e["original_vs_random"]),
        ]
        for e in entries
    ]
    mean = ["mean ± sd", "", "", ""] + [
        spread([e[part][key]["difference"] for e in entries])
        for part, key in (
            ("ours_vs_original", "roc_auc"),
            ("ours_vs_original", "pr_auc"),
            ("ours_vs_random", "roc_auc"),
            ("original_vs_random", "roc_auc"),
        )
    ]
    header = [
        "seed",
        "ours ROC-AUC",
        "original ROC-AUC",
        "random ROC-AUC",
        "ours - original",
        "ours - original (PR-AUC)",
        "ours - random",
        "original - random",
    ]
    return f"{setup(bench, args.step)}\n\n{table(header, rows + [mean])}\n\n{reading(entries)}"


def setup(bench: argparse.Namespace, step: int) -> str:
    seeds = ", ".join(str(s) for s in bench.seeds)
    return (
        f"`python bench/parity_original.py --mode pretraining --seeds {seeds.replace(', ', ',')} --step {step} "
        "--record`: "
        f"config/demo.yaml at `--synthetic_tracks {bench.synthetic_tracks}`, {step} steps of batch 16 per arm, "
        f"seeds {seeds}; the arms differ only in the chain that turns the loader's two crops into views. "
        "Scores in %: macro ROC-AUC of the linear probe on the test tracks with its 95 % bootstrap interval; "
        "differences are paired (the same resamples of the same test tracks for both encoders)."
    )


def reading(entries: list[dict]) -> str:
    """In words: how many seeds' ours - original intervals lie above, below, or around zero."""
    above = sum(e["ours_vs_original"]["roc_auc"]["ci"][0] > 0 for e in entries)
    below = sum(e["ours_vs_original"]["roc_auc"]["ci"][1] < 0 for e in entries)
    n = len(entries)
    if above == n:
        return "Every seed's interval of ours - original lies above zero: our chain pre-trains better here."
    if below == n:
        return (
            "Every seed's interval of ours - original lies below zero: the original library's views "
            "pre-train better here."
        )
    return (
        f"Of {n} seeds, {above} interval(s) of ours - original lie above zero and {below} below; the rest include "
        "zero: at this budget the two chains cannot be told apart by these test tracks."
    )
