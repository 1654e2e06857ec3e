"""Fetch (where possible), verify, extract and convert a dataset to mono 16-bit wav at --sample_rate.

    python preprocess.py --dataset magnatagatune --dataset_dir ./data --download --workers 8
    python preprocess.py --dataset audio --dataset_dir ~/music --sample_rate 22050

Re-running converts only what is missing; <output>/manifest.json lists what was converted, skipped
and why, and what failed and why. See docs/DATASETS.md for each dataset's layout.
"""

from __future__ import annotations

from clmr import cli
from clmr.config import load_config
from clmr.preprocessing import summary
from clmr.rules import Option, Switch, Text

EXTRA = {
    "download": Option(0, Switch(), "fetch the dataset first (magnatagatune, librispeech)"),
    "output_dir": Option(
        "", Text(), "--dataset audio: where the converted copy goes (default: <dataset_dir>_<rate>hz)"
    ),
}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="preprocess.py", extra=EXTRA)
    from clmr.datasets.prepare import prepare

    print(summary(prepare(cfg)))


if __name__ == "__main__":
    cli.run(main)
