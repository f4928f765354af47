"""Loading a site config: TOML file + environment, and errors that name key, file and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fuseguard.config.common import _TOML_PATH
from fuseguard.config.models import FuseguardConfig


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file."""

    key: str
    message: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says every reason."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@contextmanager
def _toml_source(path: Path) -> Iterator[None]:
    token = _TOML_PATH.set(path)
    try:
        yield
    finally:
        _TOML_PATH.reset(token)


def load_config(path: Path | str) -> FuseguardConfig:
    """Read and validate a site config; raise :class:`ConfigError` naming every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            [ConfigProblem("-", f"cannot read file: {err}", str(file), None)]
        ) from err
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = _line_from_toml_error(str(err))
        raise ConfigError([ConfigProblem("-", f"not valid TOML: {err}", str(file), line)]) from err
    lines = locate_keys(text)
    try:
        with _toml_source(file):
            return FuseguardConfig()
    except ValidationError as err:
        raise ConfigError(_problems(err, lines, str(file))) from err


def _line_from_toml_error(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def _problems(err: ValidationError, lines: dict[str, int], file: str) -> list[ConfigProblem]:
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        key = _dotted(loc)
        # model-level errors name their own key path inside the message ("chargers[1].id ...")
        m = re.match(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)[ :]", msg)
        if m and m.group(1) != key and "[" in m.group(1):
            key = (key + "." if key and not m.group(1).startswith(key) else "") + m.group(1)
            key = key.removeprefix(".")
            msg = msg[len(m.group(1)) :].lstrip(": ")
        problems.append(ConfigProblem(key or "-", msg, file, _find_line(key, lines)))
    return problems


def _dotted(loc: Sequence[str]) -> str:
    out = ""
    for part in loc:
        if part.isdigit():
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _find_line(key: str, lines: dict[str, int]) -> int | None:
    probe = key
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")


def locate_keys(text: str) -> dict[str, int]:
    """Map dotted key paths (``chargers[1].plugs[0].uuid``) to 1-based line numbers.

    A small scanner for the subset of TOML config files use (tables, arrays of tables,
    ``key = value`` lines); inline tables map to the line of their key.
    """
    found: dict[str, int] = {}
    counters: dict[str, int] = {}
    table = ""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _HEADER.match(line)
        if m and line.startswith("["):
            parts = [p.strip().strip('"') for p in m.group(2).split(".")]
            is_array = m.group(1) == "[["
            path = ""
            for i, part in enumerate(parts):
                candidate = f"{path}.{part}" if path else part
                if i == len(parts) - 1 and is_array:
                    idx = counters.get(candidate, -1) + 1
                    counters[candidate] = idx
                    # nested arrays restart per parent element
                    for k in list(counters):
                        if k.startswith((candidate + "[", f"{candidate}[{idx}].")):
                            del counters[k]
                    candidate = f"{candidate}[{idx}]"
                elif candidate in counters:
                    candidate = f"{candidate}[{counters[candidate]}]"
                path = candidate
            table = path
            found.setdefault(table, lineno)
            continue
        km = _KEYLINE.match(line)
        if km:
            key = km.group(1).strip('"')
            full = f"{table}.{key}" if table else key
            found.setdefault(full, lineno)
    return found


def check_config(path: Path | str) -> list[ConfigProblem]:
    """Problems of a config file; empty when it is fine."""
    try:
        load_config(path)
    except ConfigError as err:
        return err.problems
    return []


def config_to_dict(config: FuseguardConfig) -> dict[str, Any]:
    """JSON-friendly dump with secrets masked."""
    return config.model_dump(mode="json")
