from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.report import build_matrix, count_statuses, render_summary_table
from batch_deploy.report.summary import logs_url
from batch_deploy.results import (
    DEPLOY_STATUSES,
    REQUEST_STATUSES,
    DeployStatus,
    PairOutcome,
    RequestStatus,
    Row,
    RunResult,
)

from .report_canned import CANNED, FORMULA, META, SCRIPT, UNICODE


def row(
    content: str,
    server: str,
    status: RequestStatus = "matched",
    deploy: DeployStatus = "deployed",
    **extra: object,
) -> Row:
    return Row(
        content=content,
        server=server,
        request_index=0,
        request="{}",
        status=status,
        deploy=deploy,
        **extra,  # type: ignore[arg-type]
    )


def result(*rows: Row, outcomes: tuple[PairOutcome, ...] = ()) -> RunResult:
    return RunResult(meta=replace(META, servers=()), rows=rows, outcomes=outcomes)


def test_counts_of_the_canned_run() -> None:
    counts = count_statuses(CANNED)
    assert counts.rows == 14
    assert counts.pairs == 13
    assert tuple(counts.requests) == REQUEST_STATUSES
    assert tuple(counts.deploys) == DEPLOY_STATUSES
    assert all(counts.requests[status] >= 1 for status in REQUEST_STATUSES)
    assert all(counts.deploys[status] >= 1 for status in DEPLOY_STATUSES)
    assert counts.deploys["blocked"] == 6
    assert counts.requests["matched"] == 6
    assert sum(counts.deploys.values()) == counts.pairs
    assert sum(counts.requests.values()) == counts.rows


def test_matrix_order_follows_meta_servers_then_rows() -> None:
    matrix = build_matrix(CANNED)
    assert matrix.contents == (
        "sales-dashboard",
        FORMULA,
        SCRIPT,
        UNICODE,
        "quarto-doc",
        "broken-manifest",
        "shiny-app",
    )
    assert matrix.servers == ("staging", "prod", "legacy")
    assert matrix.cell("broken-manifest", "prod") is None
    late = result(row("a", "zeta"), row("a", "alpha"))
    assert build_matrix(replace(late, meta=META)).servers == (
        "staging",
        "prod",
        "legacy",
        "zeta",
        "alpha",
    )


def test_cells_aggregate_their_rows() -> None:
    matrix = build_matrix(CANNED)
    sales = matrix.cell("sales-dashboard", "staging")
    assert sales is not None
    assert (sales.deploy, sales.worst_request, sales.rows, sales.problems) == (
        "deployed",
        "matched",
        2,
        0,
    )
    assert sales.drift is False
    assert sales.logs_url == "https://connect-staging.example.com/connect/#/apps/5b1e/logs"
    failed = matrix.cell(UNICODE, "staging")
    assert failed is not None
    assert failed.deploy == "failed"
    assert failed.logs_url == "https://connect-staging.example.com/connect/#/apps/77aa/logs"
    assert failed.error.startswith("+Task t-202 failed")
    drifted = matrix.cell("quarto-doc", "staging")
    assert drifted is not None
    assert drifted.drift is True
    none = matrix.cell(FORMULA, "staging")
    assert none is not None
    assert (none.worst_request, none.problems) == ("none", 0)


def test_worst_request_and_worst_deploy_win() -> None:
    matrix = build_matrix(
        result(
            row("a", "s", "matched"),
            row("a", "s", "unreachable", "blocked"),
            row("a", "s", "ambiguous", "deployed", drift=False),
            row("a", "s", "none", "failed", drift=True),
        )
    )
    cell = matrix.cell("a", "s")
    assert cell is not None
    assert (cell.worst_request, cell.deploy, cell.problems, cell.drift) == (
        "unreachable",
        "failed",
        2,
        True,
    )


