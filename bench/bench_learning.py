"""Learning curves: does pre-training beat a random SampleCNN on the embedded dataset, and after how many steps?

    python bench/bench_learning.py train            # pre-train every seed up to every probe step (resumable)
    python bench/bench_learning.py probe            # linear evaluation (+ the online kNN metric) of every checkpoint
    python bench/bench_learning.py report --record  # the table and docs/learning_curve.png, into docs/LEARNING.md
    python bench/bench_learning.py all              # the three in a row

Each seed is one `main.py` run of `config/demo.yaml` (at `--synthetic_tracks`, default 480 for 72 test tracks),
stopped at each probe step with `--max_steps` and continued with `--resume 1`, so the checkpoints at 75, 150, ...
steps are those of one uninterrupted run. Seeds advance together, one probe step at a time: a bench stopped early
still has every seed up to the same step. Each checkpoint is then probed by `linear_evaluation.py --compare_random 1`
(the same seed's random encoder, paired bootstrap over test tracks), and the table gives per step the mean and
spread over seeds, and the first step at which the paired difference's interval lies above zero.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, command, machine

DEFAULT_OUT = ROOT / "runs" / "bench_learning"


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def common_flags(args: argparse.Namespace, seed: int) -> list[str]:
    """The flags every stage of one seed shares: the demo config, its data, and this bench's run folders."""
    return [
        "--config",
        str(ROOT / "config" / "demo.yaml"),
        "--seed",
        str(seed),
        "--synthetic_tracks",
        str(args.synthetic_tracks),
        "--dataset_dir",
        str(args.out / "data"),
        "--log_dir",
        str(args.out / "runs"),
    ]


def step_checkpoint(args: argparse.Namespace, seed: int, step: int) -> Path:
    return args.out / f"seed{seed}" / f"step{step}.ckpt"


def train(args: argparse.Namespace) -> None:
    """Every seed to every probe step; what already exists is kept, so a stopped bench continues."""
    for step in args.steps:
        for seed in args.seeds:
            target = step_checkpoint(args, seed, step)
            if target.exists():
                continue
            last = args.out / "runs" / f"pretrain_seed{seed}" / "checkpoints" / "last.ckpt"
            argv = [
                sys.executable,
                str(ROOT / "main.py"),
                *common_flags(args, seed),
                "--run_name",
                f"pretrain_seed{seed}",
                "--max_epochs",
                "-1",
                "--max_steps",
                str(step),
            ] + (["--resume", "1"] if last.exists() else [])
            began, cpu = time.time(), child_cpu_s()
            print(f"seed {seed}: pre-training to step {step}", flush=True)
            subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL if args.quiet else None)
            timing = {"wall_s": time.time() - began, "cpu_s": child_cpu_s() - cpu}
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(last, tmp)
            os.replace(tmp, target)
            previous = timing_of(args, seed, step, before=True)
            timing = {k: v + previous.get(k, 0.0) for k, v in timing.items()}  # cumulative from step 0
            target.with_suffix(".json").write_text(json.dumps(timing))


def timing_of(args: argparse.Namespace, seed: int, step: int, before: bool = False) -> dict[str, float]:
    """Cumulative wall and CPU seconds of pre-training up to `step` (or to the probe step before it)."""
    steps = [s for s in args.steps if (s < step if before else s == step)]
    if not steps:
        return {}
    path = step_checkpoint(args, seed, steps[-1]).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else {}


def linear_run(seed: int, step: int) -> str:
    return f"linear_seed{seed}_step{step}"


def probe_file(args: argparse.Namespace, seed: int, step: int) -> Path:
    return args.out / f"seed{seed}" / f"probe_step{step}.json"


def online_scores(args: argparse.Namespace, seed: int, checkpoint: Path | None) -> dict[str, float]:
    """The online evaluation's metric (cosine kNN, as during pre-training) of a checkpoint, or of the seed's
    random encoder (BatchNorm calibrated on the training crops) for `None`."""
    from clmr.checkpoints import RANDOM, load_encoder
    from clmr.config import load_config
    from clmr.datasets import dataset_from_config
    from clmr.online_evaluation import OnlineSplit, evaluate_encoder

    cfg = load_config(common_flags(args, seed), prog="bench_learning.py")
    train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
    encoder = load_encoder(RANDOM if checkpoint is None else checkpoint, seed=seed)
    return evaluate_encoder(
        encoder,
        OnlineSplit.of(train, cfg.online_eval_train_tracks, seed),
        OnlineSplit.of(valid, len(valid), seed),
        cfg.online_eval,
        cfg.online_eval_k,
        cfg.finetuner_batch_size,
        calibrate=checkpoint is None,
    )


def probe(args: argparse.Namespace) -> None:
    """Linear evaluation (paired with the seed's random encoder) and the online metric of every checkpoint."""
    for step in args.steps:
        for seed in args.seeds:
            checkpoint, target = step_checkpoint(args, seed, step), probe_file(args, seed, step)
            if target.exists() or not checkpoint.exists():
                continue
            print(f"seed {seed}: probing step {step}", flush=True)
            argv = [
                sys.executable,
                str(ROOT / "linear_evaluation.py"),
                *common_flags(args, seed),
                "--checkpoint_path",
                str(checkpoint),
                "--compare_random",
                "1",
                "--run_name",
                linear_run(seed, step),
            ]
            began = time.time()
            subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL if args.quiet else None)
            run = args.out / "runs" / linear_run(seed, step)
            pretrained = json.loads((run / "results.json").read_text())
            baseline = json.loads(run.with_name(run.name + "_random").joinpath("results.json").read_text())
            entry = {
                "seed": seed,
                "step": step,
                "probe_wall_s": time.time() - began,
                "pretrained": {"metrics": pretrained["metrics"], "ci": pretrained["metrics_ci"]},
                "random": {"metrics": baseline["metrics"], "ci": baseline["metrics_ci"]},
                "difference": pretrained["comparison"]["difference"],
                "online": online_scores(args, seed, checkpoint),
                "training": timing_of(args, seed, step),
                "test_tracks": pretrained["dataset"]["splits"]["test"]["tracks"],
            }
            if step == args.steps[0]:
                entry["online_random"] = online_scores(args, seed, None)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(json.dumps(entry, indent=1))
            os.replace(tmp, target)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=["train", "probe", "report", "all"])
    parser.add_argument("--seeds", default="1,2,3", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--steps", default="75,150,300,600", type=lambda s: sorted(int(x) for x in s.split(",")))
    parser.add_argument("--synthetic_tracks", type=int, default=480)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--record", action="store_true", help="write docs/LEARNING.md and docs/learning_curve.png")
    parser.add_argument("--quiet", action="store_true", help="hide main.py's output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine())
    print(command())
    if args.phase in ("train", "all"):
        train(args)
    if args.phase in ("probe", "all"):
        probe(args)
    if args.phase in ("report", "all"):
        from _learning_report import report

        report(
            args,
            [
                json.loads(probe_file(args, seed, step).read_text())
                for step in args.steps
                for seed in args.seeds
                if probe_file(args, seed, step).exists()
            ],
        )


if __name__ == "__main__":
    main()
