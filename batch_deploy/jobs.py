"""jobs.toml -> Job.

``parse_job`` is pure: it reads nothing but its arguments (directory globs go
through the callable it is given). ``load_job`` is the thin shell that reads
the file, expands globs on the filesystem and checks that named files exist.
``narrow_job`` applies the command line's ``--server``/``--content`` selection
and overrides to a parsed job.

Every problem is collected in one pass and raised together as a ``JobError``;
each message is one line: ``<file>[:<line>]: <key path>: <what is wrong>; <fix>``.
"""

from __future__ import annotations

import difflib
import fnmatch
import glob as _glob
import hashlib
import json
import math
import os
import posixpath
import re
import sys
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from .errors import JobError
from .sandbox.options import SANDBOX_OPTION_TYPES, SandboxOptions
from .versions import parse_version

# tomli stays the fallback for anyone running the module on an older Python.
if sys.version_info >= (3, 11):  # noqa: UP036
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ContentSpec",
    "Job",
    "RunSettings",
    "ServerSpec",
    "content_name_from_dir",
    "is_valid_content_name",
    "load_job",
    "narrow_job",
    "parse_job",
]


@dataclass(frozen=True)
class RunSettings:
    report_dir: Path  # absolute, resolved against the job file's folder
    concurrency: int = 16
    per_server: int = 4
    task_timeout: float = 900.0
    ambiguous: Literal["fail", "first"] = "fail"
    associate: Literal["auto", "server", "explicit"] = "auto"
    skip_unchanged: bool = True


@dataclass(frozen=True)
class ServerSpec:
    name: str
    url: str | None = None  # None for a sandbox server (known once it starts)
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never shown
    ca_bundle: Path | None = None
    verify_tls: bool = True
    version: str | None = None  # pinned when the server hides its version
    sandbox: Path | None = None  # seed file of an embedded sandbox
    sandbox_options: SandboxOptions = field(default_factory=SandboxOptions)


@dataclass(frozen=True)
class ContentSpec:
    dir: Path  # absolute
    name: str
    title: str | None  # None: from the manifest, else the dir name
    servers: tuple[str, ...]
    guids: Mapping[str, str] = field(default_factory=dict)
    # The folder relative to the job file's folder, "/"-separated; what
    # ``--content`` globs match besides the name. "" when built by hand.
    relative_dir: str = ""


@dataclass(frozen=True)
class Job:
    source: Path
    sha256: str
    run: RunSettings
    servers: Mapping[str, ServerSpec]
    content: tuple[ContentSpec, ...]


# ---------------------------------------------------------------------------
# Names

