"""OAuth integrations as the core sees them, and the server facts that gate them.

Pure values. ``Integration.from_api`` accepts one element of Connect's
``GET /v1/oauth/integrations`` answer (or of a sandbox seed); ``ServerView`` is
everything the matcher and the planner need to know about one server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .versions import (
    AUTO_ASSOCIATION,
    INTEGRATIONS_API,
    MULTIPLE_ASSOCIATIONS,
    ConnectVersion,
    at_least,
)

__all__ = [
    "REDACTED",
    "Integration",
    "ServerView",
    "is_secret_key",
    "redact_config",
    "redact_value",
]

# Words that make a config key secret wherever they appear in its name.
_ALWAYS_SECRET = re.compile(r"secret|password|passwd|passphrase|credential|private", re.IGNORECASE)
# Words that make a key secret as a whole word ("refresh_token", "api_key"), unless
# another word says the value only points at or describes one ("token_uri", "key_id").
_SECRET_WORDS = frozenset({"token", "key", "apikey", "pat"})
_DESCRIPTIVE_WORDS = frozenset(
    {"uri", "url", "endpoint", "method", "type", "id", "name", "mode", "header", "expiry"}
)
REDACTED = "<redacted>"


def is_secret_key(key: str) -> bool:
    """Whether a config value under ``key`` may be a secret and must not be shown."""
    if _ALWAYS_SECRET.search(key):
        return True
    words = {word for word in re.split(r"[^a-z0-9]+", key.lower()) if word}
    # camelCase keys ("accessToken") split on case changes as well.
    words |= {w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)}
    return bool(words & _SECRET_WORDS) and not words & _DESCRIPTIVE_WORDS


def redact_value(value: Any) -> Any:
    """``value`` with every secret-looking mapping entry replaced, at any depth."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_key(str(key)) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an integration's ``config`` that is safe to show."""
    redacted: dict[str, Any] = redact_value(config)
    return redacted


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Integration:
    """One OAuth integration. ``name``/``description``/``template``/``auth_type``
    may be ``None`` (null or absent on the server): such a field never matches.

    ``extra`` keeps the remaining fields of the API object (times, permissions,
    ...) so that a sandbox seed written from a real server round-trips.
    """

    guid: str
    name: str | None = None
    description: str | None = None
    template: str | None = None
    auth_type: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> Integration:
        """Build from an API object; raises ValueError when ``guid`` is not a string."""
        guid = obj.get("guid")
        if not isinstance(guid, str) or not guid:
            raise ValueError('an integration has no "guid" string')
        config = obj.get("config")
        known = {"guid", "name", "description", "template", "auth_type", "config"}
        return cls(
            guid=guid,
            name=_optional_str(obj.get("name")),
            description=_optional_str(obj.get("description")),
            template=_optional_str(obj.get("template")),
            auth_type=_optional_str(obj.get("auth_type")),
            config=dict(config) if isinstance(config, Mapping) else {},
            extra={k: v for k, v in obj.items() if k not in known},
        )

    def to_api(self, *, redact: bool = True) -> dict[str, Any]:
        """The API object again; secrets redacted unless asked not to.

        Redaction covers ``config`` and also the other fields a server sent,
        which are passed through unread and could hold a secret as well.
        """
        out: dict[str, Any] = redact_value(self.extra) if redact else dict(self.extra)
        out.update(
            guid=self.guid,
            name=self.name,
            description=self.description,
            template=self.template,
            auth_type=self.auth_type,
            config=redact_config(self.config) if redact else dict(self.config),
        )
        return out

    @property
    def label(self) -> str:
        """How diagnostics name it: ``"Snowflake production" (5f0c...)``."""
        return f"{self.name or '(unnamed)'!r} ({self.guid})"


@dataclass(frozen=True)
class ServerView:
    """What one server offers, as learned in the server phase.

    ``integrations`` is ``None`` when the server has no integrations API
    (it answered 404, or its version predates 2024.08.0). ``version`` is
    ``None`` when hidden and not pinned by the job file: assumed current.
    ``oauth_licensed`` is ``None`` when the licence does not say.
    """

    name: str
    version: ConnectVersion | None
    oauth_integrations_enabled: bool
    oauth_licensed: bool | None
    integrations: tuple[Integration, ...] | None

    @property
    def has_integrations_api(self) -> bool:
        return self.integrations is not None and at_least(self.version, INTEGRATIONS_API)

    @property
    def allows_multiple_associations(self) -> bool:
        return at_least(self.version, MULTIPLE_ASSOCIATIONS)

    @property
    def honours_requests(self) -> bool:
        """Connect itself associates from ``integration_requests`` at deploy."""
        return (
            self.has_integrations_api
            and at_least(self.version, AUTO_ASSOCIATION)
            and self.oauth_integrations_enabled
            and self.oauth_licensed is True
        )
