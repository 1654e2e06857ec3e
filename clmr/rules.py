"""The kinds of rule an option may have: a whole number or a number in a range, a switch, text, one of
some choices, ... Each parses an option's text (from a flag or a YAML file alike) into its value or
raises Refused; `clmr.options.RULES` says which rule each key has.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

Bound = int | float | Callable[[], int | float] | None  # a bound, or a function that looks it up


class Refused(Exception):
    """A value its rule does not accept; `problem`, when given, replaces the rule's `expected ...`.

    A check of several keys names the `key` whose value it refuses.
    """

    def __init__(self, problem: str = "", key: str = ""):
        super().__init__(problem)
        self.problem, self.key = problem, key


def _resolve(value: Any) -> Any:
    return value() if callable(value) else value


def shown(text: str) -> str:
    """A value as an error line shows it: numbers bare, anything else quoted."""
    try:
        float(text)
        return text.strip()
    except ValueError:
        return repr(text)


class Rule:
    """The type and allowed values of one option: `parse(text)` -> value, or raises Refused."""

    metavar = "TEXT"

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def expected(self) -> str:
        raise NotImplementedError

    def refusal(self, where: str, text: str, problem: str = "") -> str:
        return f"{where} {shown(text)}: {problem or 'expected ' + self.expected()}"


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_text(what: str, low: Any, high: Any, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {_number(low)}"
    if high is not None:
        return f"{what} {'<' if high_open else '<='} {_number(high)}"
    return what


@dataclass(frozen=True)
class Integer(Rule):
    """A whole number, optionally within [low, high]; `note` says why the range is what it is."""

    low: Bound = None
    high: Bound = None
    note: str = ""
    metavar = "INT"

    def parse(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise Refused() from None
        low, high = _resolve(self.low), _resolve(self.high)
        if (low is not None and value < low) or (high is not None and value > high):
            raise Refused()
        return value

    def expected(self) -> str:
        text = _range_text("an integer", _resolve(self.low), _resolve(self.high))
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Number(Rule):
    """A finite number within its bounds (each inclusive unless marked open)."""

    low: Bound = None
    high: Bound = None
    low_open: bool = False
    high_open: bool = False
    what: str = "a number"
    note: str = ""
    metavar = "FLOAT"

    def parse(self, text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise Refused() from None
        low, high = _resolve(self.low), _resolve(self.high)
        if not math.isfinite(value):
            raise Refused()
        if low is not None and (value < low or (self.low_open and value == low)):
            raise Refused()
        if high is not None and (value > high or (self.high_open and value == high)):
            raise Refused()
        return value

    def expected(self) -> str:
        text = _range_text(f"{self.what}", _resolve(self.low), _resolve(self.high), self.low_open, self.high_open)
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Switch(Rule):
    """On or off: 0/1/true/false (yes/no/on/off too), as 0 or 1."""

    metavar = "0|1"

    def parse(self, text: str) -> int:
        lowered = text.strip().lower()
        if lowered in TRUE:
            return 1
        if lowered in FALSE:
            return 0
        raise Refused()

    def expected(self) -> str:
        return "0/1/true/false"


@dataclass(frozen=True)
class Text(Rule):
    """Any text (a path, a name, a URL)."""

    def parse(self, text: str) -> str:
        return text

    def expected(self) -> str:
        return "text"


@dataclass(frozen=True)
class Choice(Rule):
    """One of `values` (a tuple, or a function that looks them up when a value is to be checked).

    `extra` values are ours (Lightning's choices plus our `auto`) and need no look-up. With `unknown`
    set, a refusal reads `unknown <unknown> 'x'; expected one of ... (<where>)`, as the datasets say it.
    """

    values: tuple[str, ...] | Callable[[], Iterable[str]] = ()
    extra: tuple[str, ...] = ()
    unknown: str = ""
    metavar = "NAME"

    def choices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.extra, *_resolve(self.values))))

    def parse(self, text: str) -> str:
        value = text.strip()
        if value in self.extra or value in self.choices():
            return value
        raise Refused()

    def expected(self) -> str:
        choices = self.choices()
        return " or ".join(choices) if len(choices) == 2 and not self.unknown else "one of " + ", ".join(choices)

    def refusal(self, where: str, text: str, problem: str = "") -> str:
        if problem:
            return super().refusal(where, text, problem)
        by_case = {choice.lower(): choice for choice in self.choices()}
        close = difflib.get_close_matches(text.strip().lower(), by_case, n=1)
        hint = f" (did you mean {by_case[close[0]]}?)" if close else ""
        if self.unknown:
            return f"unknown {self.unknown} {text.strip()!r}; expected {self.expected()} ({where}){hint}"
        return super().refusal(where, text) + hint


@dataclass(frozen=True)
class Exactly(Rule):
    """One integer value (looked up when checked), with the reason."""

    value: Callable[[], int]
    note: str
    metavar = "INT"

    def parse(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise Refused() from None
        if value != self.value():
            raise Refused()
        return value

    def expected(self) -> str:
        return f"{self.value()} ({self.note})"


@dataclass(frozen=True)
class BatchLimit(Rule):
    """Lightning's limit_*_batches: a fraction of the batches in [0, 1], or a whole number of batches >= 0."""

    metavar = "FRACTION|N"

    def parse(self, text: str) -> int | float:
        try:
            count = int(text.strip())
        except ValueError:
            return Number(0, 1).parse(text)
        if count < 0:
            raise Refused()
        return count

    def expected(self) -> str:
        return "a fraction of the batches in [0, 1] or a number of batches >= 0"


@dataclass(frozen=True)
class Devices(Rule):
    """Lightning's devices: `auto`, a number (-1: every visible device), or a list of device ids like 0,1."""

    metavar = "auto|N|IDS"

    def parse(self, text: str) -> str:
        value = text.strip()
        if value == "auto":
            return value
        try:
            ids = [int(d) for d in value.split(",") if d.strip()] if "," in value else []
            count = None if ids else int(value)
        except ValueError:
            raise Refused() from None
        if ids and (min(ids) < 0 or len(set(ids)) != len(ids)):
            raise Refused()
        if count is not None and (count == 0 or count < -1):
            raise Refused()
        return value

    def expected(self) -> str:
        return "auto, a number of devices >= 1 (-1: all), or a list of device ids like 0,1"


@dataclass(frozen=True)
class Option:
    """A script's own option: its default and its rule (`help` is shown by --help)."""

    default: Any
    rule: Rule
    help: str = ""


def rule_for_default(default: Any) -> Rule:
    """The rule of an option declared by its default alone: typed by it, any value of that type."""
    if isinstance(default, bool):
        return Switch()
    if isinstance(default, int):
        return Integer()
    if isinstance(default, float):
        return Number()
    return Text()
