"""The model folder of the browser page (web/): what `export.py --web DIR` copies there.

The page (web/index.html, served by web/serve.py) reads `clmr_tagger.json` for the tag names, the
input name and shape, the sample rate and the shortest usable track, runs `clmr_tagger.onnx` on
every chunk, and `clmr_encoder.onnx`, when present, for the track embedding.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clmr.atomic import atomic_path
from clmr.config import ConfigError
from clmr.export import ENCODER_FILE, TAGGER_FILE, TAGS_FILE

PAGE_FILES = (ENCODER_FILE, TAGGER_FILE, TAGS_FILE)  # the JSON last: it is what the page reads first


def check_web_dir(web_dir: str | os.PathLike) -> Path:
    """The --web folder, refused before any export work when it cannot be one."""
    web_dir = Path(web_dir)
    if web_dir.exists() and not web_dir.is_dir():
        raise ConfigError(f"--web {web_dir}: exists and is not a folder; expected a folder for the page's model")
    return web_dir


def publish_for_web(out_dir: str | os.PathLike, web_dir: str | os.PathLike) -> list[Path]:
    """Copy the exported tagger, its JSON and the encoder from `out_dir` into `web_dir`, each atomically."""
    out_dir, web_dir = Path(out_dir), check_web_dir(web_dir)
    missing = [name for name in PAGE_FILES if not (out_dir / name).is_file()]
    if missing:
        raise ConfigError(
            f"--web {web_dir}: {', '.join(missing)} not in {out_dir}; the page needs the tagger "
            f"(--finetuner_checkpoint_path) and the encoder"
        )
    copied = []
    for name in PAGE_FILES:
        target = web_dir / name
        if target.resolve() != (out_dir / name).resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(out_dir / name, tmp)
        copied.append(target)
    return copied
