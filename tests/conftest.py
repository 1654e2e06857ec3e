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

import pytest

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
            pytest.fail(f"{script}.py {' '.join(args)}: a traceback reached the user:\n{traceback.format_exc()}\n"
                        f"stderr:\n{err.getvalue()}")
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
