"""Reading encoders and probe heads from checkpoint files, ours and the original CLMR's.

Encoder checkpoints (`load_encoder`), recognised by their state-dict keys:

    format          file                                    encoder keys
    lightning       our pre-training .ckpt, CLMR v2 .ckpt   state_dict["model.encoder.sequential.*"]
    supervised      our supervised-baseline .ckpt           state_dict["model.sequential.*"]
    clmr-v1         CLMR v1 .pt (a SimCLR state dict)       "encoder.sequential.*"
    samplecnn       a bare SampleCNN state dict             "sequential.*"

Only the convolutional trunk (`sequential.*`) is read: the projector, the supervised `fc` and the
pre-training `out_dim` do not matter to the 512-d representation. Files are always read with
`torch.load(weights_only=True)`, so a downloaded checkpoint cannot run code, and weights holding NaN or Inf
are refused. Probe heads (`load_head`): from our `best.ckpt` and the original CLMR's finetuner checkpoints; the names
of their outputs: `clmr.tag_names.head_labels`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clmr.config import ConfigError
from clmr.models import N_FEATURES, SampleCNN, build_head

# (format, prefix in front of `sequential.*`, where the state dict is), most specific first.
ENCODER_FORMATS = (
    ("lightning", "model.encoder.", "state_dict"),
    ("supervised", "model.", "state_dict"),
    ("clmr-v1", "encoder.", None),
    ("clmr-v1", "module.encoder.", None),  # saved from nn.DataParallel
    ("samplecnn", "", None),
)
FINETUNER_FLAG = "--finetuner_checkpoint_path"
RANDOM = "random"  # --checkpoint_path random: a randomly initialised (seeded) encoder, the baseline (clmr.probe)


class CheckpointError(ConfigError):
    """A --checkpoint_path or --finetuner_checkpoint_path that cannot be used (a bad value for a flag)."""


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class Opaque:
    """Stands in for a class that a checkpoint names but that the probe never needs.

    Lightning 1.x keyed callback states by the callback class (`{ModelCheckpoint: {...}}`), and
    some scripts saved an `argparse.Namespace` of hyper-parameters. `weights_only=True` refuses
    such globals; we let the weights-only unpickler put this inert object in their place (no code
    of the named class runs) and keep whatever state it was given.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


