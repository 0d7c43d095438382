"""The three report files of the canned run, compared byte for byte with golden copies.

The golden files live in ``tests/report/golden/``. After an intended change to
a renderer or the template, rewrite them and review the diff::

    UPDATE_GOLDEN=1 python -m pytest tests/report/test_report_golden.py

Without ``UPDATE_GOLDEN=1`` a missing golden file fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from batch_deploy.report import render_csv, render_html, render_json
from batch_deploy.results import RunResult

from .report_canned import CANNED

GOLDEN = Path(__file__).parent / "golden"

RENDERERS: dict[str, Callable[[RunResult], str]] = {
    "results.csv": render_csv,
    "results.json": render_json,
    "report.html": render_html,
}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_matches_golden_file(name: str) -> None:
    rendered = RENDERERS[name](CANNED)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(rendered.encode("utf-8"))
    if not path.is_file():
        pytest.fail(
            f"golden file {path} is missing; write it with "
            "UPDATE_GOLDEN=1 python -m pytest tests/report/test_report_golden.py "
            "and review it before committing"
        )
    expected = path.read_bytes().decode("utf-8")
    assert rendered == expected, (
        f"{name} differs from {path}; if the change is intended, rewrite the golden files "
        "with UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_rendering_is_deterministic(name: str) -> None:
    assert RENDERERS[name](CANNED) == RENDERERS[name](CANNED)
