"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("preprocess", "main", "linear_evaluation", "predict", "export")


@dataclass
class ScriptResult:
    """What a user sees of one script run: exit status, stdout and stderr."""

    code: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one line on stderr that says what went wrong (`error: ...` or `<prog>: error: ...`)."""
        lines = [line for line in self.stderr.splitlines() if "error:" in line]
        return lines[0] if lines else ""


def run_script_in_process(script: str, *args: str) -> ScriptResult:
    """Run `<script>.py` with `args` in this process, as its `__main__` would, and capture what it prints.

    An exception that escapes the script's entry point (a traceback the user would see) fails the test.
    """
    if script not in SCRIPTS:
        raise ValueError(f"unknown script {script!r}")
    from clmr import cli

    module = importlib.import_module(script)
    out, err = io.StringIO(), io.StringIO()
    code = 0

    def entry() -> None:
        status = module.main(list(args))
        if isinstance(status, int) and status:
            sys.exit(status)

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.run(entry)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001 - what a user would see as a traceback
            pytest.fail(
                f"{script}.py {' '.join(args)}: a traceback reached the user:\n{traceback.format_exc()}\n"
                f"stderr:\n{err.getvalue()}"
            )
    return ScriptResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_script():
    """`run_script("main", "--batch_size", "0")` -> ScriptResult; see `run_script_in_process`."""
    return run_script_in_process


def assert_refused(result: ScriptResult, *mentions: str) -> None:
    """A clean refusal: non-zero exit, no traceback, and one error line naming each of `mentions`."""
    assert result.code != 0, f"exit status 0 for a bad input; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    line = result.error_line()
    assert line, f"no error line on stderr:\n{result.stderr}"
    for mention in mentions:
        assert mention in line, f"{mention!r} not in the error line {line!r}"


def half_written(folder: Path) -> list[Path]:
    """Temporary files left behind by an atomic write that did not finish."""
    return [p for p in Path(folder).rglob("*") if ".tmp-" in p.name]


def assert_finite_json(value) -> None:
    """No NaN or infinity anywhere in a JSON-like value."""
    if isinstance(value, float):
        assert math.isfinite(value), f"non-finite number {value} written"
    elif isinstance(value, dict):
        for item in value.values():
            assert_finite_json(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            assert_finite_json(item)


def _answering(original, value):
    """A stand-in for a torch device query that answers `value` (keeping `__wrapped__`, which torch._dynamo reads)."""
    import functools

    return functools.wraps(original)(lambda *args, **kwargs: value)


@pytest.fixture
def no_gpu(monkeypatch):
    """As on a machine without a GPU: torch sees no CUDA device and no MPS device."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", _answering(torch.cuda.is_available, False))
    monkeypatch.setattr(torch.cuda, "device_count", _answering(torch.cuda.device_count, 0))
    monkeypatch.setattr(torch.backends.mps, "is_available", _answering(torch.backends.mps.is_available, False))


