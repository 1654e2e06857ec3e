"""Linear (or MLP) evaluation of a frozen encoder: track-level ROC-AUC / PR-AUC (tags) or accuracy (classes).

    python linear_evaluation.py --checkpoint_path runs/pretrain_synthetic/checkpoints/last.ckpt
    python linear_evaluation.py --checkpoint_path clmr_checkpoint_10000.ckpt --dataset magnatagatune --gpus 1
    python linear_evaluation.py --checkpoint_path random                     # the random-encoder baseline
    python linear_evaluation.py --checkpoint_path PATH --compare_random 1    # both, side by side

Encoders load from our checkpoints and the original CLMR's (v2 .ckpt, v1 .pt); see docs/EVALUATION.md.
"""

from __future__ import annotations

from argparse import Namespace

from clmr import cli
from clmr.atomic import write_json
from clmr.checkpoints import RANDOM
from clmr.config import ConfigError, load_config
from clmr.probe import check_config, check_outputs, encoder_from_config, probe_encoder, run_probe
from clmr.probe_outputs import format_comparison, format_results
from clmr.rules import Option, Switch
from clmr.trainer import run_name, tensorboard_hint
from clmr.uncertainty import compare_probes

EXTRA = {
    "compare_random": Option(
        0, Switch(), "1: also probe a randomly initialised encoder (run <run_name>_random), side by side"
    )
}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="linear_evaluation.py", extra=EXTRA)
    if cfg.compare_random and cfg.checkpoint_path == RANDOM:
        raise ConfigError(
            "--compare_random 1 compares a checkpoint with a random encoder; --checkpoint_path is already `random`"
        )
    baseline_cfg = Namespace(
        **{**vars(cfg), "run_name": run_name(cfg, "linear") + "_random", "finetuner_checkpoint_path": ""}
    )
    check_config(cfg)
    for outputs in (cfg, baseline_cfg) if cfg.compare_random else (cfg,):
        check_outputs(outputs)  # before the checkpoint is read and anything is extracted
    results = run_probe(cfg, encoder_from_config(cfg))
    print(format_results(results))
    if cfg.compare_random:
        baseline = run_probe(baseline_cfg, probe_encoder(RANDOM, cfg.seed))
        results["comparison"] = compare_probes(results, baseline)  # the paired difference, in results.json too
        write_json(results["outputs"]["results"], results)
        print("\n" + format_results(baseline) + "\n\n" + format_comparison(results, baseline))
    print(f"\nview: {tensorboard_hint(cfg)}")


if __name__ == "__main__":
    cli.run(main)
