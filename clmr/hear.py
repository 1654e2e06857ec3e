"""The HEAR API on a trained encoder: `load_model`, `get_scene_embeddings`, `get_timestamp_embeddings`.

A sound is cut into consecutive `audio_length` chunks (`clmr.chunking`; 2.7 s at 22,050 Hz), each chunk
is encoded to a 512-d representation, and the sound's embedding is the mean over its chunks. With a hop
(`load_model(path, hop_ms=50)`, what HEAR's event tasks need) the timestamp embeddings are instead one every
`hop_ms` from 0 to the end of the sound, each of the chunk centred on its timestamp.

    model = load_model("encoder.ckpt", "head.ckpt")          # a ClmrModel; the head is optional
    model = load_model()                                     # HEAR's bare call: the default model (see load_model)
    get_scene_embeddings(audio, model)                       # (n_sounds, 512)
    get_timestamp_embeddings(audio, model)                   # (n_sounds, n_chunks, 512), centre times in ms

Whole files, tags and the resumable embeddings folder: `clmr.inference`, `clmr.embeddings`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from clmr import evaluation
from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.checkpoints import RANDOM, file_sha256, head_outputs, load_encoder, load_head
from clmr.chunking import centred_chunks, centred_frames, chunk_audio, chunk_centres_ms
from clmr.models import N_FEATURES
from clmr.tag_names import head_labels

BATCH_SIZE = 32  # chunks per forward pass of the encoder
DEFAULT = ""  # HEAR's load_model() with no path: a random encoder with BatchNorm statistics of the embedded dataset
DEFAULT_SEED = 0
DEFAULT_CALIBRATION_TRACKS = 64  # one crop from each of this many tracks of the synthetic dataset (seed 0)


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
        hop_ms: float | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.tag_names = list(tag_names)
        self.multilabel = bool(multilabel)
        self.sample_rate = int(sample_rate)
        self.audio_length = int(audio_length)
        self.hop_length = int(hop_length or audio_length)
        self.hop_ms = float(hop_ms) if hop_ms else None  # centred HEAR frames every hop_ms; None: consecutive chunks
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
    model_file_path: str | os.PathLike = DEFAULT,
    finetuner_checkpoint_path: str | os.PathLike | None = None,
    tags: Sequence[str] | str | None = None,
    hop_ms: float | None = None,
    batch_size: int = BATCH_SIZE,
    device: str | torch.device = "cpu",
) -> ClmrModel:
    """HEAR's `load_model`: a ClmrModel from an encoder checkpoint (ours or the original CLMR's).

    `model_file_path` may also be `random`, a randomly initialised encoder (seed 0; BatchNorm at its initial
    statistics, so its output hardly depends on the input until `clmr.representations.calibrate_batchnorm`),
    or left out (HEAR's `load_model()`): we bundle no weights, so the default is that random encoder with
    BatchNorm statistics estimated on one crop from each of 64 tracks of the embedded synthetic dataset
    (seed 0, generated in memory in a few seconds): the random baseline of `linear_evaluation.py`, not a
    pre-trained model.

    With `finetuner_checkpoint_path` the model also predicts tags. `hop_ms` gives `get_timestamp_embeddings`
    one embedding every `hop_ms` milliseconds, each of the chunk centred on its timestamp (HEAR's event tasks
    want 50 ms or less); without it, one per consecutive 2.7 s chunk, as evaluation chunks a track.
    """
    if hop_ms is not None and not hop_ms > 0:
        raise ValueError(f"hop_ms {hop_ms}: expected a positive number of milliseconds")
    path = str(model_file_path)
    encoder = default_encoder() if path == DEFAULT else load_encoder(model_file_path)
    head, names, multilabel = (None, [], True)
    if finetuner_checkpoint_path:
        head = load_head(finetuner_checkpoint_path)
        names, multilabel = head_labels(finetuner_checkpoint_path, head_outputs(head), tags)
    hparams = getattr(encoder, "checkpoint_hparams", {}) or {}
    sample_rate = int(hparams.get("sample_rate", SAMPLE_RATE))
    audio_length = int(hparams.get("audio_length", AUDIO_LENGTH))
    hop = max(1, round(hop_ms * sample_rate / 1000)) if hop_ms else audio_length
    fingerprint = {DEFAULT: f"default-random-{DEFAULT_SEED}-bn{DEFAULT_CALIBRATION_TRACKS}", RANDOM: "random-0"}.get(
        path
    ) or file_sha256(model_file_path)
    model = ClmrModel(
        encoder,
        head,
        names,
        multilabel,
        sample_rate,
        audio_length,
        hop,
        batch_size,
        fingerprint=f"{fingerprint}:{audio_length}:{hop}:{sample_rate}" + (f":{hop_ms}ms" if hop_ms else ""),
        source=path or "default",
        hop_ms=hop_ms,
    )
    return model.to(device)


def default_encoder(sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH) -> nn.Module:
    """`load_model()`'s encoder: random (seed 0), BatchNorm statistics from crops of the synthetic dataset
    (estimated once per process; each call returns a new encoder)."""
    encoder = load_encoder(RANDOM, seed=DEFAULT_SEED)
    encoder.load_state_dict(_default_state(sample_rate, audio_length))
    return encoder


@functools.cache
def _default_state(sample_rate: int, audio_length: int) -> dict[str, Tensor]:
    from clmr.datasets.synthetic_music import make_track
    from clmr.representations import calibrate_batchnorm_on_crops

    crops = np.stack(
        [
            make_track(DEFAULT_SEED, i, sample_rate, audio_length / sample_rate)[1][:audio_length]
            for i in range(DEFAULT_CALIBRATION_TRACKS)
        ]
    )
    encoder = load_encoder(RANDOM, seed=DEFAULT_SEED)
    calibrate_batchnorm_on_crops(encoder, torch.from_numpy(crops).float(), BATCH_SIZE)
    return {k: v.clone() for k, v in encoder.state_dict().items()}


# -- the HEAR API --------------------------------------------------------------------------------
def _check_audio(audio: Tensor) -> Tensor:
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    return audio.float()


def get_timestamp_embeddings(audio: Tensor, model: ClmrModel) -> tuple[Tensor, Tensor]:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` ->
    embeddings (n_sounds, n_timestamps, 512) and their centre times in ms (n_sounds, n_timestamps).

    Without `model.hop_ms`: chunks of `model.audio_length` samples every `model.hop_length` (a sound shorter than
    one chunk is zero-padded to one). With it: one chunk centred on each of 0, hop_ms, 2 hop_ms, ... up to the
    sound's end, zero-padded beyond its ends (HEAR's convention, checked by its validator).
    """
    audio = _check_audio(audio)
    n_sounds, n_samples = audio.shape
    if model.hop_ms:
        times_ms, centres = centred_frames(n_samples, model.sample_rate, model.hop_ms)
        parts = [
            model.embed_chunks(
                centred_chunks(audio, centres[i : i + model.batch_size], model.audio_length).reshape(
                    -1, model.audio_length
                )
            ).reshape(n_sounds, -1, N_FEATURES)
            for i in range(0, len(centres), model.batch_size)
        ]  # a batch of frames at a time: bounded memory
        embeddings, times = torch.cat(parts, dim=1), torch.from_numpy(times_ms)
    else:
        chunks = chunk_audio(audio, model.audio_length, model.hop_length)  # (n_sounds, n_chunks, L)
        n_chunks = chunks.shape[1]
        embeddings = model.embed_chunks(chunks.reshape(-1, model.audio_length)).reshape(n_sounds, n_chunks, -1)
        times = torch.from_numpy(chunk_centres_ms(n_samples, model.sample_rate, model.audio_length, model.hop_length))
    return embeddings.to(audio.device), times.expand(n_sounds, -1).contiguous().to(audio.device)


def get_scene_embeddings(audio: Tensor, model: ClmrModel) -> Tensor:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` -> (n_sounds, 512), the mean over chunks."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