_CONTENT_NAME = re.compile(r"[A-Za-z0-9_-]{3,64}")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_DASHES = re.compile(r"-{2,}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Connect API keys are long runs of mixed letters and digits; such a value in
# api_key_env is almost certainly the key itself and must not be echoed.
_KEY_LIKE = re.compile(r"(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9]{24,}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME_RULE = '3 to 64 ASCII letters, digits, "_" or "-"'


def is_valid_content_name(name: str) -> bool:
    """True when Connect accepts ``name``: 3-64 ASCII letters, digits, ``_``, ``-``."""
    return _CONTENT_NAME.fullmatch(name) is not None


def content_name_from_dir(basename: str) -> str:
    """A valid Connect content name derived from a folder's base name.

    Accents are dropped ("café" -> "cafe"), every other disallowed character
    becomes ``-``, runs of ``-`` collapse to one, ``-`` is stripped from both
    ends, the result is cut to 64 characters, and a name shorter than 3 gets
    ``-content`` appended (an empty one becomes ``content``). Applying it to
    its own result changes nothing.
    """
    decomposed = unicodedata.normalize("NFKD", basename)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    name = _DASHES.sub("-", _NOT_NAME_CHAR.sub("-", without_marks)).strip("-")
    name = name[:64].rstrip("-")
    if not name:
        return "content"
    if len(name) < 3:
        return f"{name}-content"
    return name


# ---------------------------------------------------------------------------
# Problem collection

_PathPart = str | int
_KeyPath = tuple[_PathPart, ...]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _format_path(path: _KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            out += f".{text}" if out else text
    return out


def _quote(text: str, limit: int = 60) -> str:
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return json.dumps(text, ensure_ascii=False)


def _show(value: object) -> str:
    """A short, one-line rendering of a TOML value for "got ..." clauses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return "an unsupported value"


def _choices(names: Iterable[str]) -> str:
    return ", ".join(names)


def _suggestion(word: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


class _Problems:
    def __init__(self, source: str, lines: Mapping[_KeyPath, int]) -> None:
        self.source = source
        self.lines = lines
        self._found: list[tuple[int, str]] = []

    @property
    def items(self) -> list[str]:
        """Problems in file order; those about the whole file (no line) first."""
        return [message for _, message in sorted(self._found, key=lambda found: found[0])]

    def line_of(self, path: _KeyPath) -> int | None:
        # An inline table or array has no line per key: point at its parent.
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def add(self, path: _KeyPath, message: str) -> None:
        line = self.line_of(path)
        where = f"{self.source}:{line}" if line is not None else self.source
        self._found.append((line or 0, f"{where}: {_format_path(path)}: {message}"))

    def expected(self, path: _KeyPath, what: str, value: object) -> None:
        self.add(path, f"expected {what}, got {_show(value)}")

    def unknown_keys(
        self, path: _KeyPath, table: Mapping[str, object], allowed: Sequence[str]
    ) -> None:
        for key in table:
            if key in allowed:
                continue
            near = _suggestion(key, allowed)
            if near is not None:
                fix = f'did you mean "{near}"? (allowed: {_choices(allowed)})'
            else:
                fix = f"remove it or use one of: {_choices(allowed)}"
            self.add((*path, key), f"unknown key; {fix}")


# ---------------------------------------------------------------------------
# Finding the line of a key by scanning the text.
#
# tomllib keeps no positions, so a small scanner walks the (already valid)
# document, skipping strings, comments and the insides of arrays and inline
# tables, and records the line of every table header and every key.

_KEY_ATOM = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_ATOM}(?:\s*\.\s*{_KEY_ATOM})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_ATOM = re.compile(_KEY_ATOM)


def _split_key(dotted: str) -> list[str] | None:
    parts: list[str] = []
    for match in _ATOM.finditer(dotted):
        atom = match.group(0)
        if atom.startswith('"'):
            try:
                parts.append(json.loads(atom))
            except ValueError:
                return None  # a TOML-only escape; locating is best effort
        elif atom.startswith("'"):
            parts.append(atom[1:-1])
        else:
            parts.append(atom)
    return parts


class _Scanner:
    """Carries string and bracket state from one line to the next."""

    def __init__(self) -> None:
        self.multiline: str | None = None  # '"""' or "'''" while inside one
        self.depth = 0

    def at_statement_start(self) -> bool:
        return self.multiline is None and self.depth == 0

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        while i < n:
            if self.multiline is not None:
                i = self._in_multiline(line, i)
                continue
            ch = line[i]
            if ch == "#":
                return
            if line.startswith('"""', i) or line.startswith("'''", i):
                self.multiline = line[i : i + 3]
                i += 3
            elif ch in "\"'":
                i = self._skip_string(line, i)
            else:
                if ch in "[{":
                    self.depth += 1
                elif ch in "]}":
                    self.depth -= 1
                i += 1

    def _in_multiline(self, line: str, i: int) -> int:
        delim = cast(str, self.multiline)
        ch = line[i]
        if ch == "\\" and delim == '"""':
            return i + 2
        if line.startswith(delim, i):
            # Up to two extra quotes before the closing delimiter belong to the string.
            run = len(line[i:]) - len(line[i:].lstrip(delim[0]))
            self.multiline = None
            return i + min(run, 5)
        return i + 1

    @staticmethod
    def _skip_string(line: str, i: int) -> int:
        quote = line[i]
        i += 1
        while i < len(line):
            if line[i] == "\\" and quote == '"':
                i += 2
                continue
            if line[i] == quote:
                return i + 1
            i += 1
        return i


def _locate_keys(text: str) -> dict[_KeyPath, int]:
    lines: dict[_KeyPath, int] = {}
    arrays: dict[_KeyPath, int] = {}  # array-of-tables path -> last index
    table: _KeyPath = ()
    scanner = _Scanner()
    for number, line in enumerate(text.splitlines(), start=1):
        if scanner.at_statement_start():
            table = _record_line(line, number, table, lines, arrays)
        scanner.feed(line)
    return lines


def _record_line(
    line: str,
    number: int,
    table: _KeyPath,
    lines: dict[_KeyPath, int],
    arrays: dict[_KeyPath, int],
) -> _KeyPath:
    """Record the keys a statement line defines; return the table now open."""
    header = _ARRAY_HEADER.match(line)
    is_array = header is not None
    if header is None:
        header = _TABLE_HEADER.match(line)
    if header is not None:
        parts = _split_key(header.group(1))
        if parts is None:
            return ()
        resolved: list[_PathPart] = []
        for position, part in enumerate(parts):
            resolved.append(part)
            here = tuple(resolved)
            if is_array and position == len(parts) - 1:
                index = arrays.get(here, -1) + 1
                arrays[here] = index
                resolved.append(index)
            elif here in arrays:
                resolved.append(arrays[here])
            lines.setdefault(tuple(resolved), number)
        return tuple(resolved)
    key = _KEY_LINE.match(line)
    if key is not None:
        parts = _split_key(key.group(1))
        if parts is not None:
            for end in range(1, len(parts) + 1):
                lines.setdefault((*table, *parts[:end]), number)
    return table


# ---------------------------------------------------------------------------
# Value checks. Each returns the value, or None after recording a problem.


def _positive_int(p: _Problems, path: _KeyPath, value: object, example: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    p.expected(path, f"a positive integer like {example}", value)
    return None


def _positive_seconds(p: _Problems, path: _KeyPath, value: object, example: int) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    p.expected(path, f"a positive number of seconds like {example}", value)
    return None


def _boolean(p: _Problems, path: _KeyPath, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    p.expected(path, "true or false", value)
    return None


def _one_of(p: _Problems, path: _KeyPath, value: object, choices: Sequence[str]) -> str | None:
    if isinstance(value, str) and value in choices:
        return value
    quoted = [f'"{c}"' for c in choices]
    what = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    p.expected(path, what, value)
    return None


def _text(p: _Problems, path: _KeyPath, value: object, what: str) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    p.expected(path, what, value)
    return None


def _join(folder: Path, relative: str) -> Path:
    # Lexical normalisation only: parse_job never touches the filesystem.
    return Path(os.path.normpath(folder / relative))


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


# ---------------------------------------------------------------------------
# [run]

_RUN_KEYS = (
    "report_dir",
    "concurrency",
    "per_server",
    "task_timeout",
    "ambiguous",
    "associate",
    "skip_unchanged",
)
_AMBIGUOUS = ("fail", "first")
_ASSOCIATE = ("auto", "server", "explicit")


def _parse_run(p: _Problems, value: object, folder: Path) -> RunSettings:
    defaults = RunSettings(report_dir=_join(folder, "reports"))
    path: _KeyPath = ("run",)
    if not isinstance(value, dict):
        p.expected(path, "a table like [run]", value)
        return defaults
    p.unknown_keys(path, value, _RUN_KEYS)
    changes: dict[str, Any] = {}
    if "report_dir" in value:
        text = _text(p, (*path, "report_dir"), value["report_dir"], 'a folder path like "reports"')
        if text is not None:
            changes["report_dir"] = _join(folder, text)
    for key, example in (("concurrency", 16), ("per_server", 4)):
        if key in value:
            number = _positive_int(p, (*path, key), value[key], example)
            if number is not None:
                changes[key] = number
    if "task_timeout" in value:
        seconds = _positive_seconds(p, (*path, "task_timeout"), value["task_timeout"], 900)
        if seconds is not None:
            changes["task_timeout"] = seconds
    for key, choices in (("ambiguous", _AMBIGUOUS), ("associate", _ASSOCIATE)):
        if key in value:
            choice = _one_of(p, (*path, key), value[key], choices)
            if choice is not None:
                changes[key] = choice
    if "skip_unchanged" in value:
        flag = _boolean(p, (*path, "skip_unchanged"), value["skip_unchanged"])
        if flag is not None:
            changes["skip_unchanged"] = flag
    return replace(defaults, **changes)


# ---------------------------------------------------------------------------
# [servers.NAME]

_SERVER_KEYS = (
    "url",
    "api_key_env",
    "ca_bundle",
    "verify_tls",
    "version",
    "sandbox",
    "sandbox_options",
)
_URL_EXAMPLE = '"https://connect.example.com"'


def _key_variable_example(server: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", server.upper()) + "_CONNECT_API_KEY"


def _check_url(p: _Problems, path: _KeyPath, value: object) -> str | None:
    if not isinstance(value, str):
        p.expected(path, f"a string like {_URL_EXAMPLE}", value)
        return None
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        p.expected(path, f"an http or https URL with a host like {_URL_EXAMPLE}", value)
        return None
    if parts.username is not None or parts.password is not None:
        # Never echo it: the user name or password may be a secret.
        p.add(
            path,
            "must not contain a user name or password; "
            "put the API key in the variable named by api_key_env",
        )
        return None
    if parts.query or parts.fragment:
        # Not echoed either: a query string is a common place for a token.
        p.add(
            path,
            f'must not have a "?" query or "#" fragment; use an address like {_URL_EXAMPLE}',
        )
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        p.expected(path, f"an http or https URL with a host like {_URL_EXAMPLE}", value)
        return None
    return text.rstrip("/")


def _check_key_variable(
    p: _Problems,
    path: _KeyPath,
    value: object,
    server: str,
    environ: Mapping[str, str],
    required: bool,
) -> tuple[str | None, str | None]:
    example = _key_variable_example(server)
    if not isinstance(value, str):
        p.expected(path, f'an environment variable name like "{example}"', value)
        return None, None
    if _ENV_NAME.fullmatch(value) is None:
        # Not echoed: a value that is no variable name may be a pasted key.
        p.add(
            path,
            f'expected an environment variable name like "{example}" (letters, digits and "_", '
            "not starting with a digit), got a string that is not one",
        )
        return None, None
    key = environ.get(value)
    if key is None and _KEY_LIKE.fullmatch(value):
        p.add(
            path,
            "looks like an API key, not the name of a variable holding one; "
            f'export the key as {example} and write api_key_env = "{example}"',
        )
        return None, None
    if key is None and not required:
        return value, None
    if key is None:
        p.add(path, f"environment variable {value} is not set; export {value}=<API key> first")
        return value, None
    if not key.strip():
        p.add(path, f"environment variable {value} is empty; export {value}=<API key> first")
        return value, None
    return value, key.strip()


def _check_file(
    p: _Problems,
    path: _KeyPath,
    written: str,
    resolved: Path,
    is_file: Callable[[Path], bool] | None,
    what: str,
) -> None:
    if is_file is not None and not is_file(resolved):
        p.add(
            path,
            f"no {what} at {_quote(written)} (looked for {resolved}); "
            "check the path, which is relative to the job file's folder",
        )


def _sandbox_options(p: _Problems, path: _KeyPath, value: object) -> SandboxOptions | None:
    if not isinstance(value, dict):
        p.expected(path, "a table like { latency = 0.02, task_seconds = 0.5 }", value)
        return None
    p.unknown_keys(path, value, tuple(SANDBOX_OPTION_TYPES))
    chosen: dict[str, Any] = {}
    ok = True
    for key, types in SANDBOX_OPTION_TYPES.items():
        if key not in value:
            continue
        item = value[key]
        if types == (bool,):
            flag = _boolean(p, (*path, key), item)
            ok = ok and flag is not None
            chosen[key] = flag
            continue
        is_int = isinstance(item, int) and not isinstance(item, bool)
        if types == (int,):
            if is_int:
                chosen[key] = item
            else:
                p.expected((*path, key), "a whole number like 1", item)
                ok = False
            continue
        number = float(item) if is_int or isinstance(item, float) else None
        if key.endswith("_rate"):
            good = number is not None and 0.0 <= number <= 1.0
            what = "a number from 0 to 1 like 0.1"
        else:
            good = number is not None and math.isfinite(number) and number >= 0.0
            what = "a number >= 0 like 0.5"
        if good:
            chosen[key] = number
        else:
            p.expected((*path, key), what, item)
            ok = False
    return SandboxOptions(**chosen) if ok else None


def _parse_server(
    p: _Problems,
    name: str,
    value: object,
    folder: Path,
    environ: Mapping[str, str],
    is_file: Callable[[Path], bool] | None,
    keys_for: Collection[str] | None,
) -> ServerSpec | None:
    path: _KeyPath = ("servers", name)
    valid = True
    if _SERVER_NAME.fullmatch(name) is None:
        p.add(path, 'invalid server name; use only ASCII letters, digits, "_" and "-"')
        valid = False
    if not isinstance(value, dict):
        header = f"[servers.{_format_path((name,))}]"
        p.expected(path, f"a table like {header} with url or sandbox", value)
        return None
    p.unknown_keys(path, value, _SERVER_KEYS)
    has_url, has_sandbox = "url" in value, "sandbox" in value
    if has_url and has_sandbox:
        p.add(
            path,
            "has both url and sandbox; keep url for a real Connect server "
            "or sandbox for an embedded one",
        )
        valid = False
    elif not has_url and not has_sandbox:
        p.add(
            path,
            f"has neither url nor sandbox; add url = {_URL_EXAMPLE} with api_key_env, "
            'or sandbox = "seed.json"',
        )
        valid = False
    spec: dict[str, Any] = {"name": name}

    if has_url:
        spec["url"] = _check_url(p, (*path, "url"), value["url"])
        valid = valid and spec["url"] is not None
        if "api_key_env" not in value:
            example = _key_variable_example(name)
            p.add(
                path,
                f'missing api_key_env; add api_key_env = "{example}" '
                "and export that variable with the server's API key",
            )
            valid = False
    if "api_key_env" in value:
        required = keys_for is None or name in keys_for
        variable, key = _check_key_variable(
            p, (*path, "api_key_env"), value["api_key_env"], name, environ, required
        )
        spec["api_key_env"], spec["api_key"] = variable, key
        valid = valid and (key is not None or not required)

    if has_sandbox:
        seed_example = 'a seed file path like "seed.json"'
        written = _text(p, (*path, "sandbox"), value["sandbox"], seed_example)
        if written is None:
            valid = False
        else:
            spec["sandbox"] = _join(folder, written)
            _check_file(p, (*path, "sandbox"), written, spec["sandbox"], is_file, "seed file")

    for key in ("ca_bundle", "verify_tls"):
        if key in value and has_sandbox and not has_url:
            p.add((*path, key), "only applies to url servers; remove it from this sandbox server")
            valid = False
    if "ca_bundle" in value and has_url:
        pem_example = 'a PEM file path like "ca.pem"'
        written = _text(p, (*path, "ca_bundle"), value["ca_bundle"], pem_example)
        if written is None:
            valid = False
        else:
            spec["ca_bundle"] = _join(folder, written)
            _check_file(p, (*path, "ca_bundle"), written, spec["ca_bundle"], is_file, "CA bundle")
    if "verify_tls" in value and has_url:
        flag = _boolean(p, (*path, "verify_tls"), value["verify_tls"])
        if flag is None:
            valid = False
        else:
            spec["verify_tls"] = flag
    if spec.get("ca_bundle") is not None and spec.get("verify_tls") is False:
        p.add(
            (*path, "ca_bundle"),
            "has no effect with verify_tls = false; remove one of the two",
        )
        valid = False

    if "version" in value:
        version = value["version"]
        parsed = None
        if isinstance(version, str):
            try:
                parsed = parse_version(version)
            except ValueError:
                parsed = None
        if parsed is None:
            p.expected((*path, "version"), 'a Connect version like "2025.09.0"', version)
            valid = False
        else:
            spec["version"] = cast(str, version).strip()

    if "sandbox_options" in value:
        if not has_sandbox:
            p.add(
                (*path, "sandbox_options"),
                "only applies to sandbox servers; remove it or replace url with sandbox",
            )
            valid = False
        else:
            options = _sandbox_options(p, (*path, "sandbox_options"), value["sandbox_options"])
            if options is None:
                valid = False
            else:
                spec["sandbox_options"] = options
    return ServerSpec(**spec) if valid else None


def _parse_servers(
    p: _Problems,
    value: object,
    folder: Path,
    environ: Mapping[str, str],
    is_file: Callable[[Path], bool] | None,
    keys_for: Collection[str] | None,
) -> tuple[dict[str, ServerSpec], list[str]]:
    """Valid servers by name, and every name the file defines (valid or not)."""
    path: _KeyPath = ("servers",)
    if value is None or value == {}:
        p.add(
            path,
            "no server is defined; add one like [servers.prod] with url and api_key_env, "
            'or with sandbox = "seed.json"',
        )
        return {}, []
    if not isinstance(value, dict):
        p.expected(path, "tables like [servers.prod]", value)
        return {}, []
    servers: dict[str, ServerSpec] = {}
    for name, table in value.items():
        spec = _parse_server(p, name, table, folder, environ, is_file, keys_for)
        if spec is not None:
            servers[name] = spec
    return servers, list(value)


# ---------------------------------------------------------------------------
# [[content]]

_CONTENT_KEYS = ("dir", "glob", "name", "title", "servers", "guid")


def _undefined_server(name: str, defined: Sequence[str]) -> str:
    near = _suggestion(name, defined)
    if near is not None:
        return f'{_quote(name)} is not a defined server; did you mean "{near}"? ' + (
            f"(defined: {_choices(defined)})"
        )
    if defined:
        return (
            f"{_quote(name)} is not a defined server; define it under [servers] "
            f"or use one of: {_choices(defined)}"
        )
    return f"{_quote(name)} is not a defined server; define it under [servers]"


@dataclass
class _Entry:
    """One content item before the cross-entry checks."""

    index: int
    origin: _KeyPath  # the dir or glob key it came from
    shown: str  # the folder as the user would recognise it
    spec: ContentSpec
    named: bool  # the name was written in the file


def _entry_servers(
    p: _Problems, path: _KeyPath, value: Mapping[str, object], defined: Sequence[str]
) -> tuple[str, ...] | None:
    if "servers" not in value:
        return tuple(defined)
    listed = value["servers"]
    example = 'an array of server names like ["staging", "prod"]'
    if not isinstance(listed, list) or not listed:
        p.expected((*path, "servers"), example, listed)
        return None
    chosen: list[str] = []
    ok = True
    for position, name in enumerate(listed):
        if not isinstance(name, str):
            p.expected((*path, "servers", position), "a server name string", name)
            ok = False
        elif name not in defined:
            p.add((*path, "servers"), _undefined_server(name, defined))
            ok = False
        elif name in chosen:
            p.add((*path, "servers"), f"lists {_quote(name)} twice; list each server once")
            ok = False
        else:
            chosen.append(name)
    return tuple(chosen) if ok else None


def _entry_guids(
    p: _Problems,
    path: _KeyPath,
    value: object,
    targets: tuple[str, ...] | None,
    defined: Sequence[str],
) -> dict[str, str] | None:
    example = '{ prod = "8c3f1e2a-0b4d-4c6e-9f10-123456789abc" }'
    if not isinstance(value, dict):
        p.expected((*path, "guid"), f"a table of server = content GUID like {example}", value)
        return None
    guids: dict[str, str] = {}
    ok = True
    for server, guid in value.items():
        where = (*path, "guid", server)
        if server not in defined:
            p.add(where, _undefined_server(server, defined))
            ok = False
        elif targets is not None and server not in targets:
            p.add(
                where,
                f"this entry does not deploy to {_quote(server)}; "
                "add it to servers or remove this guid",
            )
            ok = False
        if not isinstance(guid, str) or _GUID.fullmatch(guid.strip()) is None:
            p.expected(where, 'a content GUID like "8c3f1e2a-0b4d-4c6e-9f10-123456789abc"', guid)
            ok = False
        elif ok:
            guids[server] = guid.strip().lower()
    return guids if ok else None


def _parse_entry(
    p: _Problems,
    index: int,
    value: object,
    folder: Path,
    defined: Sequence[str],
    glob: Callable[[str], list[str]] | None,
) -> list[_Entry]:
    path: _KeyPath = ("content", index)
    if not isinstance(value, dict):
        p.expected(path, 'a table with dir or glob like { dir = "content/app" }', value)
        return []
    p.unknown_keys(path, value, _CONTENT_KEYS)
    has_dir, has_glob = "dir" in value, "glob" in value
    ok = True
    if has_dir and has_glob:
        p.add(path, "has both dir and glob; keep one (a glob makes one entry per folder)")
        ok = False
    elif not has_dir and not has_glob:
        p.add(path, 'has neither dir nor glob; add dir = "content/app" or glob = "apps/*"')
        ok = False

    for key in ("name", "guid"):
        if key in value and has_glob and not has_dir:
            p.add(
                (*path, key),
                "only applies to a dir entry (a glob makes several items); "
                "remove it or list that folder as its own dir entry",
            )
            ok = False

    name: str | None = None
    if "name" in value and has_dir:
        raw = value["name"]
        if isinstance(raw, str) and is_valid_content_name(raw):
            name = raw
        else:
            p.expected((*path, "name"), _NAME_RULE, raw)
            ok = False
    title: str | None = None
    if "title" in value:
        title_example = 'a non-empty title like "Sales dashboard"'
        title = _text(p, (*path, "title"), value["title"], title_example)
        ok = ok and title is not None
    targets = _entry_servers(p, path, value, defined)
    ok = ok and targets is not None
    guids: dict[str, str] = {}
    if "guid" in value and has_dir:
        checked = _entry_guids(p, path, value["guid"], targets, defined)
        ok = ok and checked is not None
        guids = checked or {}

    folders: list[tuple[_KeyPath, str, Path]] = []
    if has_dir:
        written = _text(p, (*path, "dir"), value["dir"], 'a folder path like "content/app"')
        if written is None:
            ok = False
        else:
            folders.append(((*path, "dir"), written, _join(folder, written)))
    elif has_glob:
        pattern = _text(p, (*path, "glob"), value["glob"], 'a folder pattern like "apps/*"')
        if pattern is None:
            ok = False
        elif glob is None:
            p.add(
                (*path, "glob"),
                "cannot be expanded without the filesystem; "
                "load the job with load_job or pass glob= to parse_job",
            )
            ok = False
        else:
            full = (
                pattern
                if Path(pattern).is_absolute()
                else os.path.join(_glob.escape(str(folder)), pattern)
            )
            found = sorted({_join(folder, match) for match in glob(full)})
            if not found:
                p.add(
                    (*path, "glob"),
                    f"{_quote(pattern)} matches no folder; check the pattern, "
                    "which is relative to the job file's folder",
                )
                ok = False
            for match in found:
                folders.append(((*path, "glob"), _relative(match, folder), match))
    if not ok or targets is None:
        return []
    entries = []
    for origin, shown, directory in folders:
        spec = ContentSpec(
            dir=directory,
            name=name if name is not None else content_name_from_dir(directory.name),
            title=title,
            servers=targets,
            guids=dict(guids),
            relative_dir=_relative(directory, folder),
        )
        entries.append(_Entry(index, origin, shown, spec, name is not None))
    return entries


def _parse_content(
    p: _Problems,
    value: object,
    folder: Path,
    defined: Sequence[str],
    glob: Callable[[str], list[str]] | None,
) -> tuple[ContentSpec, ...]:
    path: _KeyPath = ("content",)
    if value is None or value == []:
        p.add(path, 'no content entry; add one like [[content]] with dir = "content/app"')
        return ()
    if not isinstance(value, list):
        p.expected(path, "[[content]] entries (note the double brackets)", value)
        return ()
    entries: list[_Entry] = []
    for index, item in enumerate(value):
        entries.extend(_parse_entry(p, index, item, folder, defined, glob))

    by_dir: dict[Path, _Entry] = {}
    by_name: dict[str, _Entry] = {}
    by_guid: dict[tuple[str, str], _Entry] = {}
    kept: list[ContentSpec] = []
    for entry in entries:
        spec = entry.spec
        ok = True
        first = by_dir.setdefault(spec.dir, entry)
        if first is not entry:
            p.add(
                entry.origin,
                f"folder {_quote(entry.shown)} is already deployed by content[{first.index}]; "
                "remove one of the two entries",
            )
            continue
        first = by_name.setdefault(spec.name, entry)
        if first is not entry:
            where = (*path, entry.index, "name") if entry.named else entry.origin
            p.add(
                where,
                f"name {_quote(spec.name)} is also used by content[{first.index}] "
                f"(folder {_quote(first.shown)}); give one of them its own "
                'name = "..." in a dir entry',
            )
            ok = False
        for server, guid in spec.guids.items():
            first = by_guid.setdefault((server, guid), entry)
            if first is not entry:
                p.add(
                    (*path, entry.index, "guid", server),
                    f"is also content[{first.index}]'s guid on {_quote(server)}; "
                    "give each entry its own content item",
                )
                ok = False
        if ok:
            kept.append(spec)
    return tuple(kept)


# ---------------------------------------------------------------------------
# Entry points

_TOP_KEYS = ("run", "servers", "content")
_AT_LINE = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)
_AT_END = re.compile(r"^(?P<msg>.*) \(at end of document\)$", re.S)


def _syntax_problem(source: str, text: str, error: Exception) -> str:
    message = str(error)
    found = _AT_LINE.match(message)
    if found is not None:
        line, col, message = int(found["line"]), int(found["col"]), found["msg"]
    else:
        at_end = _AT_END.match(message)
        if at_end is not None:
            message = at_end["msg"]
        last = text.split("\n")
        line, col = len(last), len(last[-1]) + 1
    return f"{source}:{line}:{col}: invalid TOML: {message}; fix the syntax there"


def _parse(
    text: str,
    source: Path,
    environ: Mapping[str, str],
    glob: Callable[[str], list[str]] | None,
    is_file: Callable[[Path], bool] | None,
    keys_for: Collection[str] | None,
) -> Job:
    # A byte-order mark is harmless to the user and fatal to tomllib; the hash
    # still covers the text exactly as given.
    body = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as error:
        raise JobError([_syntax_problem(str(source), body, error)]) from None
    p = _Problems(str(source), _locate_keys(body))
    folder = source.parent.absolute()
    p.unknown_keys((), data, _TOP_KEYS)
    run = _parse_run(p, data.get("run", {}), folder)
    servers, defined = _parse_servers(p, data.get("servers"), folder, environ, is_file, keys_for)
    content = _parse_content(p, data.get("content"), folder, defined, glob)
    if p.items:
        raise JobError(p.items)
    return Job(
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        run=run,
        servers=servers,
        content=content,
    )


def parse_job(
    text: str,
    source: Path,
    environ: Mapping[str, str],
    glob: Callable[[str], list[str]] | None = None,
    keys_for: Collection[str] | None = None,
) -> Job:
    """Parse and validate a job file's text; pure.

    ``source`` is the path as the user gave it: messages start with it and
    relative paths in the file resolve against its folder. API keys are read
    from ``environ``. ``glob`` expands a ``glob =`` pattern (already joined to
    the job file's folder) into folder paths; without it a glob entry is an
    error. ``keys_for`` limits which servers must have their API key set (the
    ones a ``--server`` selection keeps); by default every url server must.
    Raises JobError with every problem found.
    """
    return _parse(text, source, environ, glob, None, keys_for)


def _folders_matching(pattern: str) -> list[str]:
    return sorted(path for path in _glob.glob(pattern, recursive=True) if os.path.isdir(path))


def load_job(
    path: Path,
    environ: Mapping[str, str] | None = None,
    keys_for: Collection[str] | None = None,
) -> Job:
    """Read and parse the job file at ``path``.

    Globs expand to existing folders; sandbox seeds and CA bundles must exist.
    A missing content folder is not a job error (it is reported per item).
    API keys come from ``environ``, by default the process environment.
    """
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise JobError([f"{path}: no such job file; check the path"]) from None
    except IsADirectoryError:
        raise JobError(
            [f"{path}: is a folder, not a job file; give the .toml file's path"]
        ) from None
    except OSError as error:
        raise JobError(
            [f"{path}: cannot read the job file ({error.strerror}); check its permissions"]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise JobError(
            [
                f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                "save the job file as UTF-8"
            ]
        ) from None
    return _parse(
        text,
        path,
        os.environ if environ is None else environ,
        _folders_matching,
        lambda candidate: candidate.is_file(),
        keys_for,
    )


# ---------------------------------------------------------------------------
# Command-line narrowing


def _content_matches(spec: ContentSpec, pattern: str, folder: Path) -> bool:
    relative = spec.relative_dir or _relative(spec.dir, folder)
    patterns = {pattern, posixpath.normpath(pattern)}
    return any(
        fnmatch.fnmatchcase(spec.name, each) or fnmatch.fnmatchcase(relative, each)
        for each in patterns
    )


def narrow_job(
    job: Job,
    *,
    servers: Sequence[str] = (),
    content: Sequence[str] = (),
    report_dir: Path | None = None,
    concurrency: int | None = None,
    per_server: int | None = None,
    ambiguous: str | None = None,
) -> Job:
    """Apply ``--server``, ``--content`` and the run overrides to ``job``; pure.

    ``--server`` keeps the named servers (and drops the others from every
    content entry; an entry left with none is dropped). ``--content`` keeps
    entries whose name or folder (relative to the job file) matches one of
    the globs; such a selection must leave at least one entry. Raises
    JobError with every problem found.
    """
    problems: list[str] = []
    source = str(job.source)
    defined = list(job.servers)

    keep_servers = defined
    if servers:
        wanted = set(servers)
        for name in dict.fromkeys(servers):
            if name in job.servers:
                continue
            near = _suggestion(name, defined)
            fix = (
                f'did you mean "{near}"? (defined: {_choices(defined)})'
                if near is not None
                else f"use one of: {_choices(defined)}"
            )
            problems.append(f"--server: {_quote(name)} is not a server in {source}; {fix}")
        keep_servers = [name for name in defined if name in wanted]

    chosen = list(job.content)
    if content:
        folder = job.source.parent.absolute()
        picked: set[int] = set()
        for pattern in dict.fromkeys(content):
            hits = {
                i for i, spec in enumerate(job.content) if _content_matches(spec, pattern, folder)
            }
            if not hits:
                names = [spec.name for spec in job.content]
                listed = _choices(names[:10]) + (", ..." if len(names) > 10 else "")
                problems.append(
                    f"--content: {_quote(pattern)} matches no content name or folder in "
                    f"{source}; use a glob matching one of: {listed}"
                )
            picked |= hits
        chosen = [spec for i, spec in enumerate(job.content) if i in picked]

    kept_set = set(keep_servers)
    narrowed: list[ContentSpec] = []
    for spec in chosen:
        targets = tuple(name for name in spec.servers if name in kept_set)
        if not targets:
            continue
        guids = {name: guid for name, guid in spec.guids.items() if name in kept_set}
        narrowed.append(replace(spec, servers=targets, guids=guids))
    # Only an explicit --content selection must leave something: --server alone
    # may select a server no entry deploys to (listing its integrations needs none).
    if content and not problems and not narrowed:
        problems.append(
            "--server/--content: no selected content entry deploys to a selected server "
            f"({_choices(keep_servers)}); widen the selection"
        )

    changes: dict[str, Any] = {}
    if report_dir is not None:
        changes["report_dir"] = report_dir.absolute()
    for option, number, example in (
        ("concurrency", concurrency, 16),
        ("per_server", per_server, 4),
    ):
        if number is None:
            continue
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            changes[option] = number
        else:
            flag = "--" + option.replace("_", "-")
            problems.append(
                f"{flag}: expected a positive integer like {example}, got {_show(number)}"
            )
    if ambiguous is not None:
        if ambiguous in _AMBIGUOUS:
            changes["ambiguous"] = ambiguous
        else:
            problems.append(f'--ambiguous: expected "fail" or "first", got {_show(ambiguous)}')

    if problems:
        raise JobError(problems)
    return replace(
        job,
        run=replace(job.run, **changes),
        servers={name: job.servers[name] for name in keep_servers},
        content=tuple(narrowed),
    )
