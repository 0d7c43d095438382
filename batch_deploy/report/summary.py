"""Aggregates of a RunResult shared by the HTML report and the command line.

Request statuses are counted over rows; deploy statuses over content x server
pairs, one per pair. The matrix puts contents in the order the rows first name
them and servers in the order of ``meta.servers``, then any server only the rows
(or outcomes) name. Everything here is a pure function of the RunResult.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from batch_deploy.results import (
    DEPLOY_STATUSES,
    REQUEST_STATUSES,
    DeployStatus,
    PairOutcome,
    RequestStatus,
    Row,
    RunResult,
)

__all__ = [
    "DEPLOY_SEVERITY",
    "REQUEST_SEVERITY",
    "Cell",
    "Matrix",
    "StatusCounts",
    "build_matrix",
    "count_statuses",
    "logs_url",
    "render_summary_table",
    "terminal_text",
]

# Higher is worse. A cell shows its worst request so one bad request in an
# otherwise matched item is never hidden; `ambiguous` ranks lowest of the
# failures because `ambiguous = "first"` can still let it through.
REQUEST_SEVERITY: Mapping[RequestStatus, int] = MappingProxyType(
    {
        "none": 0,
        "matched": 1,
        "ambiguous": 2,
        "unmatched": 3,
        "invalid": 4,
        "unsupported": 5,
        "unreachable": 6,
    }
)

# Rows of one pair carry one deploy status; if they ever disagree the most
# severe one is shown, again so that nothing bad is hidden.
DEPLOY_SEVERITY: Mapping[DeployStatus, int] = MappingProxyType(
    {
        "skipped": 0,
        "unchanged": 1,
        "deployed": 2,
        "planned": 3,
        "cancelled": 4,
        "blocked": 5,
        "failed": 6,
    }
)

_PASSING_REQUESTS: frozenset[RequestStatus] = frozenset({"matched", "none"})


def logs_url(dashboard_url: str) -> str:
    """``<dashboard_url>/logs``, where Connect shows a content item's logs; "" without a URL."""
    return f"{dashboard_url.rstrip('/')}/logs" if dashboard_url else ""


@dataclass(frozen=True)
class StatusCounts:
    """How many rows have each request status and how many pairs each deploy status.

    Both mappings hold every status, in the contract's order, zeros included.
    """

    requests: Mapping[RequestStatus, int]
    deploys: Mapping[DeployStatus, int]
    rows: int
    pairs: int


@dataclass(frozen=True)
class Cell:
    """One content item on one server, as the matrix shows it."""

    content: str
    server: str
    deploy: DeployStatus
    worst_request: RequestStatus
    rows: int  # rows of this pair in the report
    problems: int  # rows whose request status is neither `matched` nor `none`
    drift: bool | None  # True if any row drifted, False if all were read and agree
    dashboard_url: str = ""
    content_guid: str = ""
    error: str = ""

    @property
    def logs_url(self) -> str:
        return logs_url(self.dashboard_url)


@dataclass(frozen=True)
class Matrix:
    """Content x server grid; a missing cell means the item does not target that server."""

    contents: tuple[str, ...]
    servers: tuple[str, ...]
    cells: Mapping[tuple[str, str], Cell]

    def cell(self, content: str, server: str) -> Cell | None:
        return self.cells.get((content, server))


@dataclass
class _Acc:
    """Mutable accumulator for one pair while the matrix is built."""

    content: str
    server: str
    deploy: DeployStatus
    worst_request: RequestStatus = "none"
    rows: int = 0
    problems: int = 0
    drift: bool | None = None
    dashboard_url: str = ""
    content_guid: str = ""
    error: str = ""

    def add_outcome(
        self,
        deploy: DeployStatus,
        drift: bool | None,
        dashboard_url: str,
        content_guid: str,
        error: str,
    ) -> None:
        if DEPLOY_SEVERITY[deploy] > DEPLOY_SEVERITY[self.deploy]:
            self.deploy = deploy
        if drift is not None:
            self.drift = drift or bool(self.drift)
        self.dashboard_url = self.dashboard_url or dashboard_url
        self.content_guid = self.content_guid or content_guid
        self.error = self.error or error

    def add_row(self, row: Row) -> None:
        self.rows += 1
        if row.status not in _PASSING_REQUESTS:
            self.problems += 1
        if REQUEST_SEVERITY[row.status] > REQUEST_SEVERITY[self.worst_request]:
            self.worst_request = row.status
        self.add_outcome(row.deploy, row.drift, row.dashboard_url, row.content_guid, row.error)

    def freeze(self) -> Cell:
        return Cell(
            content=self.content,
            server=self.server,
            deploy=self.deploy,
            worst_request=self.worst_request,
            rows=self.rows,
            problems=self.problems,
            drift=self.drift,
            dashboard_url=self.dashboard_url,
            content_guid=self.content_guid,
            error=self.error,
        )


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def build_matrix(result: RunResult) -> Matrix:
    """The content x server grid of a run.

    Rows are the source of truth. An outcome adds what its rows lack (a link,
    an error) and gives a cell to a pair that has no row at all.
    """
    pairs: dict[tuple[str, str], _Acc] = {}
    for row in result.rows:
        key = (row.content, row.server)
        acc = pairs.get(key)
        if acc is None:
            acc = pairs[key] = _Acc(row.content, row.server, row.deploy)
        acc.add_row(row)
    for outcome in result.outcomes:
        _merge_outcome(pairs, outcome)
    contents = _unique(content for content, _ in pairs)
    servers = _unique([server.name for server in result.meta.servers] + [s for _, s in pairs])
    cells = {key: acc.freeze() for key, acc in pairs.items()}
    return Matrix(contents=contents, servers=servers, cells=MappingProxyType(cells))


