"""clmr.atomic and clmr.cli on a file system that refuses writes: output checks, write errors that name the
file, and the one line a user sees."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from clmr import cli
from clmr.atomic import OutputPathError, check_writable, write_bytes, write_json, write_text
from clmr.audio import write_wav
from conftest import half_written


def test_check_writable_refuses_a_read_only_folder_naming_it_and_the_flag(conditions):
    folder = conditions.read_only()
    with pytest.raises(OutputPathError) as refused:
        check_writable(folder / "exports", "--out")
    message = str(refused.value)
    assert str(folder / "exports") in message and "--out" in message and "Read-only file system" in message


def test_check_writable_refuses_a_full_folder(conditions):
    folder = conditions.small(8 * 1024, "full")
    write_bytes(folder / "filler.bin", b"\1" * (6 * 1024))  # tmpfs: two pages used of two
    with pytest.raises(OutputPathError, match="No space left on device"):
        check_writable(folder, "--output_dir")
    assert sorted(p.name for p in folder.iterdir()) == ["filler.bin"]  # the probe file is gone


def test_check_writable_creates_a_missing_folder_and_leaves_nothing_in_it(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_writable(target, "--embeddings") == target
    assert target.is_dir() and list(target.iterdir()) == []


def test_check_writable_refuses_a_file_where_a_folder_is_expected(tmp_path):
    (tmp_path / "exports").write_text("a file")
    with pytest.raises(OutputPathError, match="exists and is not a folder.*--out"):
        check_writable(tmp_path / "exports", "--out")


def test_a_write_that_fills_the_disk_names_the_final_file_and_leaves_no_temporary(conditions):
    folder = conditions.small(8 * 1024, "small")
    with pytest.raises(OSError) as failed:
        write_wav(folder / "song.wav", np.zeros(22050, np.float32), 22050)  # 44 kB
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(folder / "song.wav")
    assert half_written(folder) == [] and not (folder / "song.wav").exists()


def test_text_and_json_writes_into_a_read_only_folder_name_the_file(conditions):
    folder = conditions.read_only()
    for write in (lambda: write_text(folder / "index.csv", "row\n"), lambda: write_json(folder / "meta.json", {})):
        with pytest.raises(OSError) as failed:
            write()
        assert failed.value.errno == errno.EROFS and os.path.dirname(failed.value.filename) == str(folder)


def test_text_with_a_name_that_is_not_utf8_is_written_as_its_bytes(tmp_path):
    name = os.fsdecode(b"caf\xe9.wav")  # latin-1 bytes: not UTF-8
    write_text(tmp_path / "index.csv", f"path\n{name}\n")
    assert (tmp_path / "index.csv").read_bytes() == b"path\ncaf\xe9.wav\n"


# -- what a user sees: clmr.cli.run -------------------------------------------------------------------
def _run(error: BaseException, capsys) -> tuple[int, str]:
    def main():
        raise error

    with pytest.raises(SystemExit) as exited:
        cli.run(main)
    return exited.value.code, capsys.readouterr().err


def test_an_os_error_about_a_file_is_one_line_naming_it(capsys):
    code, err = _run(OSError(errno.ENOSPC, "No space left on device", "/data/out/a.wav"), capsys)
    assert code == 1 and err == "error: /data/out/a.wav: No space left on device\n"
    code, err = _run(PermissionError(errno.EACCES, "Permission denied", "/x", None, "/y"), capsys)
    assert err == "error: /x -> /y: Permission denied\n"


def test_a_file_name_that_is_not_utf8_is_shown_escaped_in_the_error_line(capsys):
    code, err = _run(OSError(errno.EROFS, "Read-only file system", os.fsdecode(b"/m/b\xffad.wav")), capsys)
    assert err == "error: /m/b\\xffad.wav: Read-only file system\n"
    err.encode("utf-8")  # printable on any UTF-8 terminal


def test_an_os_error_about_no_file_keeps_its_traceback():
    def main():
        raise OSError(errno.EBADF, "Bad file descriptor")  # a bug, not something the user can fix

    with pytest.raises(OSError, match="Bad file descriptor"):
        cli.run(main)


def test_preprocess_and_download_errors_are_user_errors(capsys):
    from clmr.datasets.download import DownloadError
    from clmr.preprocessing import PreprocessError

    assert _run(PreprocessError("a.flac and a.ogg would both be converted to a.wav"), capsys) == (
        1,
        "error: a.flac and a.ogg would both be converted to a.wav\n",
    )
    assert _run(DownloadError("https://x/y: HTTP 404"), capsys) == (1, "error: https://x/y: HTTP 404\n")
