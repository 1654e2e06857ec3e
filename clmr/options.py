"""What every option may hold: its type and its allowed range or choices, in one table (`RULES`).

`clmr.config.load_config` applies a key's rule to its final value, whether that came from
config/config.yaml, a --config file or a flag: a YAML value is read as the text a flag would be and
typed and checked the same way. A refusal names the flag (or the file and key), the value and what was
expected: `--batch_size 0: expected an integer >= 2 (...)`. Scripts declare their own options as
`Option(default, rule)` the same way. Choices that belong to a library (datasets, Lightning's
accelerators, strategies and precisions) are looked up there when a value needs checking, so that
`import clmr.config` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clmr.rules import (
    BatchLimit,
    Choice,
    Devices,
    Exactly,
    Integer,
    Number,
    Option,
    Refused,
    Rule,
    Switch,
    Text,
    rule_for_default,
)

__all__ = ["CHECKS", "RULES", "Option", "Refused", "Rule", "rule_for_default"]

SEED_RANGE = (0, 2**32 - 1)  # seed_everything (and numpy's legacy seeding) take unsigned 32-bit seeds
MIN_TRAINING_BATCH = 2  # BatchNorm cannot train on a batch of one (SampleCNN's last block has one frame)
OPTIMIZERS = ("Adam", "LARS")
AUGMENT_ON = ("device", "workers")
FINETUNER_PROTOCOLS = ("clmr", "chunks")
ONLINE_EVAL = ("knn", "linear", "none")


# -- choices looked up where they are defined -----------------------------------------------------------
def dataset_names() -> tuple[str, ...]:
    from clmr.datasets import REGISTRY

    return tuple(REGISTRY)


def mtat_splits() -> tuple[str, ...]:
    from clmr.datasets.magnatagatune import SPLITS

    return SPLITS


def sample_cnn_crop() -> int:
    from clmr.models import SampleCNN

    return SampleCNN.receptive_field()


def min_synthetic_tracks() -> int:
    from clmr.datasets.synthetic import min_tracks

    return min_tracks()


def lightning_accelerators() -> tuple[str, ...]:
    from pytorch_lightning.accelerators import AcceleratorRegistry

    return tuple(sorted(AcceleratorRegistry.available_accelerators()))


def lightning_strategies() -> tuple[str, ...]:
    from pytorch_lightning.strategies import StrategyRegistry

    return tuple(StrategyRegistry.available_strategies())


def lightning_precisions() -> tuple[str, ...]:
    """Every precision the Trainer's signature names (`32-true`, `bf16-mixed`, the aliases `32`, `bf16`, ...)."""
    import typing

    from pytorch_lightning import Trainer

    def literals(annotation: Any) -> list[Any]:
        if typing.get_origin(annotation) is typing.Literal:
            return list(typing.get_args(annotation))
        return [value for arg in typing.get_args(annotation) for value in literals(arg)]

    return tuple(dict.fromkeys(str(v) for v in literals(typing.get_type_hints(Trainer.__init__)["precision"])))


PROBABILITY = Number(0, 1, what="a probability")


@dataclass(frozen=True)
class OptionalChoice(Choice):
    """One of the choices, or "" for a default that another key decides (said in `empty`)."""

    empty: str = ""

    def parse(self, text: str) -> str:
        return "" if not text.strip() else super().parse(text)

    def expected(self) -> str:
        return f'{super().expected()}, or "" ({self.empty})'


RULES: dict[str, Rule] = {
    "workers": Integer(-1, note="-1: chosen per GPU, none on the CPU"),
    "dataset_dir": Text(),
    "seed": Integer(*SEED_RANGE),
    "batch_size": Integer(MIN_TRAINING_BATCH, note="per device; BatchNorm cannot train on one example"),
    "max_epochs": Integer(-1, note="-1: no limit"),
    "dataset": Choice(dataset_names, unknown="dataset"),
    "supervised": Switch(),
    "projection_dim": Integer(1),
    "optimizer": Choice(OPTIMIZERS),
    "learning_rate": Number(0, low_open=True),
    "weight_decay": Number(0),
    "temperature": Number(0, low_open=True, note="NT-Xent divides by it"),
    "checkpoint_path": Text(),
    "resume": Switch(),
    "save_every_n_steps": Integer(0, note="0: only at the end of each epoch"),
    "augment_on": Choice(AUGMENT_ON),
    "sync_batchnorm": Switch(),
    "finetuner_mlp": Switch(),
    "finetuner_checkpoint_path": Text(),
    "finetuner_max_epochs": Integer(1),
    "finetuner_batch_size": Integer(
        MIN_TRAINING_BATCH, note="the random encoder's BatchNorm statistics are estimated in batches of it"
    ),
    "finetuner_learning_rate": Number(0, low_open=True),
    "finetuner_label_fraction": Number(0, 1, low_open=True, what="a fraction"),
    "finetuner_protocol": Choice(FINETUNER_PROTOCOLS),
    "bootstrap_resamples": Integer(1, note="resamples of the test tracks for each 95% interval"),
    "online_eval": Choice(ONLINE_EVAL),
    "online_eval_dataset": OptionalChoice(dataset_names, unknown="dataset", empty="the pre-training --dataset"),
    "online_eval_dataset_dir": Text(),
    "online_eval_every_n_epochs": Integer(1),
    "online_eval_train_tracks": Integer(
        1, note="the fixed subset of training tracks the valid tracks are classified from"
    ),
    "online_eval_k": Integer(1, note="neighbours of the kNN"),
    "audio_length": Exactly(sample_cnn_crop, note="SampleCNN encodes crops of exactly 3^10 samples"),
    "sample_rate": Integer(1),
    **{
        f"transforms_{name}": PROBABILITY
        for name in ("polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")
    },
    "synthetic_tracks": Integer(min_synthetic_tracks, note="the 70/15/15 split needs a track in each subset"),
    "synthetic_duration": Number(0, low_open=True, note="seconds"),
    "accelerator": Choice(lightning_accelerators, extra=("auto", "cpu", "gpu")),
    "devices": Devices(),
    "gpus": Integer(-1, note="-1: unused; 0: the CPU; N: N GPUs"),
    "num_nodes": Integer(1),
    "strategy": Choice(lightning_strategies, extra=("auto",)),
    "precision": Choice(lightning_precisions, extra=("auto",)),
    "compile": Switch(),
    "log_every_n_steps": Integer(1),
    "max_steps": Integer(-1, note="-1: no limit"),
    "limit_train_batches": BatchLimit(),
    "limit_val_batches": BatchLimit(),
    "check_val_every_n_epoch": Integer(1),
    "early_stopping_patience": Integer(0),
    "deterministic": Switch(),
    "log_dir": Text(),
    "run_name": Text(),
    "mtat_split": Choice(mtat_splits, unknown="MagnaTagATune split"),
    "mtat_base_url": Text(),
    "mtat_pons2017_url": Text(),
    "mtat_sota_url": Text(),
    "librispeech_url": Text(),
}


# -- checks of several keys, after each key's own rule ----------------------------------------------------
def check_synthetic_crop(values: dict[str, Any]) -> None:
    """A synthetic track must hold one crop of audio_length samples at sample_rate."""
    if values.get("dataset") != "synthetic":
        return
    duration, rate, length = values["synthetic_duration"], values["sample_rate"], values["audio_length"]
    if duration * rate < length:
        raise Refused(
            f"expected at least {length / rate:.3f} s, one crop of audio_length {length} samples at "
            f"sample_rate {rate} Hz",
            key="synthetic_duration",
        )


CHECKS: list[Callable[[dict[str, Any]], None]] = [check_synthetic_crop]
