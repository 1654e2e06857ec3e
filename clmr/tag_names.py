"""The names of a probe head's outputs: from a JSON list, the head checkpoint, its probe run, or its dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clmr.checkpoints import FINETUNER_FLAG, CheckpointError, hyper_parameters, read_checkpoint


def read_tag_names(path: str | os.PathLike) -> list[str]:
    """A JSON list of tag names (or an object with a `tags` list, as export.py writes beside the model)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--tags {path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"--tags {path}: not JSON ({err})") from None
    tags = data.get("tags") if isinstance(data, dict) else data
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CheckpointError(f"--tags {path}: expected a JSON list of tag names")
    return tags


def head_labels(
    path: str | os.PathLike, n_tags: int, tags: Sequence[str] | str | os.PathLike | None = None
) -> tuple[list[str], bool]:
    """(tag names, multilabel) of the head in finetuner checkpoint `path`, which scores `n_tags` outputs.

    Tag names, first found: `tags` (a list, or a JSON file), the checkpoint's `tag_names`
    hyper-parameter, the `results.json` of the probe run the checkpoint belongs to
    (`<run>/checkpoints/best.ckpt` -> `<run>/results.json`), the names fixed in code for the dataset the
    checkpoint names (`TAG_NAMES` of its class: synthetic, gtzan); failing all, `tag_0 ... tag_{n-1}`.
    """
    hparams = hyper_parameters(read_checkpoint(path, FINETUNER_FLAG))
    dataset = _dataset_class(hparams.get("dataset"))
    multilabel = hparams.get("multilabel")
    if multilabel is None:
        multilabel = getattr(dataset, "multilabel", True)
    if isinstance(tags, (str, os.PathLike)):
        names = read_tag_names(tags) if str(tags) else []
    else:
        names = list(tags or [])
    fixed = list(getattr(dataset, "TAG_NAMES", ()))
    names = (
        names
        or list(hparams.get("tag_names") or [])
        or _run_tag_names(path, n_tags)
        or (fixed if len(fixed) == n_tags else [])
        or [f"tag_{i}" for i in range(n_tags)]
    )
    if len(names) != n_tags:
        raise CheckpointError(
            f"{FINETUNER_FLAG} {path}: the head has {n_tags} outputs but {len(names)} tag names were given"
        )
    return [str(n) for n in names], bool(multilabel)


def _dataset_class(name: Any) -> type | None:
    from clmr.datasets import REGISTRY, dataset_class

    if name not in REGISTRY:
        return None
    try:
        return dataset_class(name)
    except ImportError:
        return None


def _run_tag_names(head_path: str | os.PathLike, n_tags: int) -> list[str]:
    """The tag names in the results.json of the probe run a head checkpoint was saved in."""
    results = Path(head_path).resolve().parent.parent / "results.json"
    try:
        tags = json.loads(results.read_text())["dataset"]["tags"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(t) for t in tags] if isinstance(tags, list) and len(tags) == n_tags else []
