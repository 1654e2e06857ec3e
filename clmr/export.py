"""ONNX export: the encoder (audio -> 512-d) and encoder + probe head (audio -> tag probabilities).

Both models take `audio` of shape (batch, 1, audio_length) float32 mono at the model's sample rate,
with a dynamic batch axis. Before a model is renamed into place, it is run with onnxruntime (CPU) on
random noise and on music-like audio at batch 1 and 3 and compared with PyTorch; a maximum absolute
difference above `TOLERANCE` (1e-4) is an error and the file is not written.

The difference is float32 rounding, which grows with the size of the outputs: at the levels of real
recordings a SampleCNN's representations are of order 1 and the two runtimes agree to about 1e-5;
full-scale white noise drives them to ~100 and the difference towards 1e-4, hence the check's
noise at -20 dBFS. `tolerance` loosens the check for a model whose outputs are unusually large.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clmr.atomic import atomic_path, write_json
from clmr.config import ConfigError
from clmr.filenames import shown
from clmr.hear import ClmrModel, load_model
from clmr.inference import MIN_CHUNK_FRACTION

OPSET = 21
# The oldest opset the exporter writes for these models: torch's ONNX functions are written in opset 18 and
# converted down, which works to 16 and silently keeps 18 below (measured with torch 2.14, onnxscript 0.7).
MIN_OPSET = 16
TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)
NOISE_RMS = 0.1  # -20 dBFS: the check's random audio is as loud as music, not full-scale noise
INPUT, REPRESENTATION, PROBABILITIES = "audio", "representation", "probabilities"
ENCODER_FILE, TAGGER_FILE, TAGS_FILE = "clmr_encoder.onnx", "clmr_tagger.onnx", "clmr_tagger.json"


class ExportError(ConfigError):
    """An export that failed, or whose ONNX model does not compute what the PyTorch model does."""


def max_opset() -> int:
    """The newest opset the installed onnx package defines (a newer one is written as opset 18)."""
    import onnx

    return onnx.defs.onnx_opset_version()


def written_opset(model) -> int:
    """The version of the default (ai.onnx) operator set an ONNX model imports."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class Tagger(nn.Module):
    """Encoder + probe head + sigmoid (multi-label) or softmax (single-label): audio -> tag probabilities."""

    def __init__(self, encoder: nn.Module, head: nn.Module, multilabel: bool = True):
        super().__init__()
        self.encoder, self.head, self.multilabel = encoder, head, multilabel

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(audio))
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)


def music_like(n_samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A few seconds of something like music: decaying harmonic notes, a kick, hi-hat noise; peak 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    out = np.zeros(n_samples)
    beat = 60 / rng.uniform(80, 160)
    for start in np.arange(0, t[-1], beat / 2):
        on = t >= start
        dt = np.where(on, t - start, 0)
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(np.sin(2 * np.pi * f0 * k * dt) / k for k in range(1, 6)) * np.exp(-3 * dt)
        kick = np.sin(2 * np.pi * 55 * dt * np.exp(-dt * 8)) * np.exp(-dt * 20)
        out += on * (0.3 * note + 0.5 * kick + 0.05 * rng.standard_normal(n_samples) * np.exp(-dt * 60))
    out += 0.01 * rng.standard_normal(n_samples)
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def check_inputs(
    audio_length: int, sample_rate: int, batches: Sequence[int] = CHECK_BATCHES, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """(name, (batch, 1, audio_length) float32) inputs at the levels of real recordings: white noise at
    -20 dBFS RMS, and music-like audio peaking at -2 dBFS."""
    rng = np.random.default_rng(seed)
    out = []
    for b in batches:
        noise = np.clip(NOISE_RMS * rng.standard_normal((b, 1, audio_length)), -1, 1).astype(np.float32)
        music = np.stack([music_like(audio_length, sample_rate, seed + k)[None] for k in range(b)])
        out += [(f"random audio, batch {b}", noise), (f"music-like audio, batch {b}", music)]
    return out


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    audio_length: int,
    output_name: str,
    metadata: dict[str, str] | None = None,
    opset: int = OPSET,
    check: Sequence[tuple[str, np.ndarray]] = (),
    tolerance: float = TOLERANCE,
) -> list[tuple[str, float]]:
    """Write `module` as ONNX (input `audio` (batch, 1, audio_length), batch dynamic) to `path`.

    The model is written under a temporary name, checked against `module` with onnxruntime on the
    `check` inputs (see `check_onnx`), and only then renamed to `path`: a model that fails the check
    never replaces a good one. The weights are stored inside the one file (SampleCNN is about 9.5 MB,
    far from protobuf's 2 GB limit, so no external data file is needed). Returns the check results.
    """
    import onnx

    path = Path(path)
    module = module.eval()
    example = torch.zeros(2, 1, audio_length)
    batch = torch.export.Dim("batch", min=1)
    for name in ("onnxscript", "onnx_ir"):  # their optimiser logs every pass at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                (example,),
                None,
                input_names=[INPUT],
                output_names=[output_name],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        except Exception as err:  # the exporter raises many types; say which model failed and why
            raise ExportError(f"ONNX export of {path.name} failed: {type(err).__name__}: {err}") from err
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
        model = onnx.load(str(tmp))
        if written_opset(model) != opset:
            raise ExportError(
                f"ONNX export of {path.name}: the exporter wrote opset {written_opset(model)}, "
                f"not the requested {opset} (it writes {MIN_OPSET} to {max_opset()})"
            )
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=str(value))
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        return check_onnx(tmp, module, check, tolerance, name=path)


