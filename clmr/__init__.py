"""CLMR: Contrastive Learning of Musical Representations.

The HEAR-style API for other code (imported on first use, so `import clmr` stays light):

    model = clmr.load_model("encoder.ckpt")                       # sample_rate 22050, 512-d embeddings
    clmr.get_scene_embeddings(audio, model)                       # (n_sounds, n_samples) -> (n_sounds, 512)
    clmr.get_timestamp_embeddings(audio, model)                   # -> (n_sounds, n_chunks, 512), centres in ms
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "load_model": "clmr.hear",
    "get_scene_embeddings": "clmr.hear",
    "get_timestamp_embeddings": "clmr.hear",
    "ClmrModel": "clmr.hear",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clmr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
