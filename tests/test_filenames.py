"""clmr.filenames: any name the OS holds is shown on one printable line, and reaches C libraries exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf

from clmr.audio import audio_info, load_mono, read_window
from clmr.filenames import os_name, printable, shown

NOT_UTF8 = os.fsdecode(b"b\xffad \xe9.wav")  # what Python gives for bytes 0xff and 0xe9 in a name


def test_undecodable_bytes_are_shown_as_hex_escapes_and_unicode_and_spaces_as_they_are():
    assert shown(NOT_UTF8) == "b\\xffad \\xe9.wav"
    assert shown("my song – café 🎵.wav") == "my song – café 🎵.wav"
    shown(NOT_UTF8).encode("utf-8")


def test_line_breaks_tabs_and_bidirectional_overrides_in_a_name_are_escaped():
    assert shown("a\nb\tc\r.wav") == "a\\nb\\tc\\r.wav"
    assert shown("evil\u202evaw.exe") == "evil\\u202evaw.exe"
    assert "\n" not in shown("x\x85\u2028y")


def test_printable_keeps_line_breaks_of_a_message_and_escapes_only_undecodable_bytes():
    assert printable(f"error: {NOT_UTF8}\n  hint") == "error: b\\xffad \\xe9.wav\n  hint"


def test_the_exact_bytes_reach_soundfile_for_window_and_whole_file_reads(tmp_path):
    path = tmp_path / NOT_UTF8
    samples = np.arange(1000, dtype=np.int16)
    sf.write(os_name(path), samples, 22050, subtype="PCM_16", format="WAV")
    assert os.listdir(os.fsencode(tmp_path)) == [b"b\xffad \xe9.wav"]
    assert audio_info(path).frames == 1000
    np.testing.assert_array_equal(np.round(read_window(path, 10, 5) * 32768), np.arange(10, 15))
    assert load_mono(path, 22050).shape == (1000,)


def test_json_holds_a_name_that_is_not_utf8_as_an_escape_that_round_trips_to_its_bytes():
    text = json.dumps({"path": NOT_UTF8})
    assert text.isascii()
    assert os.fsencode(json.loads(text)["path"]) == b"b\xffad \xe9.wav"
