"""One YAML file holds every option; each key is also a command-line flag of the same name.

`load_config()` reads `config/config.yaml`, then the file named by `--config` (its keys override
the defaults; keys it leaves out keep them), then the flags. A flag's type is the type of its YAML default, so `--max_epochs abc` is an error and
`--finetuner_mlp true` means 1.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "config.yaml"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration file or flag that cannot be used as it is."""


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1/true/false, got {text!r}")


def parse_int(text: str) -> int:
    lowered = str(text).strip().lower()
    if lowered in _TRUE | _FALSE and not lowered.isdigit():
        return int(parse_bool(lowered))
    try:
        return int(lowered)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def parse_number(text: str) -> float | int:
    """A float option; an integer literal stays an int (Lightning's limit_* keys read ints as counts)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _parser_for(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return parse_int
    if isinstance(default, float):
        return parse_number
    return str


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file: a flat mapping of option names to scalar defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    for key, value in data.items():
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: option {key!r} must be a number, string or boolean")
    return data


def _overrides(values: dict[str, Any], defaults: dict[str, Any], path: str) -> dict[str, Any]:
    """Options of another config file; each must be a key of config/config.yaml."""
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(defaults))}")
    return values


class _Parser(argparse.ArgumentParser):
    """argparse with errors that list the valid flags and suggest the closest one."""

    def error(self, message: str) -> None:  # type: ignore[override]
        valid = sorted(a.dest for a in self._actions if a.dest != "help")
        hint = ""
        if "unrecognized arguments" in message:
            unknown = [w.lstrip("-").split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = {u: difflib.get_close_matches(u, valid, n=1) for u in unknown}
            hint = "".join(f" (did you mean --{c[0]}?)" for c in close.values() if c)
        self.exit(2, f"{self.prog}: error: {message}{hint}\nvalid flags: {' '.join('--' + v for v in valid)}\n")


def build_parser(defaults: dict[str, Any], prog: str | None = None,
                 positional: Sequence[tuple[str, dict]] = ()) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, allow_abbrev=False, description="Every option of config/config.yaml is a flag of the same name.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML file with the defaults")
    for name, kwargs in positional:
        parser.add_argument(name, **kwargs)
    for key, value in defaults.items():
        parser.add_argument(f"--{key}", type=_parser_for(value), default=value,
                            metavar=type(value).__name__.upper(), help=f"default: {value!r}")
    return parser


def load_config(argv: Sequence[str] | None = None, prog: str | None = None,
                extra: dict[str, Any] | None = None,
                positional: Sequence[tuple[str, dict]] = ()) -> argparse.Namespace:
    """Parse `argv` (default: sys.argv[1:]) against the YAML defaults.

    `extra` adds script-specific options (with their defaults) to those of the YAML file;
    `positional` adds positional arguments as (name, argparse kwargs).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=str(DEFAULT_CONFIG))
    known, _ = pre.parse_known_args(argv)
    try:
        defaults = read_yaml(DEFAULT_CONFIG)
        if Path(known.config).resolve() != DEFAULT_CONFIG:
            defaults.update(_overrides(read_yaml(known.config), defaults, known.config))
    except ConfigError as err:
        raise SystemExit(f"error: --config {err}") from None
    defaults.update(extra or {})
    return build_parser(defaults, prog=prog, positional=positional).parse_args(argv)
