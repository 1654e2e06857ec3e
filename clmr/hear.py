"""The HEAR API on a trained encoder: `load_model`, `get_scene_embeddings`, `get_timestamp_embeddings`.

A sound is cut into consecutive `audio_length` chunks (`clmr.chunking`; 2.7 s at 22,050 Hz), each chunk
is encoded to a 512-d representation, and the sound's embedding is the mean over its chunks.

    model = load_model("encoder.ckpt", "head.ckpt")          # a ClmrModel; the head is optional
    get_scene_embeddings(audio, model)                       # (n_sounds, 512)
    get_timestamp_embeddings(audio, model)                   # (n_sounds, n_chunks, 512), centre times in ms

Whole files, tags and the resumable embeddings folder: `clmr.inference`, `clmr.embeddings`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from clmr import evaluation
from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.checkpoints import RANDOM, file_sha256, head_outputs, load_encoder, load_head
from clmr.chunking import chunk_audio, chunk_centres_ms
from clmr.models import N_FEATURES
from clmr.tag_names import head_labels

BATCH_SIZE = 32  # chunks per forward pass of the encoder


class ClmrModel(nn.Module):
    """A frozen CLMR encoder, optionally with its probe head, and what is needed to use it on audio.

    HEAR attributes: `sample_rate`, `scene_embedding_size`, `timestamp_embedding_size` (512).
    `forward` maps chunks (batch, 1, audio_length) to representations (batch, 512).
    """

    scene_embedding_size = N_FEATURES
    timestamp_embedding_size = N_FEATURES

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        tag_names: Sequence[str] = (),
        multilabel: bool = True,
        sample_rate: int = SAMPLE_RATE,
        audio_length: int = AUDIO_LENGTH,
        hop_length: int | None = None,
        batch_size: int = BATCH_SIZE,
        fingerprint: str = "",
        source: str = "",
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.tag_names = list(tag_names)
        self.multilabel = bool(multilabel)
        self.sample_rate = int(sample_rate)
        self.audio_length = int(audio_length)
        self.hop_length = int(hop_length or audio_length)
        self.batch_size = int(batch_size)
        self.fingerprint = fingerprint  # what embeddings depend on: weights (SHA-256) and chunking
        self.source = source  # the encoder checkpoint it came from
        self.eval()
        self.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    @torch.no_grad()
    def embed_chunks(self, chunks: Tensor) -> Tensor:
        """(n, audio_length) chunks -> (n, 512) float32 representations on the CPU, `batch_size` at a time."""
        chunks = torch.as_tensor(chunks, dtype=torch.float32).reshape(-1, 1, self.audio_length)
        out = [
            self.encoder(chunks[i : i + self.batch_size].to(self.device)).float().cpu()
            for i in range(0, chunks.shape[0], self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, N_FEATURES)

    @torch.no_grad()
    def tag_probabilities(self, representations: Tensor) -> np.ndarray:
        """(n, 512) -> (n, n_tags): sigmoid of the head for multi-label heads, softmax for single-label ones."""
        if self.head is None:
            raise ValueError("no probe head loaded: load_model(..., finetuner_checkpoint_path=HEAD) predicts tags")
        logits = self.head(representations.to(self.device)).float().cpu().numpy()
        return evaluation.probabilities(logits, self.multilabel)


def load_model(
    model_file_path: str | os.PathLike,
    finetuner_checkpoint_path: str | os.PathLike | None = None,
    tags: Sequence[str] | str | None = None,
    hop_ms: float | None = None,
    batch_size: int = BATCH_SIZE,
    device: str | torch.device = "cpu",
) -> ClmrModel:
    """HEAR's `load_model`: a ClmrModel from an encoder checkpoint (ours or the original CLMR's), or
    `random` for a randomly initialised encoder (seed 0; BatchNorm at its initial statistics, so its
    output hardly depends on the input until `clmr.representations.calibrate_batchnorm`).

    With `finetuner_checkpoint_path` the model also predicts tags. `hop_ms` spaces the chunks of
    `get_timestamp_embeddings` (default: one chunk, 2.7 s, no overlap, as evaluation chunks a track).
    """
    encoder = load_encoder(model_file_path)
    head, names, multilabel = (None, [], True)
    if finetuner_checkpoint_path:
        head = load_head(finetuner_checkpoint_path)
        names, multilabel = head_labels(finetuner_checkpoint_path, head_outputs(head), tags)
    hparams = getattr(encoder, "checkpoint_hparams", {}) or {}
    sample_rate = int(hparams.get("sample_rate", SAMPLE_RATE))
    audio_length = int(hparams.get("audio_length", AUDIO_LENGTH))
    hop = max(1, round(hop_ms * sample_rate / 1000)) if hop_ms else audio_length
    fingerprint = "random-0" if str(model_file_path) == RANDOM else file_sha256(model_file_path)
    model = ClmrModel(
        encoder,
        head,
        names,
        multilabel,
        sample_rate,
        audio_length,
        hop,
        batch_size,
        fingerprint=f"{fingerprint}:{audio_length}:{hop}:{sample_rate}",
        source=str(model_file_path),
    )
    return model.to(device)


# -- the HEAR API --------------------------------------------------------------------------------
def _check_audio(audio: Tensor) -> Tensor:
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    return audio.float()


def get_timestamp_embeddings(audio: Tensor, model: ClmrModel) -> tuple[Tensor, Tensor]:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` ->
    embeddings (n_sounds, n_timestamps, 512) and their centre times in ms (n_sounds, n_timestamps).

    Chunks are `model.audio_length` samples every `model.hop_length`; a sound shorter than one chunk is
    zero-padded to one.
    """
    audio = _check_audio(audio)
    n_sounds, n_samples = audio.shape
    chunks = chunk_audio(audio, model.audio_length, model.hop_length)  # (n_sounds, n_chunks, L)
    n_chunks = chunks.shape[1]
    embeddings = model.embed_chunks(chunks.reshape(-1, model.audio_length)).reshape(n_sounds, n_chunks, -1)
    times = torch.from_numpy(chunk_centres_ms(n_samples, model.sample_rate, model.audio_length, model.hop_length))
    return embeddings.to(audio.device), times.expand(n_sounds, -1).contiguous().to(audio.device)


def get_scene_embeddings(audio: Tensor, model: ClmrModel) -> Tensor:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` -> (n_sounds, 512), the mean over chunks."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