@pytest.fixture
def visible_gpus(monkeypatch):
    """`visible_gpus(n)`: as far as torch.cuda.is_available() and device_count() tell, n CUDA GPUs are visible."""
    import torch

    def pretend(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", _answering(torch.cuda.is_available, n > 0))
        monkeypatch.setattr(torch.cuda, "device_count", _answering(torch.cuda.device_count, n))

    return pretend


# -- file-system conditions: read-only and full folders, files the process may not read ---------------
# (added for the audio-file, file-name and output-path cases; tests run as root, which bypasses
# permission bits, so these use a real mount where the machine permits one, else patched OS calls)
import ctypes  # noqa: E402
import errno  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402

_MS_RDONLY, _MNT_DETACH = 1, 2


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(target: Path, size: int, read_only: bool) -> bool:
    """Mount a tmpfs of `size` bytes at `target`; False where this process may not mount."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    flags = _MS_RDONLY if read_only else 0
    return _libc().mount(b"tmpfs", os.fsencode(target), b"tmpfs", flags, f"size={size}".encode()) == 0


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, outside a locked-down container)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        if not _mount_tmpfs(Path(folder), 4096, read_only=True):
            return False
        _libc().umount2(os.fsencode(folder), _MNT_DETACH)
        return True


class FolderConditions:
    """Makes folders read-only or small (a disk that fills), by a tmpfs mount where permitted, else by
    patching os.open, os.mkdir and os.write (what clmr's writes go through) to fail below the folder.

    `simulate=True` forces the patched variant, to test it where mounting works too."""

    def __init__(self, tmp_path: Path, monkeypatch, simulate: bool = False):
        self.tmp_path, self.monkeypatch, self.simulate = tmp_path, monkeypatch, simulate
        self.mounted: list[Path] = []
        self.read_only_roots: list[Path] = []
        self.quotas: dict[Path, int] = {}
        self._fds: dict[int, Path] = {}
        self._patched = False

    def read_only(self, name: str = "read_only") -> Path:
        """An empty folder in which nothing can be created (EROFS)."""
        folder = self.tmp_path / name
        folder.mkdir()
        if not self.simulate and _mount_tmpfs(folder, 64 * 1024, read_only=True):
            self.mounted.append(folder)
        else:
            self.read_only_roots.append(folder.resolve())
            self._patch()
        return folder

    def small(self, size: int, name: str = "small") -> Path:
        """An empty folder that holds at most `size` bytes of file data (ENOSPC beyond; tmpfs counts whole
        pages of 4 KiB)."""
        folder = self.tmp_path / name
        folder.mkdir()
        if not self.simulate and _mount_tmpfs(folder, size, read_only=False):
            self.mounted.append(folder)
        else:
            self.quotas[folder.resolve()] = size
            self._patch()
        return folder

    def _root_of(self, path, roots) -> Path | None:
        try:
            resolved = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return None
        return next((r for r in roots if resolved == r or r in resolved.parents), None)

    def _patch(self) -> None:
        if self._patched:
            return
        self._patched = True
        real_open, real_mkdir, real_write, real_close = os.open, os.mkdir, os.write, os.close
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

        def fake_open(path, flags, mode=0o777, *, dir_fd=None):
            if flags & writing and self._root_of(path, self.read_only_roots):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            root = self._root_of(path, list(self.quotas)) if flags & writing else None
            if root is not None:
                self._fds[fd] = root
            return fd

        def fake_mkdir(path, mode=0o777, *, dir_fd=None):
            if self._root_of(path, self.read_only_roots):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
            return real_mkdir(path, mode, dir_fd=dir_fd)

        def fake_write(fd, data):
            root = self._fds.get(fd)
            if root is not None:
                used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
                if used + len(data) > self.quotas[root]:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        def fake_close(fd):
            self._fds.pop(fd, None)
            return real_close(fd)

        for name, fake in (("open", fake_open), ("mkdir", fake_mkdir), ("write", fake_write), ("close", fake_close)):
            self.monkeypatch.setattr(os, name, fake)

    def release(self) -> None:
        for folder in reversed(self.mounted):
            _libc().umount2(os.fsencode(folder), _MNT_DETACH)
        self.mounted.clear()


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """`folders.read_only()`, `folders.small(size)`: see FolderConditions. CLMR_TEST_SIMULATE_FOLDERS=1 forces
    the patched variant (what a machine without mounts runs)."""
    simulate = os.environ.get("CLMR_TEST_SIMULATE_FOLDERS") == "1"
    conditions = FolderConditions(tmp_path, monkeypatch, simulate=simulate)
    yield conditions
    conditions.release()


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_CAPABILITY_VERSION_3 = 0x20080522


def _drop_file_permission_override() -> None:
    """Lose root's power to read and write any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): from here on
    this process obeys permission bits as any user does."""
    libc = _libc()
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # (effective, permitted, inheritable) x 2
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        data[0] &= ~(1 << cap)
        data[1] &= ~(1 << cap)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def run_unprivileged(function, *args):
    """`function(*args)` as a process that obeys file permissions: in a forked child that has dropped root's
    override (or here, when not root). Its value (or exception) comes back pickled."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return function(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            _drop_file_permission_override()
            try:
                outcome = ("value", function(*args))
            except BaseException as err:  # noqa: BLE001 - sent back to the parent
                outcome = ("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(outcome, pipe)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(payload)
    if kind == "error":
        pytest.fail(f"in the unprivileged process: {value}")
    return value


def assert_printable(text: str) -> None:
    """What a script printed can be written to a strict UTF-8 terminal: no raw undecodable bytes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        pytest.fail(f"unprintable output ({err}): {text!r}")


# -- main.py's tiny runs (tests/test_main.py, the checkpoint cases of tests/test_hostile_inputs.py) -------------
TINY_SYNTHETIC = ("--synthetic_tracks", "24", "--synthetic_duration", "3.0")  # 24 tracks of 3 s
# batch 4, 2 batches an epoch, one valid batch, 1 epoch, on the CPU, as run `tiny`
TINY_TRAINING = (
    "--batch_size",
    "4",
    "--max_epochs",
    "1",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--log_every_n_steps",
    "1",
    "--accelerator",
    "cpu",
    "--run_name",
    "tiny",
)


def tiny_flags(dataset_dir: Path, log_dir: Path, *extra: str, dataset: str = "synthetic") -> list[str]:
    """main.py's flags for a tiny run of `dataset` (later flags override earlier ones)."""
    return [
        "--dataset",
        dataset,
        "--dataset_dir",
        str(dataset_dir),
        "--log_dir",
        str(log_dir),
        *TINY_SYNTHETIC,
        *TINY_TRAINING,
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """One dataset folder for every tiny run: the synthetic dataset is generated on first use, then shared."""
    return tmp_path_factory.mktemp("tiny_data")


@pytest.fixture
def tiny_main(tmp_path, tiny_data):
    """`tiny_main(*extra)`: main.py's flags for a tiny run (24 tracks of 3 s, batch 4, 2 batches an epoch, one
    valid batch, 1 epoch) logging to tmp_path/runs as run `tiny`; later flags override earlier ones."""

    def flags(*extra: str) -> list[str]:
        return tiny_flags(tiny_data, tmp_path / "runs", *extra)

    return flags


@pytest.fixture(params=["mounted", "simulated"])
def conditions(request, tmp_path, monkeypatch):
    """Both ways a test gets a read-only or full folder: a real tmpfs (skipped where mounting is not
    permitted) and patched OS calls (what CI without mounts uses), so that each is known to work."""
    if request.param == "mounted" and not can_mount():
        pytest.skip("this machine does not permit mounting a tmpfs")
    made = FolderConditions(tmp_path, monkeypatch, simulate=request.param == "simulated")
    yield made
    made.release()


# -- TensorBoard events ----------------------------------------------------------------------------------------
def event_tags(run_dir: Path) -> set[str]:
    """Every scalar, image and audio tag in the TensorBoard event files below `run_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in Path(run_dir).rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0, "audio": 0})
        acc.Reload()
        found = acc.Tags()
        tags |= set(found["scalars"]) | set(found["images"]) | set(found["audio"])
    return tags


# -- the tiny test encoder and checkpoints written in each layout ------------------------------------------------
TEST_SR, TEST_L = 22050, 59049
ENCODER_PREFIXES = {"lightning": "model.encoder.", "clmr-v1": "encoder."}  # our pre-training .ckpt, CLMR v1 .pt


def calibrated_encoder(seed: int = 0):
    """A SampleCNN with known random weights whose output depends on its input, as a trained one's does:
    He-initialised convolutions and BatchNorm statistics measured on music-like audio and noise.

    (PyTorch's default initialisation with unit BatchNorm statistics maps every input to nearly the
    same vector, which would make any parity or equality test pass.)"""
    import torch
    from torch import nn

    from clmr.export import music_like
    from clmr.models import SampleCNN

    torch.manual_seed(seed)
    encoder = SampleCNN(out_dim=50)
    for m in encoder.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = None  # cumulative average over the calibration batch
    music = [torch.from_numpy(music_like(TEST_L, TEST_SR, seed + k)) for k in range(4)]
    audio = torch.stack(music + [0.1 * torch.randn(TEST_L) for _ in range(4)])[:, None]
    with torch.no_grad():
        encoder.train()(audio)
    return encoder.eval()


def save_encoder(path: Path, encoder=None, layout: str = "lightning", hparams: dict | None = None) -> Path:
    """`encoder` (default: the calibrated test encoder) saved as our pre-training checkpoint (`lightning`, with
    `hparams`) or as the original CLMR v1 saved it (`clmr-v1`, a SimCLR state dict)."""
    import torch

    encoder = calibrated_encoder() if encoder is None else encoder
    state = {f"{ENCODER_PREFIXES[layout]}{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams or {}} if layout == "lightning" else state, path)
    return path


def save_head(path: Path, n_tags: int, hparams: dict, std: float | None = 0.5, seed: int = 1) -> Path:
    """A random linear probe head on 512-d representations, saved as a probe run saves it (keys model.*)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(512, n_tags))
    if std is not None:
        nn.init.normal_(head[0].weight, std=std)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in head.state_dict().items()}, "hyper_parameters": hparams}, path
    )
    return path


