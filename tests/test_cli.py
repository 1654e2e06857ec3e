"""The scripts' common entry (clmr/cli.py): user errors as one line, a closed pipe without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clmr import cli
from clmr.config import ConfigError


def test_a_user_error_is_one_line_and_status_1(capsys):
    def main():
        raise ConfigError("--batch_size 0: expected an integer >= 2")

    with pytest.raises(SystemExit) as exit_:
        cli.run(main)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: --batch_size 0: expected an integer >= 2\n"


def test_an_os_error_about_a_file_names_the_file(capsys):
    def main():
        raise OSError(28, "No space left on device", "/data/out.wav")

    with pytest.raises(SystemExit):
        cli.run(main)
    assert capsys.readouterr().err == "error: /data/out.wav: No space left on device\n"


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback():
    code = "from clmr import cli\ncli.run(lambda: [print('tag 0.5', flush=True) for _ in range(200000)])"
    pipe = subprocess.run(
        f'{sys.executable} -c "{code}" | head -n 1', shell=True, capture_output=True, text=True, timeout=120
    )
    assert pipe.stdout == "tag 0.5\n"
    assert "Traceback" not in pipe.stderr and "BrokenPipe" not in pipe.stderr, pipe.stderr


def test_a_path_that_is_not_utf8_prints_as_escapes_instead_of_a_traceback():
    code = "from clmr import cli\ncli.run(lambda: print('TensorBoard logs: runs/caf\\udce9/version_0'))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env={"PYTHONIOENCODING": "utf-8", "PATH": ""}, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"TensorBoard logs: runs/caf\\xe9/version_0\n"
