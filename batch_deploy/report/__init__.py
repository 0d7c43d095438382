"""Renderers for results.csv, results.json, report.html and the terminal summary.

Each takes a RunResult and returns text; none reads a clock, a file or the
network, and none computes anything beyond formatting and counting what the
RunResult holds. Writing the text (UTF-8; CSV with ``newline=""``) is the
caller's job.
"""

from __future__ import annotations

from batch_deploy.report.csv import neutralise_cell, render_csv
from batch_deploy.report.html import is_web_url, render_html
from batch_deploy.report.json import json_text, render_json
from batch_deploy.report.summary import (
    Cell,
    Matrix,
    StatusCounts,
    build_matrix,
    count_statuses,
    render_summary_table,
    terminal_text,
)

__all__ = [
    "Cell",
    "Matrix",
    "StatusCounts",
    "build_matrix",
    "count_statuses",
    "is_web_url",
    "json_text",
    "neutralise_cell",
    "render_csv",
    "render_html",
    "render_json",
    "render_summary_table",
    "terminal_text",
]
