"""The frozen values a run produces; reports render these and nothing else.

A ``Row`` is one content x server x request line of the reports. A content
item with no requests, or whose manifest is unusable, or a server that could
not be asked, still gets one row per pair (``request_index`` is ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "COLUMNS",
    "DEPLOY_STATUSES",
    "REQUEST_STATUSES",
    "DeployStatus",
    "PairOutcome",
    "RequestStatus",
    "Row",
    "RunMeta",
    "RunResult",
    "ServerMeta",
]

RequestStatus = Literal[
    "matched", "ambiguous", "unmatched", "invalid", "unsupported", "unreachable", "none"
]
REQUEST_STATUSES: tuple[RequestStatus, ...] = (
    "matched",
    "ambiguous",
    "unmatched",
    "invalid",
    "unsupported",
    "unreachable",
    "none",
)

DeployStatus = Literal[
    "planned", "blocked", "deployed", "unchanged", "failed", "skipped", "cancelled"
]
DEPLOY_STATUSES: tuple[DeployStatus, ...] = (
    "planned",
    "blocked",
    "deployed",
    "unchanged",
    "failed",
    "skipped",
    "cancelled",
)

# The contract's column order for results.csv (and the keys of results.json rows).
COLUMNS: tuple[str, ...] = (
    "content",
    "server",
    "request_index",
    "request",
    "status",
    "integration_guid",
    "integration_name",
    "integration_type",
    "auth_type",
    "candidates",
    "reason",
    "deploy",
    "content_guid",
    "bundle_id",
    "task_id",
    "associated",
    "drift",
    "dashboard_url",
    "error",
    "duration_s",
)


@dataclass(frozen=True)
class PairOutcome:
    """What happened to one content item on one server."""

    content: str
    server: str
    deploy: DeployStatus
    content_guid: str = ""
    bundle_id: str = ""
    task_id: str = ""
    # Integration guids Connect reports after the deploy; None when not read.
    associated: tuple[str, ...] | None = None
    # True when ``associated`` differs from what was resolved; None when not read.
    drift: bool | None = None
    dashboard_url: str = ""
    error: str = ""
    duration_s: float | None = None
    bundle_md5: str = ""

    @property
    def logs_url(self) -> str:
        return f"{self.dashboard_url.rstrip('/')}/logs" if self.dashboard_url else ""


@dataclass(frozen=True)
class Row:
    """One line of results.csv: a request's resolution joined with its pair's outcome."""

    content: str
    server: str
    request_index: int | None
    request: str
    status: RequestStatus
    integration_guid: str = ""
    integration_name: str = ""
    integration_type: str = ""
    auth_type: str = ""
    candidates: int = 0
    reason: str = ""
    deploy: DeployStatus = "planned"
    content_guid: str = ""
    bundle_id: str = ""
    task_id: str = ""
    associated: tuple[str, ...] | None = None
    drift: bool | None = None
    dashboard_url: str = ""
    error: str = ""
    duration_s: float | None = None


@dataclass(frozen=True)
class ServerMeta:
    """One server as the run saw it."""

    name: str
    url: str
    version: str  # "" when hidden and not pinned
    integration_count: int | None  # None when the integrations could not be read
    user: str = ""
    role: str = ""
    error: str = ""  # why it was unreachable, if it was


@dataclass(frozen=True)
class RunMeta:
    command: Literal["plan", "run"]
    tool_version: str
    job_file: str
    job_sha256: str
    started: datetime  # UTC
    finished: datetime  # UTC
    servers: tuple[ServerMeta, ...] = ()
    interrupted: bool = False


@dataclass(frozen=True)
class RunResult:
    meta: RunMeta
    rows: tuple[Row, ...]
    outcomes: tuple[PairOutcome, ...] = field(default=())
