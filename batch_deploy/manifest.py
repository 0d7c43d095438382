"""manifest.json -> Manifest: validation of requests and of the file list.

``parse_manifest`` is pure: bytes in, a ``Manifest`` or a ``ManifestError`` out.
``load_manifest`` reads ``manifest.json`` from a content folder, checks that
every listed file is present inside that folder, and hashes the listed files
to note stale checksums. Nothing here follows a path out of the folder.

A malformed element of ``integration_requests`` does not make the manifest
unusable: it becomes an ``IntegrationRequest`` whose ``problem`` says what is
wrong, so the other requests of the same manifest still resolve.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import re2

from .errors import ManifestError

__all__ = [
    "MAX_JSON_DEPTH",
    "REQUEST_FIELDS",
    "IntegrationRequest",
    "JSONTooDeep",
    "Manifest",
    "compile_pattern",
    "json_too_deep",
    "json_type",
    "load_manifest",
    "loads_json",
    "parse_manifest",
    "pattern_problem",
]

# The fields a request may name, in the order diagnostics list them.
REQUEST_FIELDS: tuple[str, ...] = ("guid", "name", "description", "type", "auth_type", "config")
_STRING_FIELDS: tuple[str, ...] = REQUEST_FIELDS[:-1]
_PATTERN_FIELDS: tuple[str, ...] = ("name", "description")
_ALLOWED = "guid, name, description, type, auth_type and config"
_ANY_OF = "guid, name, description, type, auth_type or config"

_DRIVE = re.compile(r"^[A-Za-z]:")
_BOM = b"\xef\xbb\xbf"
_HASH_CHUNK = 1 << 20
# Manifests and Connect's answers nest a few levels; the matcher, the redactor
# and the JSON encoder recurse, so anything deeper is refused where it is read.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class IntegrationRequest:
    """One element of ``integration_requests``.

    ``text`` is the element as compact JSON (the report's ``request`` column).
    ``problem`` is set when the request is malformed: it resolves ``invalid``.
    """

    index: int
    text: str
    guid: str | None = None
    name: str | None = None
    description: str | None = None
    type: str | None = None
    auth_type: str | None = None
    config: Mapping[str, Any] | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A usable manifest. ``raw`` is the file's bytes, unchanged, for the bundle."""

    raw: bytes
    appmode: str
    title: str | None
    files: tuple[str, ...]  # validated relative POSIX paths, in manifest order
    checksums: Mapping[str, str]  # path -> md5 hex as listed (may be stale)
    requests: tuple[IntegrationRequest, ...]
    notes: tuple[str, ...] = field(default=())  # non-fatal observations (stale checksums)


# Shared by validation here and by matching, so that a pattern accepted at parse
# time is compiled with exactly the options it is matched with. Compiled RE2
# objects are immutable, so one process-wide cache serves every server.
@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """Compile ``pattern`` with RE2, case-sensitive, without logging to stderr.

    Raises ``re2.error`` for syntax RE2 rejects and ``UnicodeEncodeError`` for
    text that is not valid Unicode (a lone surrogate from a JSON escape).
    """
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def json_type(value: Any) -> str:
    """How messages name a JSON value's type: "a string", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays or objects more than ``limit`` levels deep.

    Walks with its own stack, so a value of any depth is measured without recursion.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


class JSONTooDeep(ValueError):
    """JSON nested past ``MAX_JSON_DEPTH``: refused, as nothing here should recurse into it."""


def loads_json(text: str | bytes, **hooks: Any) -> Any:
    """``json.loads`` for untrusted input: NaN and Infinity (which Python reads but
    JSON forbids) raise ValueError, and nesting past ``MAX_JSON_DEPTH`` raises
    JSONTooDeep. ``hooks`` go to ``json.loads`` (``parse_float``, ...).
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant, **hooks)
    except RecursionError:
        raise JSONTooDeep(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    if json_too_deep(value):
        raise JSONTooDeep(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _quote(text: str) -> str:
    # JSON quoting: what the user typed in the manifest, and never a raw newline.
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if _is_unicode(quoted) else json.dumps(text)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compact(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    # A lone surrogate cannot be written to a UTF-8 report; escape it instead.
    return text if _is_unicode(text) else json.dumps(value, separators=(",", ":"))


def _re2_message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


def pattern_problem(key: str, pattern: str) -> str | None:
    """Why RE2 rejects ``pattern`` (the request's ``key`` field), or None."""
    try:
        compile_pattern(pattern)
    except UnicodeEncodeError:
        return f"{key} pattern is not valid Unicode (it holds a lone surrogate escape)"
    except re2.error as exc:
        return (
            f"{key} pattern {_quote(pattern)} is not valid RE2 syntax ({_re2_message(exc)}); "
            "RE2 has no look-around or back-references"
        )
    return None


def _parse_request(index: int, element: Any) -> IntegrationRequest:
    text = _compact(element)
    if not isinstance(element, dict):
        return IntegrationRequest(
            index,
            text,
            problem=f"the request is {json_type(element)}, not an object with any of {_ANY_OF}",
        )
    if not element:
        return IntegrationRequest(
            index, text, problem=f"the request is empty; give at least one of {_ANY_OF}"
        )

    problems: list[str] = []
    unknown = [key for key in element if key not in REQUEST_FIELDS]
    if unknown:
        listed = ", ".join(_quote(key) for key in unknown)
        noun = "field" if len(unknown) == 1 else "fields"
        hints = [
            f'"{_likely(key)}" for {_quote(key)}'
            for key in unknown
            if _likely(key) in REQUEST_FIELDS and _likely(key) not in element
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        problems.append(f"unknown {noun} {listed}{hint}; the fields are {_ALLOWED}")

    strings: dict[str, str] = {}
    for key in _STRING_FIELDS:
        if key not in element:
            continue
        value = element[key]
        if isinstance(value, str):
            strings[key] = value
        elif value is None:
            problems.append(f"{key} is null; leave it out or give a string")
        else:
            problems.append(f"{key} is {json_type(value)}, not a string")

    config: dict[str, Any] | None = None
    if "config" in element:
        value = element["config"]
        if isinstance(value, dict):
            config = dict(value)
        else:
            problems.append(f"config is {json_type(value)}, not an object")

    for key in _PATTERN_FIELDS:
        if key in strings:
            found = pattern_problem(key, strings[key])
            if found is not None:
                problems.append(found)

    if not problems and not _is_unicode(json.dumps(element, ensure_ascii=False)):
        problems.append("the request holds a lone surrogate escape, which is not valid Unicode")

    return IntegrationRequest(
        index=index,
        text=text,
        guid=strings.get("guid"),
        name=strings.get("name"),
        description=strings.get("description"),
        type=strings.get("type"),
        auth_type=strings.get("auth_type"),
        config=config,
        problem="; ".join(problems) if problems else None,
    )


def _likely(key: str) -> str:
    """The request field a near-miss key was probably meant to be."""
    folded = key.strip().lower().replace("-", "_")
    return "type" if folded == "template" else folded


def _path_problem(path: str) -> str | None:
    """Why ``path`` may not be listed, or None; the message's tail is the fix."""
    fix = "list paths relative to the manifest's folder"
    if "\x00" in path:
        return "contains a NUL character; remove it"
    if not path:
        return "is an empty path; remove it"
    if not _is_unicode(path):
        return "is not valid Unicode (it holds a lone surrogate escape); rename the file"
    if "\\" in path:
        return f"contains a backslash; use forward slashes ({_quote(path.replace(chr(92), '/'))})"
    if path.startswith("/"):
        return f"is an absolute path; {fix}"
    if _DRIVE.match(path):
        return f"starts with a drive letter; {fix}"
    segments = path.split("/")
    if ".." in segments:
        depth = 0
        for segment in segments:
            depth += -1 if segment == ".." else (0 if segment in ("", ".") else 1)
            if depth < 0:
                return f"leaves the content folder; {fix}"
        tidy = _tidy(segments)
        if not tidy:
            return "names the content folder itself; list files, not folders"
        return f'has a ".." segment; list it as {_quote(tidy)}'
    if not _tidy(segments):
        return "names the content folder itself; list files, not folders"
    if "." in segments:
        return f'has a "." segment; list it as {_quote(_tidy(segments))}'
    if "" in segments:
        return f"has an empty segment; list it as {_quote(_tidy(segments))}"
    return None


def _tidy(segments: list[str]) -> str:
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    return "/".join(kept)


def _decode(data: bytes, where: str) -> Any:
    if data.startswith(_BOM):
        raise ManifestError(
            f"{where}: starts with a byte-order mark, which JSON does not allow; "
            "save it as UTF-8 without a BOM"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{where}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise ManifestError(
            f"{where}: is empty; run rsconnect write-manifest to write the manifest"
        )
    try:
        return loads_json(text, parse_float=_finite, parse_int=_whole)
    except JSONTooDeep:
        raise ManifestError(
            f"{where}: nested too deeply to read; a manifest needs only a few levels"
        ) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix the syntax or run rsconnect write-manifest again"
        ) from None
    except ValueError as exc:
        raise ManifestError(
            f"{where}: cannot be read as JSON ({exc}); "
            "fix the value or run rsconnect write-manifest again"
        ) from None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Connect) do not.
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # Python refuses very long digit strings; say so without its own advice.
        raise ValueError(f"a number with {len(text)} digits is too long") from None


def parse_manifest(data: bytes, where: str) -> Manifest:
    """Validate a manifest's bytes; ``where`` (usually its path) prefixes every message.

    Raises ManifestError when the manifest is unusable: not UTF-8, not JSON,
    not an object, no ``metadata.appmode``, a ``files`` path that is not a
    plain relative POSIX path, or ``integration_requests`` that is not an array.
    """
    document = _decode(data, where)
    if not isinstance(document, dict):
        raise ManifestError(
            f"{where}: the top level is {json_type(document)}, not an object; "
            "run rsconnect write-manifest to write a valid manifest"
        )

    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        state = "missing" if "metadata" not in document else json_type(metadata)
        raise ManifestError(
            f"{where}: metadata is {state}, not an object; "
            'add "metadata": {"appmode": "..."} (rsconnect write-manifest writes it)'
        )
    appmode = metadata.get("appmode")
    if not isinstance(appmode, str) or not appmode.strip():
        state = "missing" if "appmode" not in metadata else _describe(appmode)
        raise ManifestError(
            f"{where}: metadata.appmode is {state}; "
            'set it to the content type, for example "python-shiny" or "quarto-static"'
        )

    title: str | None = None
    for candidate in (document.get("title"), metadata.get("title")):
        if isinstance(candidate, str) and candidate.strip():
            title = candidate
            break

    files, checksums = _parse_files(document, where)

    raw_requests = document.get("integration_requests", [])
    if not isinstance(raw_requests, list):
        raise ManifestError(
            f"{where}: integration_requests is {json_type(raw_requests)}, not an array; "
            'write "integration_requests": [{"type": "...", "name": "..."}]'
        )
    requests = tuple(_parse_request(index, element) for index, element in enumerate(raw_requests))

    return Manifest(
        raw=data,
        appmode=appmode,
        title=title,
        files=files,
        checksums=checksums,
        requests=requests,
    )


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return "a blank string"
    return json_type(value)


def _parse_files(document: Mapping[str, Any], where: str) -> tuple[tuple[str, ...], dict[str, str]]:
    listing = document.get("files")
    if not isinstance(listing, dict):
        state = "missing" if "files" not in document else json_type(listing)
        raise ManifestError(
            f"{where}: files is {state}, not an object; "
            'list the content\'s files as {"path": {"checksum": "<md5>"}} '
            "(rsconnect write-manifest writes it)"
        )
    checksums: dict[str, str] = {}
    for path, entry in listing.items():
        problem = _path_problem(path)
        if problem is not None:
            raise ManifestError(f"{where}: files: {_quote(path)} {problem}")
        if isinstance(entry, dict):
            checksum = entry.get("checksum")
            if isinstance(checksum, str):
                checksums[path] = checksum
    return tuple(listing), checksums


def load_manifest(content_dir: Path) -> Manifest:
    """Read ``content_dir/manifest.json`` and check the listed files.

    I/O: reads the manifest and every listed file (to hash it). Raises
    ManifestError when the manifest is missing or unusable, or a listed file is
    missing, is not a regular file, or resolves (through a symbolic link)
    outside the folder. A listed file whose MD5 differs from the manifest's
    checksum is only a note: Connect does not verify those checksums.
    """
    path = content_dir / "manifest.json"
    where = str(path)
    try:
        root = content_dir.resolve(strict=True)
    except OSError:
        raise ManifestError(
            f"{where}: not found (the folder {str(content_dir)!r} does not exist); "
            "check the content's dir in the job file"
        ) from None
    if not path.is_file():
        state = "is not a file" if path.exists() else "not found"
        raise ManifestError(
            f"{where}: {state}; run rsconnect write-manifest for this folder or add a manifest.json"
        )
    if not path.resolve().is_relative_to(root):
        raise ManifestError(
            f"{where}: is a symbolic link to a file outside the content folder; "
            "copy the manifest into the folder"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"{where}: cannot be read ({exc.strerror}); check the file's permissions"
        ) from None

    manifest = parse_manifest(data, where)
    notes: list[str] = []
    missing: list[str] = []
    for listed in manifest.files:
        target = content_dir / listed
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            raise ManifestError(
                f"{where}: files: {_quote(listed)} cannot be resolved (a symbolic link loop?); "
                "replace the link with the file itself"
            ) from None
        if not resolved.is_relative_to(root):
            raise ManifestError(
                f"{where}: files: {_quote(listed)} resolves outside the content folder "
                "through a symbolic link; replace the link with the file itself"
            )
        if not target.exists():
            missing.append(listed)
            continue
        if not target.is_file():
            raise ManifestError(
                f"{where}: files: {_quote(listed)} is not a regular file; "
                "list only files, each with its own path"
            )
        expected = manifest.checksums.get(listed)
        if expected is None:
            continue
        try:
            actual = _md5(target)
        except OSError as exc:
            raise ManifestError(
                f"{where}: files: {_quote(listed)} cannot be read ({exc.strerror}); "
                "check the file's permissions"
            ) from None
        if actual != expected.lower():
            notes.append(
                f"{where}: files: {_quote(listed)} changed since the manifest was written "
                "(its MD5 differs from the listed checksum); "
                "run rsconnect write-manifest again to refresh it"
            )
    if missing:
        shown = ", ".join(_quote(item) for item in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        verb, them = ("is", "it") if len(missing) == 1 else ("are", "them")
        raise ManifestError(
            f"{where}: files: {shown}{more} {verb} listed but missing; "
            f"restore {them} or run rsconnect write-manifest again"
        )
    return replace(manifest, notes=tuple(notes))


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
