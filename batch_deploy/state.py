"""``report_dir/state.json``: what earlier runs finished, per (content, server).

A rerun deploys into the remembered content guid instead of creating a twin,
and ``--resume`` skips pairs whose bundle MD5 has not changed. The file holds
guids, bundle ids, MD5s and times only: never a key or a URL with credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StateError

__all__ = ["STATE_VERSION", "PairState", "load_state", "save_state"]

STATE_VERSION = 1
_FIELDS = ("content_guid", "bundle_id", "bundle_md5", "finished")


@dataclass(frozen=True)
class PairState:
    """One finished pair. ``finished`` is when, as ISO-8601 UTC text."""

    content_guid: str
    bundle_id: str
    bundle_md5: str
    finished: str


def _corrupt(path: Path, detail: str) -> StateError:
    return StateError(
        f"{path}: the state file of an earlier run cannot be used ({detail}); "
        "delete it to start afresh (the next run then looks content up by name)"
    )


def _pair_from(path: Path, index: int, item: Any) -> tuple[tuple[str, str], PairState]:
    where = f"pairs[{index}]"
    if not isinstance(item, dict):
        raise _corrupt(path, f"{where} is not an object")
    values: dict[str, str] = {}
    for name in ("content", "server", *_FIELDS):
        value = item.get(name)
        if not isinstance(value, str):
            raise _corrupt(path, f"{where}.{name} is not a string")
        values[name] = value
    key = (values.pop("content"), values.pop("server"))
    return key, PairState(**values)


def load_state(path: Path) -> dict[tuple[str, str], PairState]:
    """Read the state file; a missing file is an empty state.

    Raises StateError when the file exists but cannot be used.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise _corrupt(path, f"cannot be read: {error.strerror}") from error
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise _corrupt(path, "not JSON") from error
    if not isinstance(document, dict):
        raise _corrupt(path, "not a JSON object")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupt(path, "no integer \"version\"")
    if version > STATE_VERSION:
        raise StateError(
            f"{path}: the state file was written by a newer batch_deploy "
            f"(version {version}); upgrade batch_deploy or delete it to start afresh"
        )
    if version < 1:
        raise _corrupt(path, f"unknown version {version}")
    pairs = document.get("pairs")
    if not isinstance(pairs, list):
        raise _corrupt(path, "no \"pairs\" list")
    states: dict[tuple[str, str], PairState] = {}
    for index, item in enumerate(pairs):
        key, state = _pair_from(path, index, item)
        if key in states:
            raise _corrupt(path, f"pairs[{index}] repeats {key[0]!r} on {key[1]!r}")
        states[key] = state
    return states


def _encode(states: Mapping[tuple[str, str], PairState]) -> bytes:
    pairs = [
        {
            "content": content,
            "server": server,
            **{name: getattr(state, name) for name in _FIELDS},
        }
        for (content, server), state in sorted(states.items())
    ]
    text = json.dumps({"version": STATE_VERSION, "pairs": pairs}, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def save_state(path: Path, states: Mapping[tuple[str, str], PairState]) -> None:
    """Replace the state file atomically: a crash leaves the old or the new file."""
    data = _encode(states)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise _unwritable(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise _unwritable(path, error) from error
        raise
    _sync_dir(path.parent)


def _unwritable(path: Path, error: OSError) -> StateError:
    return StateError(
        f"{path}: the state file cannot be written ({error.strerror or error}); "
        "make report_dir writable or point report_dir elsewhere"
    )


def _sync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
