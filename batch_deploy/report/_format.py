"""Formatting shared by every report: text cleaning, timestamps, durations.

Pure functions of their arguments; nothing here reads a clock or a file.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["clean_duration", "clean_text", "iso_utc", "run_seconds"]

# Lone surrogates reach us from JSON escapes such as "\ud800" in a manifest or an
# API answer; they cannot be encoded as UTF-8, so writing a report would fail.
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Return ``text`` with every lone surrogate replaced by U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def clean_duration(seconds: float | None) -> float | None:
    """Seconds rounded to the millisecond; ``None`` when unknown or not finite."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return round(seconds, 3)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a ``Z`` suffix.

    A naive datetime is taken to be UTC already, as RunMeta documents.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def run_seconds(started: datetime, finished: datetime) -> float:
    """Wall-clock seconds between two moments, rounded to the millisecond."""

    def as_utc(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

    return round((as_utc(finished) - as_utc(started)).total_seconds(), 3)
