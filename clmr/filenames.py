"""File names as the OS holds them (any bytes but `/` and NUL), for libraries, for people and for files.

Python gives a name that is not valid UTF-8 (a byte like 0xff) as a str holding a surrogate escape
('\\udcff'). Such a str cannot be encoded as UTF-8: soundfile, `print` to a UTF-8 terminal and text
files refuse it. Hence three forms of one name:

    os_name(path)    bytes, the exact name, for C libraries (soundfile/libsndfile)
    shown(path)      one printable line: undecodable bytes as \\xff, control characters escaped
    str(path)        for JSON: `json.dumps` writes the escape as \\udcff, which `os.fsencode` turns back into
                     the exact bytes (Python's and JavaScript's JSON readers accept it)
"""

from __future__ import annotations

import codecs
import os
import unicodedata

# Characters that would break a line or reorder what is shown (bidirectional overrides): always escaped.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ESCAPED_CATEGORIES = ("Cc", "Zl", "Zp")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # the bytes 0x80-0xff that did not decode


def os_name(path: str | os.PathLike | bytes) -> bytes:
    """The exact bytes of a file name, as the OS holds them (what C libraries must be given)."""
    return os.fsencode(path)


def printable(text: str) -> str:
    """`text` with undecodable bytes written as \\xNN: always encodable as UTF-8 (for messages)."""
    if text.isascii():
        return text
    return "".join(_escape(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def shown(path: str | os.PathLike | bytes) -> str:
    """A file name as one faithful, printable line: unicode and spaces as they are; undecodable bytes as
    \\xNN; newlines, tabs, other control characters and bidirectional overrides escaped."""
    text = os.fsdecode(path)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if _hidden(c) else c for c in text)


def _hidden(c: str) -> bool:
    return c in _BIDI_CONTROLS or 0xD800 <= ord(c) <= 0xDFFF or unicodedata.category(c) in _ESCAPED_CATEGORIES


def _escape(c: str) -> str:
    code = ord(c)
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _printable_errors(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: what `printable` writes for the characters a stream cannot encode."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join(
        _escape(c) if ord(c) in _SURROGATE_ESCAPES else c.encode("ascii", "backslashreplace").decode() for c in bad
    ), err.end


PRINTABLE_ERRORS = "clmr-printable"  # an `errors=` for text streams: a file name printed as `shown` would write it
codecs.register_error(PRINTABLE_ERRORS, _printable_errors)
