"""main.py's pre-training with the original library's views: our loader, model, loss and Trainer, but each
batch's crops augmented by torchaudio-augmentations 0.2.4 in the side environment (bench/_parity_worker.py).

    python bench/_pretrain_original.py SIDE_PYTHON [main.py's flags ...]

Used by `bench/parity_original.py --mode pretraining`; the only change from `main.py` is the chain, swapped
for `OriginalViews` before main.py builds its module, so that everything else stays equal.
"""

from __future__ import annotations

import atexit
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import main as main_script  # noqa: E402  (the stage script whose chain is swapped)
from clmr import cli  # noqa: E402
from clmr.augmentations import STEPS  # noqa: E402

WORKER = Path(__file__).with_name("_parity_worker.py")
HEADER = struct.Struct("<qqq")  # as _parity_worker.py reads it: seed, number of crops, samples per crop


class OriginalViews(nn.Module):
    """(n, 1, time) crops -> (n, 1, time) views made by the original chain in a side-environment process.

    Each call sends a seed drawn from torch's global stream (seeded by main.py), so a run is reproducible."""

    def __init__(self, python: str, sample_rate: int, audio_length: int, probabilities: dict[str, float]):
        super().__init__()
        spec = {"sample_rate": sample_rate, "audio_length": audio_length, "probabilities": probabilities}
        self._spec = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="clmr-original-chain-")
        json.dump(spec, self._spec)
        self._spec.flush()
        self._worker = subprocess.Popen(
            [python, str(WORKER), "views", self._spec.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        atexit.register(self.close)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        samples = crops.detach().float().cpu().reshape(crops.shape[0], -1).numpy().astype("<f4")
        self._worker.stdin.write(HEADER.pack(seed, *samples.shape) + samples.tobytes())
        self._worker.stdin.flush()
        answer = self._worker.stdout.read(samples.nbytes)
        if len(answer) != samples.nbytes:
            raise RuntimeError(f"the original library's worker stopped (status {self._worker.wait()})")
        views = np.frombuffer(answer, dtype="<f4").copy()
        return torch.from_numpy(views).view_as(crops).to(crops.device, crops.dtype)

    def close(self) -> None:
        """Stop the worker (it ends when its stdin closes) and reap it, so its CPU time counts as ours."""
        if self._worker.poll() is None:
            self._worker.stdin.close()
            self._worker.wait()


def main() -> None:
    python, argv = sys.argv[1], sys.argv[2:]

    def original_chain(cfg, crop: bool = False) -> nn.Module:
        probabilities = {step: getattr(cfg, f"transforms_{step}") for step in STEPS}
        return OriginalViews(python, cfg.sample_rate, cfg.audio_length, probabilities)

    main_script.augmentation_chain = original_chain
    cli.run(lambda: main_script.main(argv))


if __name__ == "__main__":
    main()
