"""Typed values for what Connect answers, and their parsers.

Everything a server sends is untrusted: each parser checks the types it relies
on and raises ``ShapeError`` (a ValueError) saying which field is wrong, which
the client turns into an APIError naming the server and the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Association",
    "Bundle",
    "Content",
    "ServerSettings",
    "ShapeError",
    "Task",
    "User",
]


class ShapeError(ValueError):
    """An answer does not have the shape Connect's API documents."""


@dataclass(frozen=True)
class ServerSettings:
    """``version`` is ``""`` when the administrator hides it."""

    version: str
    hostname: str
    oauth_integrations_enabled: bool
    oauth_licensed: bool | None

    @classmethod
    def from_api(cls, obj: Any) -> ServerSettings:
        data = _object(obj, "server settings")
        licence = data.get("license")
        licensed = licence.get("oauth-integrations") if isinstance(licence, Mapping) else None
        return cls(
            version=_optional_text(data, "version") or "",
            hostname=_optional_text(data, "hostname") or "",
            oauth_integrations_enabled=data.get("oauth_integrations_enabled") is True,
            oauth_licensed=licensed if isinstance(licensed, bool) else None,
        )


@dataclass(frozen=True)
class User:
    """The owner of the API key; ``role`` is administrator, publisher or viewer."""

    guid: str
    username: str
    role: str

    @classmethod
    def from_api(cls, obj: Any) -> User:
        data = _object(obj, "user")
        return cls(
            guid=_text(data, "guid"),
            username=_optional_text(data, "username") or "",
            role=_optional_text(data, "user_role") or "",
        )


@dataclass(frozen=True)
class Content:
    """One content item; ``bundle_id`` is its active bundle, if any."""

    guid: str
    id: str
    name: str
    title: str | None
    app_mode: str
    content_url: str
    dashboard_url: str
    bundle_id: str | None = None
    owner_guid: str = ""
    created_time: str = ""
    last_deployed_time: str = ""

    @classmethod
    def from_api(cls, obj: Any) -> Content:
        data = _object(obj, "content item")
        return cls(
            guid=_text(data, "guid"),
            id=_identifier(data, "id") or "",
            name=_text(data, "name"),
            title=_optional_text(data, "title"),
            app_mode=_optional_text(data, "app_mode") or "",
            content_url=_optional_text(data, "content_url") or "",
            dashboard_url=_optional_text(data, "dashboard_url") or "",
            bundle_id=_identifier(data, "bundle_id"),
            owner_guid=_optional_text(data, "owner_guid") or "",
            created_time=_optional_text(data, "created_time") or "",
            last_deployed_time=_optional_text(data, "last_deployed_time") or "",
        )


@dataclass(frozen=True)
class Bundle:
    """An uploaded archive; ``archive_md5`` as the server computed it."""

    id: str
    content_guid: str
    size: int | None
    active: bool
    archive_md5: str | None
    created_time: str = ""

    @classmethod
    def from_api(cls, obj: Any) -> Bundle:
        data = _object(obj, "bundle")
        bundle_id = _identifier(data, "id")
        if bundle_id is None:
            raise ShapeError('a bundle has no "id"')
        metadata = data.get("metadata")
        md5 = metadata.get("archive_md5") if isinstance(metadata, Mapping) else None
        size = data.get("size")
        return cls(
            id=bundle_id,
            content_guid=_optional_text(data, "content_guid") or "",
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            active=data.get("active") is True,
            archive_md5=md5 if isinstance(md5, str) and md5 else None,
            created_time=_optional_text(data, "created_time") or "",
        )


@dataclass(frozen=True)
class Task:
    """A deploy task as last seen. ``last`` is where the next poll starts reading."""

    id: str
    output: tuple[str, ...]
    finished: bool
    code: int | None
    error: str
    last: int

    @classmethod
    def from_api(cls, obj: Any, task_id: str) -> Task:
        data = _object(obj, "task")
        output = data.get("output")
        if output is None:
            output = []
        if not isinstance(output, list):
            raise ShapeError('a task\'s "output" is not a list')
        code = data.get("code")
        last = data.get("last")
        return cls(
            id=_identifier(data, "id") or task_id,
            output=tuple(str(line) for line in output),
            finished=data.get("finished") is True,
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            error=_optional_text(data, "error") or "",
            last=last if isinstance(last, int) and not isinstance(last, bool) else -1,
        )


@dataclass(frozen=True)
class Association:
    """One integration associated with one content item."""

    content_guid: str
    integration_guid: str
    name: str | None = None
    template: str | None = None
    auth_type: str | None = None

    @classmethod
    def from_api(cls, obj: Any) -> Association:
        data = _object(obj, "association")
        # Servers before the v1 rename say app_guid.
        content_guid = _optional_text(data, "content_guid") or _optional_text(data, "app_guid")
        return cls(
            content_guid=content_guid or "",
            integration_guid=_text(data, "oauth_integration_guid"),
            name=_optional_text(data, "oauth_integration_name"),
            template=_optional_text(data, "oauth_integration_template"),
            auth_type=_optional_text(data, "oauth_integration_auth_type"),
        )


def _object(obj: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ShapeError(f"a {what} is not a JSON object")
    return obj


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ShapeError(f"{key!r} is missing or not a string")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _identifier(data: Mapping[str, Any], key: str) -> str | None:
    # Connect sends numeric ids as strings; older servers as numbers.
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None
