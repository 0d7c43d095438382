"""report.html as a reader sees it: opened in headless Chromium.

Skipped where no Chromium is installed (Debian: ``apt-get install chromium``),
except with ``BATCH_DEPLOY_REQUIRE_BROWSER=1`` (set by .ci/run), where a
missing browser fails. Every request the page makes and every console error
is collected through the DevTools protocol.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from chromium import browser_required, find_chromium, visit_page
from report.report_canned import CANNED

from batch_deploy.cli import main
from batch_deploy.report import render_html

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent

# Reads the page back: summary tables, then the matrix, keyed by status text.
READ_PAGE = """
(() => {
  const lastWord = (text) => text.trim().split(/\\s+/).pop();
  const counts = {};
  for (const table of document.querySelectorAll(".counts table")) {
    const kind = table.caption.textContent.trim().split(" ")[0];
    counts[kind] = {};
    for (const row of table.tBodies[0].rows) {
      counts[kind][lastWord(row.cells[0].textContent)] = Number(row.cells[1].textContent);
    }
  }
  const servers = [...document.querySelectorAll(".matrix thead th")].slice(1)
    .map((th) => th.textContent.trim());
  const matrix = {};
  for (const row of document.querySelectorAll(".matrix tbody tr")) {
    const content = row.cells[0].textContent.trim();
    [...row.cells].slice(1).forEach((cell, index) => {
      const label = cell.querySelector(".label");
      matrix[content + "@" + servers[index]] = label ? lastWord(label.textContent) : null;
    });
  }
  return {counts, matrix, title: document.title};
})()
"""


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    found = find_chromium()
    if found is None:
        if browser_required():
            pytest.fail("BATCH_DEPLOY_REQUIRE_BROWSER=1 but no Chromium is installed")
        pytest.skip("Chromium is not installed")
    return found


def test_shipped_run_report_renders_cleanly_and_agrees_with_the_csv(
    chromium_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    status = main(["run", "jobs.toml", "--report-dir", str(tmp_path), "--no-progress"])
    assert status == 1  # the example includes content that cannot deploy, on purpose

    page = tmp_path / "report.html"
    visit = visit_page(chromium_binary, page, READ_PAGE)
    assert visit.console_errors == []
    assert visit.requests == [page.resolve().as_uri()]

    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pairs = {(row["content"], row["server"]): row["deploy"] for row in rows}
    shown = visit.value
    assert shown["counts"]["Requests"] == {
        status: Counter(row["status"] for row in rows)[status]
        for status in shown["counts"]["Requests"]
    }
    assert sum(shown["counts"]["Requests"].values()) == len(rows)
    assert shown["counts"]["Deploys"] == {
        status: Counter(pairs.values())[status] for status in shown["counts"]["Deploys"]
    }
    assert sum(shown["counts"]["Deploys"].values()) == len(pairs)
    assert shown["matrix"] == {
        f"{content}@{server}": deploy for (content, server), deploy in pairs.items()
    }


def test_hostile_values_stay_text(chromium_binary: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(CANNED), encoding="utf-8")
    probe = (
        "({scripts: document.scripts.length,"
        " jsLinks: [...document.links].filter((a) => !/^https?:/.test(a.href)).length,"
        " text: document.body.innerText})"
    )
    visit = visit_page(chromium_binary, page, probe)
    assert visit.console_errors == []
    assert visit.requests == [page.resolve().as_uri()]
    assert visit.value["scripts"] == 0
    assert visit.value["jsLinks"] == 0
    assert "<script>alert(1)</script>" in visit.value["text"]


def test_the_probe_sees_errors_and_requests(chromium_binary: str, tmp_path: Path) -> None:
    # Guards the tests above: a page that logs and fetches must be caught.
    page = tmp_path / "noisy.html"
    page.write_text(
        '<!DOCTYPE html><title>x</title><img src="http://127.0.0.1:9/x.png" alt="">'
        "<script>console.error('boom')</script>",
        encoding="utf-8",
    )
    visit = visit_page(chromium_binary, page, "document.title")
    assert "http://127.0.0.1:9/x.png" in visit.requests
    assert any("boom" in line for line in visit.console_errors)
    assert visit.value == "x"