def test_outcomes_fill_gaps_and_add_pairs_without_rows() -> None:
    outcomes = (
        PairOutcome(content="a", server="s", deploy="deployed", dashboard_url="https://x/a"),
        PairOutcome(content="b", server="t", deploy="cancelled", error="stopped"),
    )
    matrix = build_matrix(result(row("a", "s"), outcomes=outcomes))
    assert matrix.contents == ("a", "b")
    assert matrix.servers == ("s", "t")
    a = matrix.cell("a", "s")
    b = matrix.cell("b", "t")
    assert a is not None
    assert (a.dashboard_url, a.rows) == ("https://x/a", 1)
    assert b is not None
    assert (b.deploy, b.rows, b.error) == ("cancelled", 0, "stopped")
    counts = count_statuses(result(row("a", "s"), outcomes=outcomes))
    assert (counts.pairs, counts.rows) == (2, 1)


def test_logs_url() -> None:
    assert logs_url("https://c/connect/#/apps/1/") == "https://c/connect/#/apps/1/logs"
    assert logs_url("https://c/connect/#/apps/1") == "https://c/connect/#/apps/1/logs"
    assert logs_url("") == ""


def test_summary_table_exact() -> None:
    text = render_summary_table(
        result(
            row("sales", "staging"),
            row("sales", "prod", "unmatched", "blocked"),
            row("etl", "staging", "none", "unchanged", drift=True),
        )
    )
    assert text == (
        "content  staging     prod\n"
        "-------  ----------  -------\n"
        "sales    deployed    blocked\n"
        "etl      unchanged*  -\n"
        "Total: 3 pairs (1 blocked, 1 deployed, 1 unchanged); "
        "3 request rows (1 matched, 1 unmatched, 1 none)\n"
        "* associations on the server differ from what was resolved\n"
    )


def test_summary_table_without_rows() -> None:
    assert render_summary_table(result()) == (
        "content\n-------\nTotal: 0 pairs (none); 0 request rows (none)\n"
    )


def test_summary_table_fits_a_narrow_terminal() -> None:
    text = render_summary_table(CANNED, width=40)
    assert text == (
        "content       staging    prod\n"
        "------------  ---------  ---------\n"
        "sales-das...  deployed   blocked\n"
        "=cmd|' /C...  unchanged  skipped\n"
        "<script>a...  blocked    blocked\n"
        "rapport-\\...  failed     cancelled\n"
        "quarto-doc    deployed*  blocked\n"
        "broken-ma...  blocked    -\n"
        "shiny-app     planned    -\n"
        "\n"
        "content       legacy\n"
        "------------  -------\n"
        "sales-das...  -\n"
        "=cmd|' /C...  -\n"
        "<script>a...  -\n"
        "rapport-\\...  -\n"
        "quarto-doc    blocked\n"
        "broken-ma...  -\n"
        "shiny-app     -\n"
        "Total: 13 pairs (1 planned, 6 blocked, 2\n"
        "deployed, 1 unchanged, 1 failed, 1\n"
        "skipped, 1 cancelled); 14 request rows\n"
        "(6 matched, 1 ambiguous, 1 unmatched, 2\n"
        "invalid, 1 unsupported, 1 unreachable, 2\n"
        "none)\n"
        "* associations on the server differ from\n"
        "what was resolved\n"
    )


def test_summary_table_escapes_to_ascii() -> None:
    text = render_summary_table(result(row("\x1b[31mred\x1b[0m", "s\u00e9rver"), row(UNICODE, "x")))
    assert text.isascii()
    assert "\x1b" not in text
    assert "\\x1b[31mred\\x1b[0m" in text
    assert "s\\xe9rver" in text
    assert "rapport-\\xfcn\\xefc\\xf8d\\xe9-\\u6570\\u636e" in text


names = st.text(min_size=1, max_size=40)
statuses = st.sampled_from(REQUEST_STATUSES)
deploys = st.sampled_from(DEPLOY_STATUSES)


@given(
    st.lists(st.tuples(names, names, statuses, deploys, st.none() | st.booleans()), max_size=12),
    st.integers(min_value=38, max_value=160),
)
def test_summary_table_is_ascii_and_fits_the_width(
    entries: list[tuple[str, str, RequestStatus, DeployStatus, bool | None]], width: int
) -> None:
    rows = [row(c, s, status, deploy, drift=drift) for c, s, status, deploy, drift in entries]
    text = render_summary_table(result(*rows), width=width)
    assert text.isascii()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert len(line) <= width, line
        assert line.isprintable()
    assert text.startswith("content")
