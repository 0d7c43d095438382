from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from batch_deploy.report import render_json
from batch_deploy.results import COLUMNS, DEPLOY_STATUSES, REQUEST_STATUSES, Row, RunMeta, RunResult

from .report_canned import CANNED, FORMULA, JS_URL, SCRIPT

TOP_KEYS = [
    "tool",
    "tool_version",
    "command",
    "job_file",
    "job_sha256",
    "started",
    "finished",
    "duration_s",
    "interrupted",
    "servers",
    "summary",
    "rows",
]


def load(result: RunResult) -> Any:
    return json.loads(render_json(result))


def test_metadata_keys_order_and_values() -> None:
    document = load(CANNED)
    assert list(document) == TOP_KEYS
    assert document["tool"] == "batch_deploy"
    assert document["tool_version"] == "0.1.0"
    assert document["command"] == "run"
    assert document["job_file"] == 'jobs/<nightly> & "prod".toml'
    assert document["job_sha256"] == (
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )
    assert document["started"] == "2025-09-01T12:00:00.123Z"
    assert document["finished"] == "2025-09-01T12:03:25.500Z"
    assert document["duration_s"] == 205.377
    assert document["interrupted"] is True


def test_servers() -> None:
    servers = load(CANNED)["servers"]
    assert [list(server) for server in servers] == [
        ["name", "url", "version", "integration_count", "user", "role", "error"]
    ] * 3
    assert servers[0] == {
        "name": "staging",
        "url": "https://connect-staging.example.com",
        "version": "2025.09.0",
        "integration_count": 5,
        "user": "deployer",
        "role": "publisher",
        "error": "",
    }
    assert servers[2]["url"] == JS_URL
    assert servers[2]["integration_count"] is None
    assert servers[2]["error"].startswith("Cannot connect to legacy")


def test_summary_counts_rows_and_pairs() -> None:
    summary = load(CANNED)["summary"]
    assert list(summary) == ["rows", "pairs", "requests", "deploys"]
    assert summary["rows"] == 14
    assert summary["pairs"] == 13
    assert list(summary["requests"]) == list(REQUEST_STATUSES)
    assert list(summary["deploys"]) == list(DEPLOY_STATUSES)
    assert summary["requests"] == {
        "matched": 6,
        "ambiguous": 1,
        "unmatched": 1,
        "invalid": 2,
        "unsupported": 1,
        "unreachable": 1,
        "none": 2,
    }
    # sales-dashboard on staging has two rows but counts once.
    assert summary["deploys"] == {
        "planned": 1,
        "blocked": 6,
        "deployed": 2,
        "unchanged": 1,
        "failed": 1,
        "skipped": 1,
        "cancelled": 1,
    }


def test_rows_have_json_types() -> None:
    rows = load(CANNED)["rows"]
    assert len(rows) == len(CANNED.rows)
    for row in rows:
        assert list(row) == list(COLUMNS)
        assert row["request_index"] is None or isinstance(row["request_index"], int)
        assert isinstance(row["candidates"], int)
        assert row["associated"] is None or all(isinstance(g, str) for g in row["associated"])
        assert row["drift"] is None or isinstance(row["drift"], bool)
        assert row["duration_s"] is None or isinstance(row["duration_s"], float)
    first = rows[0]
    assert first["request_index"] == 0
    assert first["associated"] == [
        "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
        "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
    ]
    assert first["drift"] is False
    assert first["duration_s"] == 12.346
    formula = rows[3]
    assert formula["content"] == FORMULA  # JSON is not a spreadsheet: kept verbatim
    assert formula["request_index"] is None
    assert formula["associated"] == []
    assert rows[4]["associated"] is None
    assert rows[5]["content"] == SCRIPT


def test_text_layout_is_indented_and_ends_with_a_newline() -> None:
    text = render_json(CANNED)
    assert text.startswith('{\n  "tool": "batch_deploy",\n')
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    assert "ünïcødé-数据" in text  # kept readable, not \u-escaped
    assert render_json(CANNED) == text


def test_timestamps_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    meta = RunMeta(
        command="plan",
        tool_version="1",
        job_file="j.toml",
        job_sha256="0" * 64,
        started=datetime(2025, 1, 1, 14, 0, 0, tzinfo=plus_two),
        finished=datetime(2025, 1, 1, 12, 0, 1, 999999),  # naive: taken as UTC
    )
    document = load(RunResult(meta=meta, rows=()))
    assert document["started"] == "2025-01-01T12:00:00.000Z"
    assert document["finished"] == "2025-01-01T12:00:01.999Z"
    assert document["duration_s"] == 2.0
    assert document["servers"] == []
    assert document["rows"] == []
    assert document["summary"]["pairs"] == 0


def test_non_finite_durations_and_lone_surrogates() -> None:
    row = Row(
        content="x\udcff",
        server="s",
        request_index=0,
        request="{}",
        status="matched",
        duration_s=math.nan,
    )
    text = render_json(RunResult(meta=CANNED.meta, rows=(row,)))
    text.encode("utf-8")
    parsed = json.loads(text)["rows"][0]
    assert parsed["duration_s"] is None
    assert parsed["content"] == "x\ufffd"
