"""Pre-training: pairs/s end to end (read, augment, forward, backward, Adam) and the share of each step spent waiting.

    python bench/bench_pretraining.py           # prints the tables
    python bench/bench_pretraining.py --record  # and rewrites `## Pre-training` of docs/PERFORMANCE.md
    python bench/bench_pretraining.py --steps 5 --step_repeat 2 --skip_compile   # a quick look

Two parts, both at `--batch_size` pairs (32 crops at 16) with SampleCNN + projector + NT-Xent + Adam:

1. The training step alone, on random crops already in memory: fp32 against bf16-mixed autocast,
   eager against `torch.compile` of the encoder (compile time reported on its own).
2. End to end, through what `main.py` runs: wav clips -> CropDataset -> crop_loader -> the batched
   augmentation chain (on the device, or per example in the DataLoader workers) -> the step.
   Wait is the time from the end of one optimizer step until the next batch is in hand.

The end-to-end loop is a plain loop over the same objects `ContrastiveLearning` holds (its
`on_after_batch_transfer` and `forward`), so each phase can be timed on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_loading import Clips, make_clips
from pytorch_lightning import Callback

from _common import command, machine, record, table
from clmr.config import load_config
from clmr.models import SampleCNN
from clmr.modules.optimizers import build_optimizer
from clmr.stages import augmentation_chain, contrastive_module, training_loader
from clmr.trainer import build_trainer, native_bf16, resolve_precision

ORIGINAL_PAIRS_PER_S = 3.84  # the original CLMR stack on this kind of machine, batch 16 (see docs/PERFORMANCE.md)
ORIGINAL_STEP_S = 3.9  # its forward + backward of SampleCNN on 32 crops
TARGET_SPEEDUP, TARGET_WAIT = 1.3, 0.10  # at least 1.3x the original's pairs/s, under 10% of the step waiting


def autocast(precision: str, device: torch.device):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def build(cfg, device: torch.device):
    """The module main.py builds (its encoder compiled if cfg.compile), on `device`, and its optimiser."""
    chain = augmentation_chain(cfg)
    module = contrastive_module(cfg, SampleCNN(out_dim=50), augment=chain if cfg.augment_on == "device" else None)
    module.to(device).train()
    optimizer = build_optimizer(module.model.parameters(), module.hparams)
    return module, optimizer, chain


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(module, optimizer, views, precision: str, device: torch.device) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, device):
        loss = module(views[:, 0], views[:, 1])
    loss.backward()
    optimizer.step()


# -- 1. the step alone ---------------------------------------------------------------------------
def step_alone(cfg, device, precision: str, args) -> dict:
    torch.manual_seed(0)
    module, optimizer, _ = build(cfg, device)
    views = 0.1 * torch.randn(cfg.batch_size, 2, 1, cfg.audio_length, device=device)
    began = time.perf_counter()
    train_step(module, optimizer, views, precision, device)  # the first step compiles
    sync(device)
    first = time.perf_counter() - began
    times, cpu = [], []
    for _ in range(args.step_repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        train_step(module, optimizer, views, precision, device)
        sync(device)
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return {"first": first, "step": statistics.median(times), "cpu": statistics.median(cpu)}


def step_table(base_argv: list[str], device, args) -> tuple[str, dict]:
    rows, results = [], {}
    variants = [(p, c) for c in (False, True) for p in ("32-true", "bf16-mixed") if not (c and args.skip_compile)]
    for precision, compiled in variants:
        cfg = load_config(base_argv + ["--compile", str(int(compiled))])
        r = step_alone(cfg, device, precision, args)
        results[(precision, compiled)] = r
        name = "compiled" if compiled else "eager"
        rows.append(
            [
                precision,
                name,
                f"{r['step']:.2f}",
                f"{r['cpu']:.2f}",
                f"{cfg.batch_size / r['step']:.2f}",
                f"{ORIGINAL_STEP_S / r['step']:.2f}x",
                f"{r['first']:.1f}",
            ]
        )
        print(f"  {precision:10s} {name:8s} {r['step']:.2f} s/step  (first step {r['first']:.1f} s)", flush=True)
    return table(
        [
            "precision",
            "encoder",
            "s/step",
            "CPU s/step",
            "pairs/s (step only)",
            "vs original 3.9 s",
            "first step, s (compiles)",
        ],
        rows,
    ), results


# -- 2. end to end -------------------------------------------------------------------------------
def end_to_end(cfg, device, dataset, args) -> dict:
    torch.manual_seed(0)
    module, optimizer, chain = build(cfg, device)
    loader = training_loader(
        dataset, cfg, train=True, n_views=2, transform=chain if cfg.augment_on == "workers" else None
    )
    waits, augments, steps, totals = [], [], [], []
    batches = iter(loader)
    for k in range(args.warmup + args.steps):
        began = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:  # a new epoch, as in training
            batches = iter(loader)
            batch = next(batches)
        batch = (batch[0].to(device, non_blocking=True), batch[1])
        sync(device)
        ready = time.perf_counter()
        views, _ = module.on_after_batch_transfer(batch, 0)
        sync(device)
        augmented = time.perf_counter()
        train_step(module, optimizer, views, cfg.precision, device)
        sync(device)
        done = time.perf_counter()
        if k >= args.warmup:
            waits.append(ready - began)
            augments.append(augmented - ready)
            steps.append(done - augmented)
            totals.append(done - began)
    del batches, loader
    total, step = sum(totals), statistics.median(totals)
    return {
        "pairs_per_s": cfg.batch_size / step,
        "step": step,
        "wait": sum(waits) / total,
        "augment": sum(augments) / total,
        "train": sum(steps) / total,
        "wait_max": max(waits),
    }


class StepTimer(Callback):
    """When each training batch starts (fetched, moved, augmented) and ends (after the optimizer step)."""

    def __init__(self, device: torch.device):
        self.device, self.starts, self.ends = device, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        sync(self.device)
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        self.ends.append(time.perf_counter())


def through_lightning(cfg, device, dataset, args, log_dir: str) -> dict:
    """main.py's path: the Lightning Trainer from build_trainer fitting ContrastiveLearning on crop_loader."""
    torch.manual_seed(0)
    chain = augmentation_chain(cfg)
    module = contrastive_module(cfg, SampleCNN(out_dim=50), augment=chain if cfg.augment_on == "device" else None)
    loader = training_loader(
        dataset, cfg, train=True, n_views=2, transform=chain if cfg.augment_on == "workers" else None
    )
    timer = StepTimer(device)
    cfg.log_dir, cfg.max_steps, cfg.limit_val_batches = log_dir, args.warmup + args.steps, 0
    trainer = build_trainer(cfg, "pretrain", [timer], enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(module, loader)
    starts, ends, previous = timer.starts[args.warmup :], timer.ends[args.warmup :], timer.ends[args.warmup - 1 :]
    step = statistics.median(end - before for before, end in zip(previous, ends))
    between = sum(start - before for start, before in zip(starts, previous))
    return {"pairs_per_s": cfg.batch_size / step, "step": step, "between": between / (ends[-1] - previous[0])}


def e2e_table(base_argv, device, dataset, args) -> tuple[str, list]:
    rows, results = [], []
    for augment_on, workers in args.e2e:
        cfg = load_config(
            base_argv + ["--augment_on", augment_on, "--workers", str(workers), "--compile", str(args.compile)]
        )
        r = end_to_end(cfg, device, dataset, args)
        results.append((augment_on, workers, r))
        rows.append(
            [
                augment_on,
                workers,
                f"{r['pairs_per_s']:.2f}",
                f"{r['pairs_per_s'] / ORIGINAL_PAIRS_PER_S:.2f}x",
                f"{r['step']:.2f}",
                f"{r['wait']:.1%}",
                f"{r['augment']:.1%}",
                f"{r['train']:.1%}",
            ]
        )
        print(
            f"  augment_on {augment_on:7s} workers {workers}: {r['pairs_per_s']:.2f} pairs/s, "
            f"wait {r['wait']:.1%}, augment {r['augment']:.1%}, fwd+bwd+Adam {r['train']:.1%}",
            flush=True,
        )
    text = table(
        [
            "augment_on",
            "workers",
            "pairs/s",
            "vs original 3.84",
            "s/step",
            "waiting for data",
            "augmenting on device",
            "fwd+bwd+Adam",
        ],
        rows,
    )
    defaults = load_config([])
    default_rows = [r for a, w, r in results if (a, w) == (defaults.augment_on, max(defaults.workers, 0))]
    if default_rows:
        r = default_rows[0]
        met = r["pairs_per_s"] >= TARGET_SPEEDUP * ORIGINAL_PAIRS_PER_S and r["wait"] < TARGET_WAIT
        text += (
            f"\n\nTarget (config defaults, augment_on {defaults.augment_on}, workers {defaults.workers}): at least "
            f"{TARGET_SPEEDUP}x the original's pairs/s ({TARGET_SPEEDUP * ORIGINAL_PAIRS_PER_S:.2f}) with under "
            f"{TARGET_WAIT:.0%} of the time waiting for data: **{'met' if met else 'not met'}** "
            f"({r['pairs_per_s'] / ORIGINAL_PAIRS_PER_S:.2f}x, {r['wait']:.1%} waiting)."
        )
    if args.lightning:
        cfg = load_config(base_argv + ["--compile", str(args.compile)])
        with tempfile.TemporaryDirectory(prefix="clmr-bench-runs-") as log_dir:
            r = through_lightning(cfg, device, dataset, args, log_dir)
        print(
            f"  main.py's Trainer (augment_on {cfg.augment_on}, workers {cfg.workers}): {r['pairs_per_s']:.2f} "
            f"pairs/s, between steps (data and augmentation) {r['between']:.1%}",
            flush=True,
        )
        text += (
            f"\n\nThrough main.py's path (the Lightning Trainer of `build_trainer` fitting `ContrastiveLearning`, "
            f"config defaults: augment_on {cfg.augment_on}, workers {cfg.workers}): "
            f"**{r['pairs_per_s']:.2f} pairs/s** ({r['pairs_per_s'] / ORIGINAL_PAIRS_PER_S:.2f}x the original), "
            f"step {r['step']:.2f} s, {r['between']:.1%} of the time between one step's end and the "
            f"next one's start (fetching the batch and augmenting it on the device)."
        )
    return text, results


def parse_e2e(text: str) -> list[tuple[str, int]]:
    """`device:0,workers:2` -> [("device", 0), ("workers", 2)]."""
    return [(part.split(":")[0], int(part.split(":")[1])) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--precision", default=None, help="end-to-end precision (default: config/config.yaml's)")
    parser.add_argument(
        "--compile", type=int, default=None, help="end to end: 1 compiles the encoder (default: the config's)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=20, help="timed end-to-end steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (workers start, caches warm)")
    parser.add_argument("--step_repeat", type=int, default=5, help="timed steps per variant in part 1")
    parser.add_argument(
        "--e2e",
        type=parse_e2e,
        default=parse_e2e("device:0,device:1,workers:1,workers:2"),
        help="end-to-end configurations, augment_on:workers, comma-separated",
    )
    parser.add_argument("--clips", type=int, default=128, help="30 s wav clips to train on")
    parser.add_argument("--skip_step", action="store_true", help="skip part 1")
    parser.add_argument(
        "--no-lightning",
        dest="lightning",
        action="store_false",
        help="skip the run through the Lightning Trainer (config defaults)",
    )
    parser.add_argument("--skip_compile", action="store_true", help="part 1 without torch.compile")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--record", action="store_true", help="rewrite `## Pre-training` of docs/PERFORMANCE.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    accelerator = ["--accelerator", "gpu" if device.type == "cuda" else "cpu"]
    defaults = load_config(accelerator)
    precision = args.precision or resolve_precision(defaults, "pretrain")
    args.compile = defaults.compile if args.compile is None else args.compile
    base_argv = accelerator + ["--batch_size", str(args.batch_size), "--precision", precision]
    info = machine()
    print(info)

    step_text, steps = "", {}
    if not args.skip_step:
        print(f"training step alone, batch {args.batch_size} ({2 * args.batch_size} crops):")
        step_text, steps = step_table(base_argv, device, args)
    with tempfile.TemporaryDirectory(prefix="clmr-bench-pretraining-") as tmp:
        make_clips(Path(tmp), args.clips, mp3=0)
        dataset = Clips(Path(tmp))
        print(
            f"end to end, {args.steps} steps at batch {args.batch_size}, precision {precision}, compile {args.compile}:"
        )
        e2e_text, _ = e2e_table(base_argv, device, dataset, args)

    text = (
        f"Machine: {info}.\n\nCommand: `{command()}`. Original CLMR on this kind of machine (2 cores, one "
        f"process, 2 torch threads): {ORIGINAL_PAIRS_PER_S} pairs/s end to end at batch 16; forward and "
        f"backward of SampleCNN on 32 crops {ORIGINAL_STEP_S} s.\n\n"
    )
    if step_text:
        text += (
            f"Training step alone (SampleCNN + projector + NT-Xent + Adam, batch {args.batch_size}, random "
            f"crops in memory; median of {args.step_repeat} steps after the first; CPU s is the process's CPU "
            f"time, about threads x s/step when nothing else runs):\n\n{step_text}\n\n"
        )
    if ("32-true", False) in steps and ("bf16-mixed", False) in steps:
        fp32, bf16 = steps[("32-true", False)]["step"], steps[("bf16-mixed", False)]["step"]
        text += f"bf16-mixed steps are {fp32 / bf16:.2f}x as fast as fp32 here"
        if ("32-true", True) in steps:
            text += (
                f"; compiling the encoder speeds fp32 up {fp32 / steps[('32-true', True)]['step']:.2f}x and "
                f"bf16 {bf16 / steps[('bf16-mixed', True)]['step']:.2f}x"
            )
        native = "computes bf16 natively" if native_bf16(defaults) else "does not compute bf16 natively"
        text += (
            f". Hence the defaults `precision: auto` (bf16-mixed where the device computes bf16 natively, else "
            f"32-true; this one {native}) and `compile: 0`.\n\n"
        )
    text += (
        f"End to end ({args.clips} wav clips of 30 s, batch {args.batch_size}, precision {precision}, "
        f"compile {args.compile}, {args.steps} steps after {args.warmup} warm-up steps; pairs/s from the median "
        f"step, from the end of one optimizer step to the end of the next, data included; the shares are of "
        f"the total time of all steps):\n\n{e2e_text}\n\nLoad average at the end: {os.getloadavg()[0]:.1f}.\n"
    )
    print()
    print(text)
    if args.record:
        record("Pre-training", text)
        print("recorded in docs/PERFORMANCE.md (## Pre-training)")


if __name__ == "__main__":
    main()