def check_onnx(
    path: str | os.PathLike,
    module: nn.Module,
    inputs: Sequence[tuple[str, np.ndarray]],
    tolerance: float = TOLERANCE,
    name: str | os.PathLike | None = None,
) -> list[tuple[str, float]]:
    """Run the ONNX model with onnxruntime (CPU) and `module` on each input; (name, max |difference|) each.

    Raises ExportError when a difference exceeds `tolerance` or an output shape differs.
    """
    import onnxruntime as ort

    shown = name or path
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's own exception types
        raise ExportError(f"{shown}: onnxruntime cannot load the exported model ({str(err).splitlines()[0]})") from None
    input_name = session.get_inputs()[0].name
    results = []
    for label, x in inputs:
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        found = session.run(None, {input_name: x})[0]
        if found.shape != expected.shape:
            raise ExportError(f"{shown}: onnxruntime output {found.shape} on {label}, PyTorch {expected.shape}")
        diff = float(np.abs(found - expected).max())
        if not diff <= tolerance:
            raise ExportError(
                f"{shown}: onnxruntime and PyTorch differ by {diff:.2e} on {label} (tolerance {tolerance:.0e})"
            )
        results.append((label, diff))
    return results


@dataclass
class Exported:
    path: Path
    size: int
    checks: list[tuple[str, float]]
    signature: str = ""  # input -> output, shapes
    extra: Path | None = None  # the tag names beside the tagger
    tolerance: float = TOLERANCE

    def describe(self) -> str:
        worst = max(d for _, d in self.checks)
        lines = [
            f"{shown(self.path)}  {self.size / 1e6:.1f} MB  {self.signature}",
            f"  onnxruntime vs PyTorch on {len(self.checks)} inputs (noise and music-like audio, batch 1 and 3): "
            f"max |diff| {worst:.1e} <= {self.tolerance:.0e}  OK",
        ]
        if self.extra:
            lines.append(f"{shown(self.extra)}  tag names, activation and input format")
        return "\n".join(lines)


def _export_checked(
    module: nn.Module, path: Path, model: ClmrModel, output_name: str, metadata: dict, opset: int, tolerance: float
) -> Exported:
    checks = export_onnx(
        module,
        path,
        model.audio_length,
        output_name,
        metadata,
        opset,
        check=check_inputs(model.audio_length, model.sample_rate),
        tolerance=tolerance,
    )
    signature = f"{INPUT} (batch, 1, {model.audio_length}) -> {metadata['output']}"
    return Exported(path, path.stat().st_size, checks, signature, tolerance=tolerance)


def export_models(
    checkpoint_path: str | os.PathLike,
    finetuner_checkpoint_path: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "exports",
    tags: Sequence[str] | str | None = None,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
) -> list[Exported]:
    """Export the encoder of `checkpoint_path`, and with a head also encoder + head, into `out_dir`."""
    out_dir = Path(out_dir)
    model = load_model(checkpoint_path, finetuner_checkpoint_path or None, tags=tags)
    common = {
        "producer": "clmr",
        "sample_rate": model.sample_rate,
        "audio_length": model.audio_length,
        "input": f"{INPUT} (batch, 1, {model.audio_length}) float32 mono at {model.sample_rate} Hz",
        "encoder_checkpoint": Path(str(checkpoint_path)).name,
    }
    results = [
        _export_checked(
            model.encoder,
            out_dir / ENCODER_FILE,
            model,
            REPRESENTATION,
            {**common, "output": f"{REPRESENTATION} (batch, 512)"},
            opset,
            tolerance,
        )
    ]
    if model.head is not None:
        activation = "sigmoid" if model.multilabel else "softmax"
        tagger = Tagger(model.encoder, model.head, model.multilabel).eval()
        info = {
            "tags": model.tag_names,
            "activation": activation,
            "multilabel": model.multilabel,
            "sample_rate": model.sample_rate,
            "audio_length": model.audio_length,
            "input": INPUT,
            "output": PROBABILITIES,
            "track_score": "mean of the chunk probabilities over consecutive chunks",
            "min_samples": int(np.ceil(MIN_CHUNK_FRACTION * model.audio_length)),  # shorter tracks are refused
            "head_checkpoint": Path(str(finetuner_checkpoint_path)).name,
        }
        output = f"{PROBABILITIES} (batch, {len(model.tag_names)}) {activation}"
        exported = _export_checked(
            tagger,
            out_dir / TAGGER_FILE,
            model,
            PROBABILITIES,
            {**common, "output": output, "tags": json.dumps(model.tag_names)},
            opset,
            tolerance,
        )
        write_json(out_dir / TAGS_FILE, info)
        exported.extra = out_dir / TAGS_FILE
        results.append(exported)
    return results
