"""Sandbox seed files: what one simulated Connect server has when it starts.

A seed is JSON::

    {
      "version": "2025.09.0",              # "" hides the version; default current
      "hostname": "connect.example.com",
      "oauth_integrations_enabled": true,
      "license": {"oauth-integrations": true},   # kept as written; absent: licensed
      "user": {"guid": "...", "username": "...", "role": "administrator"},
      "integrations": [ ...integration API objects... ],   # required
      "content": [{"guid": "...", "name": "...", "title": "...",
                   "app_mode": "...", "associations": ["<integration guid>"]}]
    }

Only ``integrations`` is required. Nothing is added that the seed does not
say: a server of 2025.05.0 or later has a default Connect integration, and a
seed copied from such a server lists it. Integration objects are served as
written (a seed may leave out ``auth_type`` to stand for an older server).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SeedError
from ..integrations import Integration
from ..manifest import json_type
from ..versions import MULTIPLE_ASSOCIATIONS, ConnectVersion, at_least, parse_version

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_USER_GUID",
    "NAME_PATTERN",
    "ROLES",
    "Seed",
    "SeedContent",
    "SeedUser",
    "load_seed",
    "parse_seed",
    "seed_document",
]

# What a seed without "version" stands for.
CURRENT_VERSION = "2025.11.0"
DEFAULT_USER_GUID = "6f300623-1e0c-48e6-a473-ddf630c0c0c3"
ROLES: tuple[str, ...] = ("administrator", "publisher", "viewer")
# Connect's rule for content names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,64}")

_TOP_KEYS = (
    "version",
    "hostname",
    "oauth_integrations_enabled",
    "license",
    "user",
    "integrations",
    "content",
)
_USER_KEYS = ("guid", "username", "role")
_CONTENT_KEYS = ("guid", "name", "title", "app_mode", "associations", "owner_guid")
_NULLABLE_STRINGS = ("name", "description", "template", "auth_type")


@dataclass(frozen=True)
class SeedUser:
    """The owner of the sandbox's API key."""

    guid: str = DEFAULT_USER_GUID
    username: str = "admin"
    role: str = "administrator"


@dataclass(frozen=True)
class SeedContent:
    """A content item that exists before anything is deployed (it has no bundle)."""

    name: str
    guid: str | None = None  # None: the sandbox makes one up
    title: str | None = None
    app_mode: str = "unknown"
    associations: tuple[str, ...] = ()  # integration guids, in order
    owner_guid: str | None = None  # None: the seed's user


@dataclass(frozen=True)
class Seed:
    """A validated seed. ``integration_objects`` are the API objects exactly as
    written (served by the sandbox); ``integrations`` the same parsed for matching.
    """

    source: str
    version: str
    hostname: str
    oauth_integrations_enabled: bool
    license: Mapping[str, Any]
    user: SeedUser
    integrations: tuple[Integration, ...]
    integration_objects: tuple[Mapping[str, Any], ...] = field(repr=False)
    content: tuple[SeedContent, ...] = ()

    @property
    def parsed_version(self) -> ConnectVersion | None:
        """The version as a ConnectVersion; ``None`` when hidden."""
        return parse_version(self.version)

    @property
    def oauth_licensed(self) -> bool:
        """The licence flag ``oauth-integrations``; false when the licence does not say."""
        return self.license.get("oauth-integrations") is True


class _Problems:
    """Collects every problem of one seed, each naming the source and key path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.source}: {path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise SeedError("\n".join(self.items))


def _unknown_keys(
    problems: _Problems, path: str, obj: Mapping[str, Any], allowed: Sequence[str]
) -> None:
    for key in obj:
        if key not in allowed:
            problems.add(
                f"{path}{key}" if path.endswith(".") or not path else f"{path}.{key}",
                f"unknown key; remove it (allowed keys: {', '.join(allowed)})",
            )


def parse_seed(data: bytes | str, source: str) -> Seed:
    """Validate a seed document; ``source`` (its path) starts every message.

    Raises SeedError listing every problem, one per line, each with the key
    path and the fix.
    """
    try:
        document = json.loads(data)
    except UnicodeDecodeError as exc:
        raise SeedError(
            f"{source}: not UTF-8 text ({exc.reason}); save the seed as UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        raise SeedError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix the syntax"
        ) from None
    if not isinstance(document, dict):
        raise SeedError(
            f"{source}: the top level is {json_type(document)}; a seed is a JSON object with at "
            'least "integrations": [...]'
        )
    return _validate(document, source)


def load_seed(path: Path) -> Seed:
    """Read and validate the seed file at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SeedError(
            f"{path}: cannot be read ({exc.strerror or exc}); check the sandbox seed path"
        ) from None
    return parse_seed(data, str(path))


