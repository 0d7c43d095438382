"""results.csv: one line per content x server x request, columns as in COLUMNS.

The text uses ``\\r\\n`` line endings (RFC 4180, what spreadsheet programs
expect); newlines inside a value stay as they are, inside a quoted cell. Write
it with ``newline=""`` (or as bytes) so the platform does not translate them,
and encode it as UTF-8.

A spreadsheet treats a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return as a formula (OWASP's list). Every cell that does is
prefixed with a single quote, so a hostile name or reason shows as text instead
of running. So is a cell whose first character other than whitespace (of any
kind) is ``=``, ``+``, ``-`` or ``@``, as in `` =1+1`` or ``\\n@SUM(A1)``:
importers that trim cells (LibreOffice's "trim spaces", Google Sheets) would
otherwise hand the formula over intact. No cell here is a number that the quote
would spoil.
"""

from __future__ import annotations

import csv
import io

from batch_deploy.report._format import clean_duration, clean_text
from batch_deploy.results import COLUMNS, Row, RunResult

__all__ = ["FORMULA_TRIGGERS", "format_cells", "neutralise_cell", "render_csv"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(text: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet may read as a formula; others unchanged.

    That is a cell starting with a trigger, or with whitespace and then one.
    """
    risky = text.startswith(FORMULA_TRIGGERS) or text.lstrip().startswith(FORMULA_TRIGGERS)
    return "'" + text if risky else text


def _drift(value: bool | None) -> str:
    if value is None:
        return ""
    return "yes" if value else "no"


def format_cells(row: Row) -> list[str]:
    """The cells of one CSV line, in COLUMNS order, before neutralisation."""
    duration = clean_duration(row.duration_s)
    values: dict[str, str] = {
        "content": row.content,
        "server": row.server,
        "request_index": "" if row.request_index is None else str(row.request_index),
        "request": row.request,
        "status": row.status,
        "integration_guid": row.integration_guid,
        "integration_name": row.integration_name,
        "integration_type": row.integration_type,
        "auth_type": row.auth_type,
        "candidates": str(row.candidates),
        "reason": row.reason,
        "deploy": row.deploy,
        "content_guid": row.content_guid,
        "bundle_id": row.bundle_id,
        "task_id": row.task_id,
        "associated": "" if row.associated is None else ";".join(row.associated),
        "drift": _drift(row.drift),
        "dashboard_url": row.dashboard_url,
        "error": row.error,
        "duration_s": "" if duration is None else f"{duration:.3f}",
    }
    return [clean_text(values[column]) for column in COLUMNS]


def render_csv(result: RunResult) -> str:
    """The full results.csv text: a header line, then one line per row."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in result.rows:
        writer.writerow([neutralise_cell(cell) for cell in format_cells(row)])
    return buffer.getvalue()