# Globals that may stand in as `Opaque`: bookkeeping of training libraries, never weights.
OPAQUE_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "argparse.Namespace", "omegaconf.")
MAX_OPAQUE = 32
ZIP_MAGIC = b"PK\x03\x04"  # how every file of torch.save begins
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_checkpoint(path: str | os.PathLike, flag: str = "--checkpoint_path") -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, with one clear error for anything that is not a checkpoint.

    Classes of training libraries that a checkpoint names in its bookkeeping (see `Opaque`) are
    read as inert placeholders; any other class is refused, with its name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{flag} {path}: cannot read it ({err.strerror})") from None
    if not head:
        raise CheckpointError(f"{flag} {path}: not a PyTorch checkpoint (an empty file, 0 bytes)")
    opaque: list[tuple[type, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(opaque):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            match = _UNSUPPORTED.search(str(err))
            name = match.group(1) if match else None
            if name and name.startswith(OPAQUE_PREFIXES) and len(opaque) < MAX_OPAQUE:
                opaque.append((Opaque, name))
                continue
            named = _GLOBAL.search(str(err))
            if named:
                raise CheckpointError(
                    f"{flag} {path}: refusing to load: the file holds a Python object "
                    f"({named.group(1)}) that could run code; weights_only=True reads tensors "
                    f"and plain values only"
                ) from None
            raise CheckpointError(
                f"{flag} {path}: not a PyTorch checkpoint (it does not unpickle as tensors and plain values)"
            ) from None
        except (
            RuntimeError,
            EOFError,
            KeyError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            zipfile.BadZipFile,
            OSError,
        ) as err:
            if head == ZIP_MAGIC:  # torch.save writes a zip archive: this one is cut short or damaged
                raise CheckpointError(
                    f"{flag} {path}: not a PyTorch checkpoint (truncated or damaged: the zip "
                    f"archive torch.save writes does not read)"
                ) from None
            raise CheckpointError(f"{flag} {path}: not a PyTorch checkpoint ({_first_line(err)})") from None


def hyper_parameters(obj: Any) -> dict[str, Any]:
    """The hyper-parameters a checkpoint (as `read_checkpoint` returns it) was saved with; {} when it has none."""
    if not isinstance(obj, dict):
        return {}
    hparams = obj.get("hyper_parameters")
    if isinstance(hparams, Opaque):  # an argparse.Namespace
        hparams = getattr(hparams, "state", None)
    return dict(hparams) if isinstance(hparams, dict) else {}


def state_dict_in(obj: Any, where: str | None) -> dict[str, Any] | None:
    if where is not None:
        obj = obj.get(where) if isinstance(obj, dict) else None
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        return obj
    return None


def encoder_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """The encoder's `sequential.*` weights from a checkpoint: (state dict, format name, hyper-parameters)."""
    obj = read_checkpoint(path)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"--checkpoint_path {path}: not a checkpoint (a {type(obj).__name__}, "
            f"expected a state dict or a Lightning checkpoint)"
        )
    hparams = hyper_parameters(obj)
    seen: list[str] = []
    for name, prefix, where in ENCODER_FORMATS:
        state = state_dict_in(obj, where)
        if state is None:
            continue
        seen = seen or list(state)
        trunk = prefix + "sequential."
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(trunk)}
        if weights:
            return weights, name, hparams
    if any(k.startswith("model.0.") for k in seen):
        raise CheckpointError(
            f"--checkpoint_path {path}: this is a probe-head checkpoint, not an encoder; "
            f"pass it as --finetuner_checkpoint_path"
        )
    found = ", ".join(seen[:3]) + (", ..." if len(seen) > 3 else "") if seen else "no state dict"
    raise CheckpointError(
        f"--checkpoint_path {path}: no SampleCNN encoder weights (expected keys "
        f"model.encoder.sequential.*, model.sequential.*, encoder.sequential.* or "
        f"sequential.*; found {found})"
    )


def _frozen(encoder: SampleCNN) -> SampleCNN:
    encoder.fc = nn.Identity()
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder


