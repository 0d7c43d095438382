from __future__ import annotations

import csv
import io
import math

from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.report import neutralise_cell, render_csv
from batch_deploy.report.csv import FORMULA_TRIGGERS, format_cells
from batch_deploy.results import (
    COLUMNS,
    DEPLOY_STATUSES,
    REQUEST_STATUSES,
    Row,
    RunResult,
)

from .report_canned import CANNED, FORMULA, SCRIPT

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_triggers_are_the_owasp_set() -> None:
    assert set(FORMULA_TRIGGERS) == set(DANGEROUS)


@given(st.text())
def test_neutralised_cell_never_starts_with_a_trigger(text: str) -> None:
    assert not neutralise_cell(text).startswith(DANGEROUS)


@given(st.text())
def test_safe_cells_are_unchanged_and_dangerous_ones_get_one_quote(text: str) -> None:
    if text.startswith(DANGEROUS) or text.lstrip().startswith(DANGEROUS):
        assert neutralise_cell(text) == "'" + text
    else:
        assert neutralise_cell(text) == text


@given(st.sampled_from(DANGEROUS), st.text())
def test_every_trigger_is_neutralised(trigger: str, rest: str) -> None:
    assert neutralise_cell(trigger + rest) == "'" + trigger + rest


WHITESPACE = [chr(code) for code in range(0x3001) if chr(code).isspace()]


@given(
    st.text(alphabet=st.sampled_from(WHITESPACE), min_size=1),
    st.sampled_from(("=", "+", "-", "@")),
    st.text(),
)
def test_a_trigger_after_leading_whitespace_is_neutralised(
    space: str, trigger: str, rest: str
) -> None:
    # Importers that trim cells would otherwise hand the formula over intact.
    assert neutralise_cell(space + trigger + rest) == "'" + space + trigger + rest


def test_whitespace_before_a_trigger_examples() -> None:
    assert neutralise_cell(" =1+1") == "' =1+1"
    assert neutralise_cell("\n@SUM(A1)") == "'\n@SUM(A1)"
    assert neutralise_cell("\u00a0\u3000-2") == "'\u00a0\u3000-2"
    assert neutralise_cell(" a=b") == " a=b"
    assert neutralise_cell("   ") == "   "


def test_neutralise_examples() -> None:
    assert neutralise_cell(FORMULA) == "'" + FORMULA
    assert neutralise_cell("-1") == "'-1"
    assert neutralise_cell("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise_cell("\r=1") == "'\r=1"
    assert neutralise_cell("'=already quoted") == "'=already quoted"
    assert neutralise_cell("a=b") == "a=b"
    assert neutralise_cell("") == ""


def test_header_is_columns_in_order() -> None:
    rows = parse(render_csv(CANNED))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 1 + len(CANNED.rows)
    assert all(len(row) == len(COLUMNS) for row in rows)


def test_line_endings_are_crlf_and_text_ends_with_one() -> None:
    text = render_csv(RunResult(meta=CANNED.meta, rows=CANNED.rows[:1]))
    assert text.endswith("\r\n")
    assert text.count("\r\n") == 2
    assert "\n" not in text.replace("\r\n", "")


def test_cells_are_formatted_per_column() -> None:
    row = CANNED.rows[0]
    cells = dict(zip(COLUMNS, format_cells(row), strict=True))
    assert cells == {
        "content": "sales-dashboard",
        "server": "staging",
        "request_index": "0",
        "request": '{"integration_type":"snowflake"}',
        "status": "matched",
        "integration_guid": "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
        "integration_name": "Snowflake production",
        "integration_type": "snowflake",
        "auth_type": "Viewer",
        "candidates": "1",
        "reason": "",
        "deploy": "deployed",
        "content_guid": "5b1e0000-0000-4000-8000-000000000001",
        "bundle_id": "101",
        "task_id": "t-101",
        "associated": "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11;9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
        "drift": "no",
        "dashboard_url": "https://connect-staging.example.com/connect/#/apps/5b1e",
        "error": "",
        "duration_s": "12.346",
    }


def test_empty_and_unknown_values() -> None:
    row = Row(content="c", server="s", request_index=None, request="", status="none")
    cells = dict(zip(COLUMNS, format_cells(row), strict=True))
    assert cells["request_index"] == ""
    assert cells["associated"] == ""
    assert cells["drift"] == ""
    assert cells["duration_s"] == ""
    assert cells["candidates"] == "0"
    drifted = Row(
        content="c",
        server="s",
        request_index=3,
        request="{}",
        status="matched",
        associated=(),
        drift=True,
        duration_s=math.inf,
    )
    cells = dict(zip(COLUMNS, format_cells(drifted), strict=True))
    assert (cells["request_index"], cells["associated"], cells["drift"]) == ("3", "", "yes")
    assert cells["duration_s"] == ""


def test_hostile_cells_in_the_canned_run() -> None:
    rows = parse(render_csv(CANNED))
    by_column = {column: [row[i] for row in rows[1:]] for i, column in enumerate(COLUMNS)}
    assert "'" + FORMULA in by_column["content"]
    assert FORMULA not in by_column["content"]
    assert SCRIPT in by_column["content"]
    assert any(reason.startswith("'-request 0") for reason in by_column["reason"])
    assert any(reason.startswith("'\tprod runs") for reason in by_column["reason"])
    assert any(error.startswith("'+Task t-202 failed") for error in by_column["error"])
    assert any(error.startswith("'@Interrupted") for error in by_column["error"])
    for row in rows:
        for cell in row:
            assert not cell.startswith(DANGEROUS), cell


def test_newlines_inside_a_reason_stay_in_one_cell() -> None:
    rows = parse(render_csv(CANNED))
    reasons = [row[COLUMNS.index("reason")] for row in rows[1:]]
    assert any("fails on name.\nExpected <script>" in reason for reason in reasons)


def test_lone_surrogates_become_replacement_characters() -> None:
    row = Row(content="a\ud800b", server="s", request_index=0, request="{}", status="matched")
    text = render_csv(RunResult(meta=CANNED.meta, rows=(row,)))
    assert "a\ufffdb" in text
    text.encode("utf-8")


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
rows_strategy = st.builds(
    Row,
    content=texts,
    server=texts,
    request_index=st.none() | st.integers(min_value=0, max_value=10_000),
    request=texts,
    status=st.sampled_from(REQUEST_STATUSES),
    integration_guid=texts,
    integration_name=texts,
    integration_type=texts,
    auth_type=texts,
    candidates=st.integers(min_value=0, max_value=10_000),
    reason=texts,
    deploy=st.sampled_from(DEPLOY_STATUSES),
    content_guid=texts,
    bundle_id=texts,
    task_id=texts,
    associated=st.none() | st.lists(texts, max_size=3).map(tuple),
    drift=st.none() | st.booleans(),
    dashboard_url=texts,
    error=texts,
    duration_s=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
)


@given(st.lists(rows_strategy, max_size=5))
def test_csv_round_trips_through_csv_reader(rows: list[Row]) -> None:
    text = render_csv(RunResult(meta=CANNED.meta, rows=tuple(rows)))
    parsed = parse(text)
    assert parsed[0] == list(COLUMNS)
    expected = [[neutralise_cell(cell) for cell in format_cells(row)] for row in rows]
    assert parsed[1:] == expected
    for line in parsed:
        for cell in line:
            assert not cell.startswith(DANGEROUS)
