"""results.json: the rows of results.csv with JSON types, plus run metadata.

Layout (keys always in this order)::

    {
      "tool": "batch_deploy", "tool_version", "command", "job_file", "job_sha256",
      "started", "finished",          ISO 8601 UTC, millisecond precision, "Z" suffix
      "duration_s", "interrupted",
      "servers": [{name, url, version, integration_count, user, role, error}],
      "summary": {"rows", "pairs", "requests": {status: n}, "deploys": {status: n}},
      "rows": [{<COLUMNS>}]
    }

Request statuses are counted over rows and deploy statuses over pairs; both
maps list every status, zeros included. In a row ``request_index`` is an int
or null, ``candidates`` an int, ``associated`` a list of guids or null,
``drift`` a bool or null, ``duration_s`` seconds (to the millisecond) or null,
everything else a string. Non-ASCII text is kept as is: encode as UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import Any

from batch_deploy.report._format import clean_duration, clean_text, iso_utc, run_seconds
from batch_deploy.report.summary import count_statuses
from batch_deploy.results import COLUMNS, Row, RunResult, ServerMeta

__all__ = ["TOOL", "json_text", "render_json", "row_object"]

TOOL = "batch_deploy"

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]

# json.dumps escapes C0 controls but, with ensure_ascii=False, writes DEL, the C1
# controls and lone surrogates raw: terminals may act on the first (U+009B is
# CSI) and the last cannot be encoded as UTF-8, so all become \u escapes.
_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def json_text(value: Any) -> str:
    """``value`` as indented JSON, non-ASCII kept, control characters and lone
    surrogates escaped.

    Such characters can only sit inside strings, where the escape means the
    same, so the document reads back unchanged.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return _UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def row_object(row: Row) -> dict[str, JSONValue]:
    """One row as a JSON object, keys in COLUMNS order."""
    values: dict[str, JSONValue] = {
        "content": clean_text(row.content),
        "server": clean_text(row.server),
        "request_index": row.request_index,
        "request": clean_text(row.request),
        "status": row.status,
        "integration_guid": clean_text(row.integration_guid),
        "integration_name": clean_text(row.integration_name),
        "integration_type": clean_text(row.integration_type),
        "auth_type": clean_text(row.auth_type),
        "candidates": row.candidates,
        "reason": clean_text(row.reason),
        "deploy": row.deploy,
        "content_guid": clean_text(row.content_guid),
        "bundle_id": clean_text(row.bundle_id),
        "task_id": clean_text(row.task_id),
        "associated": (
            None if row.associated is None else [clean_text(guid) for guid in row.associated]
        ),
        "drift": row.drift,
        "dashboard_url": clean_text(row.dashboard_url),
        "error": clean_text(row.error),
        "duration_s": clean_duration(row.duration_s),
    }
    return {column: values[column] for column in COLUMNS}


def _server_object(server: ServerMeta) -> dict[str, JSONValue]:
    return {
        "name": clean_text(server.name),
        "url": clean_text(server.url),
        "version": clean_text(server.version),
        "integration_count": server.integration_count,
        "user": clean_text(server.user),
        "role": clean_text(server.role),
        "error": clean_text(server.error),
    }


def render_json(result: RunResult) -> str:
    """The full results.json text (indent 2, ends with a newline)."""
    meta = result.meta
    counts = count_statuses(result)
    document: dict[str, JSONValue] = {
        "tool": TOOL,
        "tool_version": clean_text(meta.tool_version),
        "command": meta.command,
        "job_file": clean_text(meta.job_file),
        "job_sha256": clean_text(meta.job_sha256),
        "started": iso_utc(meta.started),
        "finished": iso_utc(meta.finished),
        "duration_s": run_seconds(meta.started, meta.finished),
        "interrupted": meta.interrupted,
        "servers": [_server_object(server) for server in meta.servers],
        "summary": {
            "rows": counts.rows,
            "pairs": counts.pairs,
            "requests": dict(counts.requests.items()),
            "deploys": dict(counts.deploys.items()),
        },
        "rows": [row_object(row) for row in result.rows],
    }
    return json_text(document) + "\n"