def random_encoder(seed: int) -> SampleCNN:
    """A randomly initialised SampleCNN (seeded, so its probe is reproducible), BatchNorm at its initial statistics.

    As a baseline it needs BatchNorm statistics of some audio first (`clmr.representations.calibrate_batchnorm`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = SampleCNN(out_dim=1)
    return _frozen(encoder)


def first_mismatch(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], model: str = "SampleCNN", strict: bool = False
) -> str | None:
    """The first key (in the model's order) that is missing, unexpected or of another shape, described.

    Unless `strict`, a missing `num_batches_tracked` (written only by newer PyTorch, not needed for inference) is fine.
    """
    for key, value in expected.items():
        if key not in found:
            if key.endswith("num_batches_tracked") and not strict:
                continue
            return f"{key} is missing"
        if not isinstance(found[key], torch.Tensor):
            return f"{key} is a {type(found[key]).__name__}, not a tensor"
        if tuple(found[key].shape) != tuple(value.shape):
            return f"{key} has shape {tuple(found[key].shape)}, expected {tuple(value.shape)}"
    for key in found:
        if key not in expected:
            return f"{key} is not in {model}"
    return None


def first_non_finite(state: dict[str, Any]) -> str | None:
    """The first floating-point tensor of a state dict holding NaN or Inf, by key; None if all are finite."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return key
    return None


def require_finite(weights: dict[str, Any], path: str | os.PathLike, flag: str, what: str) -> None:
    bad = first_non_finite(weights)
    if bad:
        raise CheckpointError(
            f"{flag} {path}: the {what} weights hold NaN or Inf ({bad}): the training that wrote "
            f"it diverged; use an earlier checkpoint"
        )


def load_encoder(path: str | os.PathLike, seed: int = 0) -> SampleCNN:
    """The SampleCNN encoder of a checkpoint, with `fc` an Identity (512-d output), in eval mode and frozen.

    `path` may be `random` for a randomly initialised encoder (from `seed`; see `random_encoder`).
    The format found is kept as `encoder.checkpoint_format` and the hyper-parameters as
    `encoder.checkpoint_hparams`.
    """
    if str(path) == RANDOM:
        encoder = random_encoder(seed)
        encoder.checkpoint_format, encoder.checkpoint_hparams = RANDOM, {}
        return encoder
    weights, fmt, hparams = encoder_state_dict(path)
    encoder = _frozen(SampleCNN(out_dim=1))
    expected = encoder.state_dict()
    mismatch = first_mismatch(expected, weights)
    if mismatch:
        raise CheckpointError(f"--checkpoint_path {path} ({fmt} format): not the SampleCNN architecture: {mismatch}")
    require_finite(weights, path, "--checkpoint_path", "encoder")
    encoder.load_state_dict(weights, strict=False)
    encoder.checkpoint_format = fmt
    encoder.checkpoint_hparams = hparams
    return encoder


# -- probe heads --------------------------------------------------------------------------------
def head_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A probe head's weights (`0.weight`, ... of an nn.Sequential) from a finetuner checkpoint.

    Reads our `checkpoints/best.ckpt` and the original CLMR v2 finetuner .ckpt (Lightning, keys
    `model.*`), and a CLMR v1 finetuner .pt (the head's own state dict, keys `0.weight`, `0.bias`).
    """
    flag = FINETUNER_FLAG
    obj = read_checkpoint(path, flag)
    state = (
        state_dict_in(obj, "state_dict") if isinstance(obj, dict) and "state_dict" in obj else state_dict_in(obj, None)
    )
    if state is None:
        raise CheckpointError(f"{flag} {path}: not a checkpoint (expected a state dict or a Lightning checkpoint)")
    head = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not head:
        head = {k: v for k, v in state.items() if k.split(".")[0].isdigit()}
    head = {k: v for k, v in head.items() if k.split(".")[0].isdigit()}  # not model.encoder.* of a pre-training ckpt
    if not head:
        raise CheckpointError(
            f"{flag} {path}: no probe-head weights (expected keys model.0.weight or 0.weight; found {some_keys(state)})"
        )
    require_finite(head, path, flag, "probe-head")
    return head


def some_keys(state: dict, n: int = 3) -> str:
    keys = [str(k) for k in state]
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") if keys else "none"


def load_head(
    path: str | os.PathLike, mlp: bool | None = None, n_outputs: int | None = None, outputs_of: str = ""
) -> nn.Sequential:
    """The probe head of a finetuner checkpoint (ours, or the original CLMR's), linear or MLP as its weights are,
    in eval mode and frozen. With `mlp` or `n_outputs` given, a head of another kind or size is refused
    (`outputs_of` says whose outputs `n_outputs` counts)."""
    flag = FINETUNER_FLAG
    state = head_state_dict(path)
    if "0.weight" not in state or state["0.weight"].shape[-1] != N_FEATURES:
        raise CheckpointError(
            f"{flag} {path}: not a probe head on {N_FEATURES}-d representations "
            f"(0.weight is {tuple(state['0.weight'].shape) if '0.weight' in state else 'missing'})"
        )
    is_mlp = "2.weight" in state
    if mlp is not None and is_mlp != bool(mlp):
        raise CheckpointError(
            f"{flag} {path}: {'an MLP' if is_mlp else 'a linear'} head; pass --finetuner_mlp {int(is_mlp)}"
        )
    found = state["2.weight" if is_mlp else "0.weight"].shape[0]
    head = build_head(N_FEATURES, found if n_outputs is None else n_outputs, is_mlp)
    for key, value in head.state_dict().items() if n_outputs is not None else ():
        if key not in state or tuple(state[key].shape) != tuple(value.shape):
            shape = tuple(state[key].shape) if key in state else "missing"
            raise CheckpointError(
                f"{flag} {path}: head weight {key} is {shape}, expected {tuple(value.shape)} "
                f"({N_FEATURES} features -> {n_outputs} outputs{outputs_of})"
            )
    try:
        head.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{flag} {path}: not a linear or MLP probe head ({_first_line(err)})") from None
    return head.eval().requires_grad_(False)


def head_outputs(head: nn.Sequential) -> int:
    """How many tags (or classes) a head of `build_head` scores."""
    return head[-1].out_features