def _validate(document: Mapping[str, Any], source: str) -> Seed:
    problems = _Problems(source)
    _unknown_keys(problems, "", document, _TOP_KEYS)

    version = document.get("version", CURRENT_VERSION)
    parsed: ConnectVersion | None = None
    if not isinstance(version, str):
        problems.add("version", f'is {json_type(version)}; write a string like "2025.09.0" or ""')
        version = CURRENT_VERSION
    else:
        try:
            parsed = parse_version(version)
        except ValueError:
            problems.add("version", f'{version!r} is not a Connect version; write "2025.09.0"')

    hostname = document.get("hostname", "localhost")
    if not isinstance(hostname, str):
        problems.add(
            "hostname", f"is {json_type(hostname)}; write the server's host name as a string"
        )
        hostname = "localhost"

    enabled = document.get("oauth_integrations_enabled", True)
    if not isinstance(enabled, bool):
        problems.add("oauth_integrations_enabled", f"is {json_type(enabled)}; write true or false")
        enabled = True

    # Without "license" the server is licensed; a given licence is kept as written, so
    # one that does not name the flag stands for a server whose licence does not say.
    licence_obj = document.get("license", {"oauth-integrations": True})
    licence: dict[str, Any] = {}
    if not isinstance(licence_obj, dict):
        problems.add(
            "license", f'is {json_type(licence_obj)}; write {{"oauth-integrations": true}}'
        )
    else:
        licence.update(licence_obj)
        flag = licence.get("oauth-integrations", False)
        if not isinstance(flag, bool):
            problems.add("license.oauth-integrations", f"is {json_type(flag)}; write true or false")

    user = _user(problems, document.get("user", {}))
    integrations, objects = _integrations(problems, document)
    known = {integration.guid for integration in integrations}
    content = _content(problems, document.get("content", []), known, parsed, user)

    problems.raise_if_any()
    return Seed(
        source=source,
        version=version,
        hostname=hostname,
        oauth_integrations_enabled=enabled,
        license=licence,
        user=user,
        integrations=integrations,
        integration_objects=objects,
        content=content,
    )


def _user(problems: _Problems, obj: Any) -> SeedUser:
    if not isinstance(obj, dict):
        problems.add(
            "user",
            f'is {json_type(obj)}; write {{"guid": "...", "username": "...", "role": "publisher"}}',
        )
        return SeedUser()
    _unknown_keys(problems, "user", obj, _USER_KEYS)
    values: dict[str, str] = {}
    for key, default in (
        ("guid", DEFAULT_USER_GUID),
        ("username", "admin"),
        ("role", "administrator"),
    ):
        value = obj.get(key, default)
        if not isinstance(value, str) or not value:
            problems.add(f"user.{key}", f"is {json_type(value)}; write a non-empty string")
            value = default
        values[key] = value
    if values["role"] not in ROLES:
        problems.add(
            "user.role", f"{values['role']!r} is not a role; write one of {', '.join(ROLES)}"
        )
    return SeedUser(**values)


def _integrations(
    problems: _Problems, document: Mapping[str, Any]
) -> tuple[tuple[Integration, ...], tuple[Mapping[str, Any], ...]]:
    if "integrations" not in document:
        problems.add(
            "integrations",
            "is missing; list the server's integrations (an empty array [] for none), "
            "for example from `batch-deploy integrations --json`",
        )
        return (), ()
    items = document["integrations"]
    if not isinstance(items, list):
        problems.add(
            "integrations", f"is {json_type(items)}; write an array of integration objects"
        )
        return (), ()
    parsed: list[Integration] = []
    objects: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"integrations[{index}]"
        if not isinstance(item, dict):
            problems.add(path, f"is {json_type(item)}; write an integration object")
            continue
        ok = True
        guid = item.get("guid")
        if not isinstance(guid, str) or not guid:
            problems.add(
                f"{path}.guid", f"is {json_type(guid)}; give the integration's guid string"
            )
            ok = False
        elif guid in seen:
            problems.add(f"{path}.guid", f"{guid!r} is listed twice; give each integration once")
            ok = False
        for key in _NULLABLE_STRINGS:
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                problems.add(f"{path}.{key}", f"is {json_type(value)}; write a string or null")
                ok = False
        config = item.get("config", {})
        if not isinstance(config, dict):
            problems.add(f"{path}.config", f"is {json_type(config)}; write an object")
            ok = False
        if ok:
            assert isinstance(guid, str)
            seen.add(guid)
            parsed.append(Integration.from_api(item))
            objects.append(dict(item))
    return tuple(parsed), tuple(objects)


