"""report.html: one self-contained page (inline CSS, no script, nothing fetched).

The template lives in ``templates/report.html.j2`` inside this package. Jinja
autoescaping is always on, so every value from a manifest or a server is
escaped wherever it lands, attributes included. A URL from a server becomes a
link only when it is an absolute http(s) URL; anything else (``javascript:``,
``data:``, relative paths) is shown as escaped text. A Content-Security-Policy
in the page forbids scripts and every network fetch, a second line of defence
should a value ever slip through unescaped.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from batch_deploy.report._format import clean_duration, clean_text, iso_utc, run_seconds
from batch_deploy.report.summary import Cell, build_matrix, count_statuses, logs_url
from batch_deploy.results import DeployStatus, RequestStatus, RunResult

__all__ = ["deploy_tone", "is_web_url", "render_html", "request_tone"]

Tone = Literal["ok", "plan", "idle", "warn", "bad"]

_WEB_SCHEMES = frozenset({"http", "https"})

_REQUEST_TONES: dict[RequestStatus, Tone] = {
    "matched": "ok",
    "none": "idle",
    "ambiguous": "warn",
    "unmatched": "bad",
    "invalid": "bad",
    "unsupported": "bad",
    "unreachable": "bad",
}

_DEPLOY_TONES: dict[DeployStatus, Tone] = {
    "deployed": "ok",
    "unchanged": "ok",
    "planned": "plan",
    "skipped": "idle",
    "cancelled": "warn",
    "blocked": "bad",
    "failed": "bad",
}

# Shown beside the colour so the outcome reads in grayscale and without colour vision.
_TONE_MARKS: dict[Tone, str] = {
    "ok": "\u2713",  # check mark
    "plan": "\u2192",  # rightwards arrow
    "idle": "\u2013",  # en dash
    "warn": "!",
    "bad": "\u2717",  # ballot x
}


def is_web_url(url: object) -> bool:
    """True for an absolute http(s) URL with a host and no whitespace or control characters.

    Browsers drop tabs and newlines inside a URL before reading its scheme, so
    any unprintable character (or a space) is refused rather than reasoned about.
    """
    if not isinstance(url, str) or not url or not url.isprintable() or " " in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return parts.scheme.lower() in _WEB_SCHEMES and bool(parts.netloc)


def request_tone(status: RequestStatus) -> Tone:
    return _REQUEST_TONES[status]


def deploy_tone(status: DeployStatus) -> Tone:
    return _DEPLOY_TONES[status]


def _cell_tone(cell: Cell) -> Tone:
    tone = deploy_tone(cell.deploy)
    return "warn" if cell.drift and tone in ("ok", "plan") else tone


def _tone_mark(tone: Tone) -> str:
    return _TONE_MARKS[tone]


def _readable_time(moment: datetime) -> str:
    stamp = iso_utc(moment)
    return f"{stamp[:10]} {stamp[11:19]} UTC"


def _seconds(value: float | None) -> str:
    seconds = clean_duration(value)
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, tenths = divmod(round(seconds * 10), 600)
    if minutes < 60:
        return f"{minutes} min {tenths / 10:.1f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {tenths // 10} s"


def _finalize(value: object) -> object:
    # Applied to every {{ }} output before escaping: text that cannot be
    # encoded as UTF-8 would make writing the report fail.
    if isinstance(value, str) and not isinstance(value, Markup):
        return clean_text(value)
    return value


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("batch_deploy.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.tests["web_url"] = is_web_url
    env.filters["request_tone"] = request_tone
    env.filters["deploy_tone"] = deploy_tone
    env.filters["cell_tone"] = _cell_tone
    env.filters["tone_mark"] = _tone_mark
    env.filters["iso"] = iso_utc
    env.filters["readable_time"] = _readable_time
    env.filters["seconds"] = _seconds
    env.filters["logs_url"] = logs_url
    return env


def render_html(result: RunResult) -> str:
    """The full report.html text (UTF-8, ends with a newline)."""
    matrix = build_matrix(result)
    template = _environment().get_template("report.html.j2")
    return template.render(
        meta=result.meta,
        rows=result.rows,
        matrix=matrix,
        counts=count_statuses(result, matrix),
        run_seconds=run_seconds(result.meta.started, result.meta.finished),
    )