def random_encoder_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised encoder saved as our pre-training checkpoints are (keys model.encoder.*, a projector)."""
    import torch

    from clmr.models import SampleCNN

    torch.manual_seed(seed)
    encoder = SampleCNN(out_dim=11)
    state = {f"model.encoder.{k}": v for k, v in encoder.state_dict().items() if not k.startswith("fc.")}
    state["model.projector.0.weight"] = torch.randn(512, 512)
    torch.save({"state_dict": state, "hyper_parameters": {"sample_rate": TEST_SR, "audio_length": TEST_L}}, path)
    return path


def write_checkpoints(root: Path) -> tuple[Path, Path]:
    """The calibrated test encoder (our pre-training format) and a random linear head on the synthetic tags."""
    from clmr.datasets.synthetic import TAGS

    encoder = save_encoder(root / "pretrain.ckpt", hparams={"sample_rate": TEST_SR, "audio_length": TEST_L})
    head = save_head(
        root / "head.ckpt", len(TAGS), {"dataset": "synthetic", "multilabel": True, "n_outputs": len(TAGS)}
    )
    return encoder, head


# -- what predict.py and clmr.inference/hear/embeddings are tested on ------------------------------------------
def _music_like(n: int, rate: int, seed: int):
    from clmr.export import music_like

    return music_like(n, rate, seed)


SYNTHETIC_TAGS = ["piano", "strings", "synth", "bells", "bass", "drums", "hihat", "fast", "high", "minor", "reverb"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An encoder as the original CLMR v1 saved it (a SimCLR state dict) and a linear probe head."""
    root = tmp_path_factory.mktemp("ckpt")
    return (
        save_encoder(root / "clmr_v1.pt", layout="clmr-v1"),
        save_head(root / "head.ckpt", len(SYNTHETIC_TAGS), {"dataset": "synthetic", "multilabel": True}),
    )


