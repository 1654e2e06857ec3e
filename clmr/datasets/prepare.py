"""`preprocess.py`'s work for each dataset: fetch where possible, verify, extract, convert to wav.

Each named dataset class has a `prepare(dataset_dir, sample_rate, workers, download, ...)` classmethod, called
here with the values of the config (the dataset's own options too); the `audio` folder dataset is converted
here into a clean copy beside it.
"""

from __future__ import annotations

from pathlib import Path

from clmr.datasets import REGISTRY, DatasetError, dataset_class
from clmr.filenames import shown


def audio_output_dir(cfg) -> Path:
    """Where `--dataset audio` writes its clean copy: --output_dir, or `<dataset_dir>_<sample_rate>hz` beside it."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    source = Path(cfg.dataset_dir).resolve()
    return source.with_name(f"{source.name}_{cfg.sample_rate}hz")


def prepare(cfg) -> dict:
    """Prepare `cfg.dataset` under `cfg.dataset_dir`; returns the conversion manifest."""
    from clmr.preprocessing import convert_all, plan_mirror

    if cfg.dataset == "audio":
        source = Path(cfg.dataset_dir)
        if not source.is_dir():
            raise DatasetError(f"{shown(source)}: folder not found (--dataset_dir)")
        if cfg.download:
            raise DatasetError("--dataset audio is a local folder: there is nothing to download")
        out = audio_output_dir(cfg)
        return convert_all(
            plan_mirror(source, out), out, cfg.sample_rate, workers=cfg.workers, dataset="audio", flag="--output_dir"
        )
    cls = dataset_class(cfg.dataset)
    if not hasattr(cls, "prepare"):
        preparable = [n for n in REGISTRY if n == "audio" or hasattr(dataset_class(n), "prepare")]
        raise DatasetError(
            f"--dataset {cfg.dataset} needs no preprocessing; preprocess.py handles {', '.join(preparable)}"
        )
    options = {
        "magnatagatune": lambda: {
            "base_url": cfg.mtat_base_url,
            "split_urls": {"pons2017": cfg.mtat_pons2017_url, "sota": cfg.mtat_sota_url},
        },
        "librispeech": lambda: {"url": cfg.librispeech_url},
    }.get(cfg.dataset, dict)()
    return cls.prepare(cfg.dataset_dir, cfg.sample_rate, workers=cfg.workers, download=bool(cfg.download), **options)
