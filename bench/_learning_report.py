"""The report of bench_learning.py: per probe step, mean and spread over seeds, the paired difference against the
random encoder, the first step at which every seed's interval lies above zero, and docs/learning_curve.png."""

from __future__ import annotations

import argparse
import statistics

from _common import ROOT, command, machine, record, table

LEARNING = ROOT / "docs" / "LEARNING.md"
PLOT = ROOT / "docs" / "learning_curve.png"
METRICS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}


def spread(values: list[float], signed: bool = False) -> str:
    """Mean ± standard deviation over seeds, in percent (`+1.2 ± 0.4` for a difference)."""
    mean = f"{100 * statistics.fmean(values):{'+.1f' if signed else '.1f'}}"
    return f"{mean} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else mean


def by_step(entries: list[dict]) -> dict[int, list[dict]]:
    steps: dict[int, list[dict]] = {}
    for entry in sorted(entries, key=lambda e: (e["step"], e["seed"])):
        steps.setdefault(entry["step"], []).append(entry)
    return steps


def rows(entries: list[dict]) -> list[list[object]]:
    out = []
    for step, group in by_step(entries).items():
        diffs = [e["difference"]["roc_auc"] for e in group]
        above = sum(d["ci"][0] > 0 for d in diffs)
        below = sum(d["ci"][1] < 0 for d in diffs)
        cpu_min = statistics.fmean(e["training"]["cpu_s"] for e in group) / 60
        out.append(
            [
                step,
                len(group),
                spread([e["pretrained"]["metrics"]["roc_auc"] for e in group]),
                spread([e["random"]["metrics"]["roc_auc"] for e in group]),
                spread([d["difference"] for d in diffs], signed=True),
                " ".join(f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]" for d in diffs),
                f"{above} above, {below} below",
                spread([e["difference"]["pr_auc"]["difference"] for e in group], signed=True),
                spread([e["online"]["roc_auc"] for e in group]),
                f"{cpu_min:.0f}",
            ]
        )
    return out


def overtakes(entries: list[dict]) -> str:
    """The sentence on the first probe step at which every seed's paired ROC-AUC interval lies above zero."""
    for step, group in by_step(entries).items():
        if all(e["difference"]["roc_auc"]["ci"][0] > 0 for e in group):
            cpu = statistics.fmean(e["training"]["cpu_s"] for e in group) / 60
            return (
                f"Pre-training first beats the random encoder at step **{step}**: there every seed's 95 % "
                f"interval of the paired ROC-AUC difference lies above zero (about {cpu:.0f} CPU minutes of "
                f"pre-training per seed on this machine)."
            )
    last = max(e["step"] for e in entries)
    return (
        f"Within the budget of {last} steps, at no probe step did every seed's 95 % interval of the paired "
        f"ROC-AUC difference lie above zero: pre-training had not yet beaten the random encoder."
    )


def plot(entries: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_step(entries)
    steps = [0] + list(groups)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "linear", "linear probe, test tracks"), (axes[1], "online", "online kNN, valid")):
        first = groups[min(groups)]
        for seed_idx, seed in enumerate(sorted({e["seed"] for e in entries})):
            if key == "linear":
                ys = [next(e for e in first if e["seed"] == seed)["random"]["metrics"]["roc_auc"]] + [
                    next((e["pretrained"]["metrics"]["roc_auc"] for e in g if e["seed"] == seed), float("nan"))
                    for g in groups.values()
                ]
                lows = [None] + [
                    next((e["pretrained"]["ci"]["roc_auc"] for e in g if e["seed"] == seed), None)
                    for g in groups.values()
                ]
            else:
                start = (
                    next(e for e in first if e["seed"] == seed).get("online_random", {}).get("roc_auc", float("nan"))
                )
                ys = [start] + [
                    next((e["online"]["roc_auc"] for e in g if e["seed"] == seed), float("nan"))
                    for g in groups.values()
                ]
                lows = [None] * len(ys)
            ax.plot(steps, [100 * y for y in ys], marker="o", color=f"C{seed_idx}", label=f"seed {seed}")
            for x, ci in zip(steps, lows):
                if ci:
                    ax.vlines(x, 100 * ci[0], 100 * ci[1], color=f"C{seed_idx}", alpha=0.4)
        if key == "linear":
            randoms = [100 * e["random"]["metrics"]["roc_auc"] for e in first]
            ax.axhspan(min(randoms), max(randoms), color="grey", alpha=0.2, label="random encoder (seeds)")
        ax.set_title(title)
        ax.set_xlabel("pre-training step (batch 16)")
        ax.set_ylabel("macro ROC-AUC (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def report(args: argparse.Namespace, entries: list[dict]) -> None:
    if not entries:
        print("nothing probed yet: run `python bench/bench_learning.py train` and `probe` first")
        return
    header = [
        "step",
        "seeds",
        "pre-trained ROC-AUC",
        "random ROC-AUC",
        "paired difference",
        "95% intervals (per seed)",
        "intervals vs 0",
        "PR-AUC difference",
        "online kNN ROC-AUC",
        "CPU min",
    ]
    tracks = entries[0]["test_tracks"]
    body = "\n\n".join(
        [
            f"Machine: {machine()}",
            f"Command: `{command()}`",
            f"config/demo.yaml at `--synthetic_tracks {args.synthetic_tracks}` ({tracks} test tracks), seeds "
            f"{', '.join(map(str, args.seeds))}; scores in %, mean ± standard deviation over seeds; the paired "
            f"difference is pre-trained minus the same seed's random encoder on the same test tracks, its interval from "
            f"1000 bootstrap resamples of the test tracks; the online metric is the valid split's cosine kNN ROC-AUC; "
            f"CPU min: the pre-training process's CPU time up to that step (wall time depends on the load).",
            table(header, rows(entries)),
            overtakes(entries),
            "![learning curve](learning_curve.png)",
        ]
    )
    print(body)
    if args.record:
        plot(entries)
        record("Measured learning curve", body, path=LEARNING)