@pytest.fixture(scope="module")
def model(checkpoints):
    """`checkpoints` loaded by clmr.load_model, 4 chunks a batch."""
    from clmr.hear import load_model

    return load_model(*checkpoints, batch_size=4)


def stereo_with_truth(seconds: float, rate: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A band-limited stereo signal at `rate` and, rendered independently, its mono mix at 22,050 Hz:
    partials below 5 kHz with slow amplitude envelopes, different in the two channels."""
    rng = np.random.default_rng(seed)
    partials = [
        (rng.uniform(60, 5000), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 3), rng.integers(0, 2)) for _ in range(24)
    ]

    def render(at: int) -> np.ndarray:
        t = np.arange(int(seconds * at)) / at
        out = np.zeros((len(t), 2))
        for f, phase, am, channel in partials:
            out[:, channel] += 0.08 * np.sin(2 * np.pi * f * t + phase) * (1 + np.sin(2 * np.pi * am * t)) / 2
        return out

    return render(rate), render(TEST_SR).mean(axis=1)


def folder_with_one_corrupt_file(root):
    """Three usable files of three formats and rates (one in a sub-folder) and one corrupt WAV."""
    root.mkdir()
    sf.write(root / "a.wav", _music_like(2 * TEST_L, TEST_SR, 1), TEST_SR)
    sf.write(root / "b.flac", np.stack([_music_like(3 * 44100, 44100, 2)] * 2, axis=1), 44100)
    (root / "c_corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 40)
    sub = root / "sub"
    sub.mkdir()
    sf.write(sub / "d.ogg", _music_like(int(2.8 * 48000), 48000, 3), 48000)
    return root


def float_wav(path, seconds: float = 3.0, poison: float | None = None, seed: int = 0):
    """A float WAV of music-like audio at 22,050 Hz, `poison` (NaN, Inf) at 1 s if given."""
    x = _music_like(int(seconds * TEST_SR), TEST_SR, seed)
    if poison is not None:
        x[TEST_SR] = poison
    sf.write(os.fsencode(path), x, TEST_SR, subtype="FLOAT", format="WAV")
    return path


# -- checkpoints in the layout of main at 0739081 (every config key in hyper_parameters): tests/data/README.md ----
DATA = Path(__file__).resolve().parent / "data"
OLD_HEAD = DATA / "main_0739081_linear_best.ckpt"


def old_hyper_parameters(stage: str) -> dict:
    """`pretrain` or `linear`: the hyper_parameters main at 0739081 saved (save_hyperparameters(vars(cfg)))."""
    import json

    return json.loads((DATA / "main_0739081_hyper_parameters.json").read_text())[stage]


def in_old_layout(path: Path, stage: str = "pretrain") -> Path:
    """A checkpoint written by today's code, its hyper_parameters replaced by those main at 0739081 wrote."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    obj["hyper_parameters"] = old_hyper_parameters(stage)
    torch.save(obj, path)
    return path


def config(**options):
    """The config of `--key value` for each option given (the YAML defaults for the rest)."""
    from clmr.config import load_config

    argv = [item for key, value in options.items() for item in (f"--{key}", str(value))]
    return load_config(argv)


def place(tiny: Path, paths) -> None:
    """A tiny wav at each path (hard links: thousands of files in a blink)."""
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tiny, p)
        except OSError:
            shutil.copyfile(tiny, p)