def _content(
    problems: _Problems,
    items: Any,
    known_integrations: set[str],
    version: ConnectVersion | None,
    user: SeedUser,
) -> tuple[SeedContent, ...]:
    if not isinstance(items, list):
        problems.add("content", f"is {json_type(items)}; write an array of content objects")
        return ()
    out: list[SeedContent] = []
    names: set[tuple[str, str]] = set()
    guids: set[str] = set()
    for index, item in enumerate(items):
        path = f"content[{index}]"
        if not isinstance(item, dict):
            problems.add(path, f'is {json_type(item)}; write {{"name": "..."}}')
            continue
        _unknown_keys(problems, path, item, _CONTENT_KEYS)
        name = item.get("name")
        owner = item.get("owner_guid", user.guid)
        if not isinstance(owner, str) or not owner:
            problems.add(f"{path}.owner_guid", f"is {json_type(owner)}; write a user guid string")
            owner = user.guid
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            shown = repr(name) if isinstance(name, str) else json_type(name)
            problems.add(
                f"{path}.name",
                f"{shown} is not a content name; use 3 to 64 letters, digits, '_' or '-'",
            )
            name = None
        elif (owner, name) in names:
            problems.add(f"{path}.name", f"{name!r} is used twice; content names are unique")
        else:
            names.add((owner, name))
        guid = item.get("guid")
        if guid is not None and (not isinstance(guid, str) or not guid):
            problems.add(
                f"{path}.guid", f"is {json_type(guid)}; write a guid string or leave it out"
            )
            guid = None
        elif isinstance(guid, str):
            if guid in guids:
                problems.add(f"{path}.guid", f"{guid!r} is used twice; give each item its own")
            guids.add(guid)
        title = item.get("title")
        if title is not None and not isinstance(title, str):
            problems.add(f"{path}.title", f"is {json_type(title)}; write a string or null")
            title = None
        app_mode = item.get("app_mode", "unknown")
        if not isinstance(app_mode, str) or not app_mode:
            problems.add(f"{path}.app_mode", f'is {json_type(app_mode)}; write e.g. "python-shiny"')
            app_mode = "unknown"
        associations = _associations(
            problems, path, item.get("associations", []), known_integrations, version
        )
        if name is not None:
            out.append(
                SeedContent(
                    name=name,
                    guid=guid,
                    title=title,
                    app_mode=app_mode,
                    associations=associations,
                    owner_guid=None if owner == user.guid else owner,
                )
            )
    return tuple(out)


def _associations(
    problems: _Problems,
    path: str,
    value: Any,
    known: set[str],
    version: ConnectVersion | None,
) -> tuple[str, ...]:
    where = f"{path}.associations"
    if not isinstance(value, list):
        problems.add(where, f"is {json_type(value)}; write an array of integration guids")
        return ()
    out: list[str] = []
    for index, guid in enumerate(value):
        if not isinstance(guid, str):
            problems.add(f"{where}[{index}]", f"is {json_type(guid)}; write an integration guid")
        elif guid not in known:
            problems.add(
                f"{where}[{index}]",
                f"{guid!r} is not the guid of any integration in this seed; "
                'list that integration under "integrations" or remove the association',
            )
        elif guid not in out:
            out.append(guid)
    if len(out) > 1 and not at_least(version, MULTIPLE_ASSOCIATIONS):
        problems.add(
            where,
            f"lists {len(out)} integrations, but Connect before {MULTIPLE_ASSOCIATIONS} "
            'associates at most one; keep one or raise "version"',
        )
    return tuple(out)


def seed_document(
    *,
    version: str,
    hostname: str,
    oauth_integrations_enabled: bool,
    license: Mapping[str, Any],
    user: Mapping[str, Any] | None,
    integrations: Sequence[Integration],
    content: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A seed that rehearses a real server offline; config secrets are redacted.

    ``user`` may be Connect's ``/v1/user`` answer (``user_role`` is read as
    the role; other fields are dropped). Raises SeedError when the result
    would not be a valid seed (for example a version that is not calendar).
    """
    document: dict[str, Any] = {
        "version": version,
        "hostname": hostname,
        "oauth_integrations_enabled": oauth_integrations_enabled,
        "license": dict(license),
    }
    if user is not None:
        role = user.get("role", user.get("user_role"))
        document["user"] = {
            key: value
            for key, value in (
                ("guid", user.get("guid")),
                ("username", user.get("username")),
                ("role", role),
            )
            if value is not None
        }
    document["integrations"] = [integration.to_api(redact=True) for integration in integrations]
    if content:
        document["content"] = [dict(item) for item in content]
    # A round trip through the validator guarantees what this promises.
    _validate(json.loads(json.dumps(document)), "seed_document")
    return document
