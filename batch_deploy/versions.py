"""Connect's calendar versions and the features each one brings.

Pure: parsing and comparison only. ``None`` stands for a version the server
hides; callers treat it as "current" unless the job file pins one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AUTO_ASSOCIATION",
    "DRAFT_DEPLOY",
    "INTEGRATIONS_API",
    "MULTIPLE_ASSOCIATIONS",
    "ConnectVersion",
    "at_least",
    "parse_version",
]

_VERSION = re.compile(r"^\s*v?(\d{4})\.(\d{1,2})\.(\d{1,3})(?:[-+.](.*))?\s*$")


@dataclass(frozen=True, order=True)
class ConnectVersion:
    """``2025.09.0``; a ``-dev+...`` or other suffix sorts below the release."""

    year: int
    month: int
    patch: int
    # 1 for a release, 0 for anything with a suffix, so "2025.09.0-dev" < "2025.09.0".
    release: int = 1
    suffix: str = ""

    def __str__(self) -> str:
        base = f"{self.year}.{self.month:02d}.{self.patch}"
        return f"{base}-{self.suffix}" if self.suffix else base


def parse_version(text: str | None) -> ConnectVersion | None:
    """Parse a Connect version; ``None`` or blank means hidden.

    Raises ValueError for text that is not a calendar version.
    """
    if text is None or not text.strip():
        return None
    found = _VERSION.match(text)
    if found is None:
        raise ValueError(f'{text!r} is not a Connect version like "2025.09.0"')
    year, month, patch, suffix = found.groups()
    if not 1 <= int(month) <= 12:
        raise ValueError(f'{text!r} is not a Connect version like "2025.09.0"')
    suffix = suffix or ""
    return ConnectVersion(int(year), int(month), int(patch), 0 if suffix else 1, suffix)


INTEGRATIONS_API = ConnectVersion(2024, 8, 0)
DRAFT_DEPLOY = ConnectVersion(2025, 6, 0)
MULTIPLE_ASSOCIATIONS = ConnectVersion(2025, 7, 0)
AUTO_ASSOCIATION = ConnectVersion(2025, 9, 0)


def at_least(version: ConnectVersion | None, gate: ConnectVersion) -> bool:
    """True when ``version`` has the feature of ``gate``; a hidden version has all."""
    return version is None or version >= gate