def _merge_outcome(pairs: dict[tuple[str, str], _Acc], outcome: PairOutcome) -> None:
    key = (outcome.content, outcome.server)
    acc = pairs.get(key)
    if acc is None:
        acc = pairs[key] = _Acc(outcome.content, outcome.server, outcome.deploy)
    acc.add_outcome(
        outcome.deploy,
        outcome.drift,
        outcome.dashboard_url,
        outcome.content_guid,
        outcome.error,
    )


def count_statuses(result: RunResult, matrix: Matrix | None = None) -> StatusCounts:
    """Request statuses over rows, deploy statuses over pairs (one per pair).

    Pass the ``matrix`` when it is already built to avoid building it twice.
    """
    grid = build_matrix(result) if matrix is None else matrix
    requests = dict.fromkeys(REQUEST_STATUSES, 0)
    for row in result.rows:
        requests[row.status] += 1
    deploys = dict.fromkeys(DEPLOY_STATUSES, 0)
    for cell in grid.cells.values():
        deploys[cell.deploy] += 1
    return StatusCounts(
        requests=MappingProxyType(requests),
        deploys=MappingProxyType(deploys),
        rows=len(result.rows),
        pairs=len(grid.cells),
    )


# --- the terminal table -------------------------------------------------------

_GAP = "  "
_MIN_CONTENT_WIDTH = 12
_MAX_SERVER_WIDTH = 24
_ABSENT = "-"
_DRIFT_MARK = "*"


def terminal_text(text: str, *, keep_unicode: bool = False) -> str:
    """Printable ASCII as is, everything else as a backslash escape.

    For anything printed to a terminal that came from a job file, a manifest or
    a server: escaping keeps control sequences inert and makes ``len`` equal to
    the printed width. With ``keep_unicode``, printable non-ASCII letters stay
    readable ("Données") where alignment does not matter; control and format
    characters (bidi overrides among them) are still escaped.
    """
    if text.isprintable() and (keep_unicode or text.isascii()):
        return text

    def shown(ch: str) -> bool:
        return " " <= ch <= "~" or (keep_unicode and ch.isprintable())

    return "".join(
        ch if shown(ch) else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    return text[: width - 3] + "..."


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return _ABSENT
    return cell.deploy + (_DRIFT_MARK if cell.drift else "")


def _tally(counts: Iterable[tuple[str, int]]) -> str:
    parts = [f"{n} {status}" for status, n in counts if n]
    return ", ".join(parts) if parts else "none"


def _totals_line(counts: StatusCounts) -> str:
    pairs = "pair" if counts.pairs == 1 else "pairs"
    rows = "request row" if counts.rows == 1 else "request rows"
    return (
        f"Total: {counts.pairs} {pairs} ({_tally(counts.deploys.items())}); "
        f"{counts.rows} {rows} ({_tally(counts.requests.items())})"
    )


def _server_blocks(widths: list[int], room: int) -> list[list[int]]:
    """Split server columns into blocks that fit in ``room`` columns (at least one each)."""
    blocks: list[list[int]] = [[]]
    used = 0
    for index, width in enumerate(widths):
        need = len(_GAP) + width
        if blocks[-1] and used + need > room:
            blocks.append([])
            used = 0
        blocks[-1].append(index)
        used += need
    return blocks


def render_summary_table(result: RunResult, width: int | None = None) -> str:
    """A plain ASCII table for the terminal: one line per content, one column per server.

    Each cell shows the pair's deploy status (``*`` marks drifted associations,
    ``-`` a server the content does not target), then a totals line follows.
    With ``width`` (terminal columns) long content names are shortened and
    server columns that do not fit are continued in further blocks below.
    The text ends with a newline.
    """
    matrix = build_matrix(result)
    counts = count_statuses(result, matrix)
    names = [terminal_text(content) for content in matrix.contents]
    headers = [_fit(terminal_text(server), _MAX_SERVER_WIDTH) for server in matrix.servers]
    columns = [
        [_cell_text(matrix.cell(content, server)) for content in matrix.contents]
        for server in matrix.servers
    ]
    server_widths = [
        max([len(header), *(len(text) for text in column)])
        for header, column in zip(headers, columns, strict=True)
    ]
    content_width = max([len("content"), *(len(name) for name in names)])
    if width is not None:
        needed = content_width + sum(len(_GAP) + w for w in server_widths)
        if needed > width:
            spare = width - sum(len(_GAP) + w for w in server_widths)
            content_width = min(content_width, max(_MIN_CONTENT_WIDTH, spare))
    room = (width - content_width) if width is not None else sum(
        len(_GAP) + w for w in server_widths
    )
    blocks = _server_blocks(server_widths, room) if server_widths else [[]]

    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        header = [_fit("content", content_width).ljust(content_width)]
        rule = ["-" * content_width]
        for index in block:
            header.append(headers[index].ljust(server_widths[index]))
            rule.append("-" * server_widths[index])
        lines.append(_GAP.join(header).rstrip())
        lines.append(_GAP.join(rule))
        for position, name in enumerate(names):
            line = [_fit(name, content_width).ljust(content_width)]
            line.extend(columns[index][position].ljust(server_widths[index]) for index in block)
            lines.append(_GAP.join(line).rstrip())
    notes = [_totals_line(counts)]
    if any(cell.drift for cell in matrix.cells.values()):
        notes.append(f"{_DRIFT_MARK} associations on the server differ from what was resolved")
    for note in notes:
        if width is not None and len(note) > width:
            lines.extend(textwrap.wrap(note, width=max(width, 20), break_on_hyphens=False))
        else:
            lines.append(note)
    return "\n".join(lines) + "\n"
