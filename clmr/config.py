"""One YAML file holds every option; each key is also a command-line flag of the same name.

`load_config()` reads `config/config.yaml`, then the file named by `--config` (its keys override
the defaults; keys it leaves out keep them), then the flags. Every final value, from a file or a
flag, is read as text and typed and checked by its key's rule (`clmr.options.RULES`): `max_epochs: abc`
in a YAML file is refused as `--max_epochs abc` is, naming the file and key, and `--finetuner_mlp true`
means 1.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clmr.options import CHECKS, RULES, Option, Refused, Rule, rule_for_default
from clmr.rules import Switch

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "config.yaml"


class ConfigError(ValueError):
    """A configuration file or flag that cannot be used as it is."""


@dataclass(frozen=True)
class Given:
    """An option's value as text, and where it came from (`--batch_size`, or `my.yaml: batch_size`)."""

    text: str
    where: str


def read_yaml(path: str | Path) -> dict[str, str]:
    """A config file as a flat mapping of option names to their values' text, exactly as a flag would give
    them (`batch_size: 4` and `batch_size: "4"` both give "4"; the key's rule types it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=yaml.BaseLoader)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: option {key!r} must be a number, string or boolean")
    return data


def _overrides(values: dict[str, str], defaults: dict[str, Any], path: str) -> dict[str, str]:
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

    def format_help(self) -> str:
        """Each option's rule in its help line, looked up only when help is asked for."""
        for action in self._actions:
            option = getattr(action, "option", None)
            if option is not None:
                action.help = (
                    f"{option.help + '; ' if option.help else ''}{option.rule.expected()}; default: {option.default}"
                ).replace("%", "%%")
        return super().format_help()


def bare_switches(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """Let on/off flags stand alone, in every script: `--download` is `--download 1` when no value follows it."""
    flags = {f"--{n}" for n in names}
    out: list[str] = []
    for i, word in enumerate(argv):
        out.append(word)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if word in flags and (following is None or following.startswith("--")):
            out.append("1")
    return out


def build_parser(
    options: dict[str, Option], prog: str | None = None, positional: Sequence[tuple[str, dict]] = ()
) -> argparse.ArgumentParser:
    """Every option as a flag that takes its value as text; only the flags given appear in the result."""
    parser = _Parser(
        prog=prog, allow_abbrev=False, description="Every option of config/config.yaml is a flag of the same name."
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML file with the defaults")
    for name, kwargs in positional:
        parser.add_argument(name, **kwargs)
    for key, option in options.items():
        action = parser.add_argument(f"--{key}", default=argparse.SUPPRESS, metavar=option.rule.metavar)
        action.option = option
    return parser


def _rule(key: str, default_text: str) -> Rule:
    """The key's rule in the table; a key the table does not know yet is typed by its default, as a flag was."""
    if key in RULES:
        return RULES[key]
    try:
        return rule_for_default(yaml.safe_load(default_text))
    except yaml.YAMLError:
        return rule_for_default(default_text)


def check_options(given: dict[str, Given], options: dict[str, Option]) -> dict[str, Any]:
    """Each value typed and checked by its rule, then the checks of several keys together."""
    values = {}
    for key, item in given.items():
        rule = options[key].rule
        try:
            values[key] = rule.parse(item.text)
        except Refused as refused:
            raise ConfigError(rule.refusal(item.where, item.text, refused.problem)) from None
    from clmr.hardware import check_hardware

    for check in (*CHECKS, check_hardware):
        try:
            check(values)
        except Refused as refused:
            item = given[refused.key]
            raise ConfigError(options[refused.key].rule.refusal(item.where, item.text, refused.problem)) from None
    return values


def load_config(
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    extra: dict[str, Option | Any] | None = None,
    positional: Sequence[tuple[str, dict]] = (),
) -> argparse.Namespace:
    """Parse `argv` (default: sys.argv[1:]) against the YAML defaults; raise ConfigError for a bad value.

    `extra` adds script-specific options, each an `Option(default, rule)` (or a bare default, typed by
    it); `positional` adds positional arguments as (name, argparse kwargs).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=str(DEFAULT_CONFIG))
    known, _ = pre.parse_known_args(argv)
    label = DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[1])  # config/config.yaml
    try:
        defaults = read_yaml(DEFAULT_CONFIG)
        given = {key: Given(text, f"{label}: {key}") for key, text in defaults.items()}
        if Path(known.config).resolve() != DEFAULT_CONFIG:
            other = _overrides(read_yaml(known.config), defaults, known.config)
            given.update({key: Given(text, f"{known.config}: {key}") for key, text in other.items()})
    except ConfigError as err:
        raise ConfigError(f"--config {err}") from None
    options = {key: Option(text, _rule(key, text)) for key, text in defaults.items()}
    for key, option in (extra or {}).items():
        options[key] = option if isinstance(option, Option) else Option(option, rule_for_default(option))
        given[key] = Given(str(options[key].default), f"--{key} (default)")
    argv = bare_switches(argv, [key for key, option in options.items() if isinstance(option.rule, Switch)])
    flags = vars(build_parser(options, prog=prog, positional=positional).parse_args(argv))
    config = flags.pop("config")
    given.update({key: Given(flags.pop(key), f"--{key}") for key in list(flags) if key in options})
    return argparse.Namespace(config=config, **flags, **check_options(given, options))
