"""Job + manifests + server views -> what to do with every content x server pair.

Pure: no I/O. The runner loads manifests and asks the servers, then hands the
values here; the same functions turn each pair's outcome into report rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .integrations import ServerView
from .jobs import ContentSpec, Job
from .manifest import Manifest
from .matching import AmbiguousPolicy, AssociateMode, Resolution, ServerMatcher, passes
from .results import PairOutcome, Row

__all__ = [
    "ContentSource",
    "PairPlan",
    "plan_pairs",
    "rows_for",
]


@dataclass(frozen=True)
class ContentSource:
    """A content entry with its manifest, or the reason it cannot be used."""

    spec: ContentSpec
    manifest: Manifest | None
    problem: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        if self.spec.title:
            return self.spec.title
        if self.manifest is not None and self.manifest.title:
            return self.manifest.title
        return self.spec.dir.name


@dataclass(frozen=True)
class PairPlan:
    """One content item on one server, decided before anything is uploaded.

    ``unreachable`` holds why the server could not be asked; ``resolutions``
    align with the manifest's requests.
    """

    source: ContentSource
    server: str
    resolutions: tuple[Resolution, ...] = ()
    unreachable: str = ""
    target_guid: str | None = None  # the job file's guid for this server
    explicit_association: bool = False  # PUT the resolved set after the deploy
    ambiguous: AmbiguousPolicy = "fail"

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.name, self.server)

    @property
    def deployable(self) -> bool:
        """Every request passes (under the ambiguity policy) on a reachable server."""
        if self.unreachable or self.source.manifest is None:
            return False
        return all(passes(r, self.ambiguous) for r in self.resolutions)

    @property
    def has_requests(self) -> bool:
        return bool(self.resolutions)

    @property
    def expected_guids(self) -> tuple[str, ...]:
        """The integration guids this pair should end up associated with."""
        guids: list[str] = []
        for resolution in self.resolutions:
            chosen = resolution.chosen
            if chosen is not None and chosen.guid not in guids:
                guids.append(chosen.guid)
        return tuple(guids)

    @property
    def blocked_reason(self) -> str:
        if self.unreachable:
            return self.unreachable
        if self.source.manifest is None:
            return self.source.problem
        failing = [
            f"request {i} is {r.status}"
            for i, r in enumerate(self.resolutions)
            if not passes(r, self.ambiguous)
        ]
        return "; ".join(failing)


def _uses_explicit(view: ServerView, associate: AssociateMode) -> bool:
    if associate == "explicit":
        return True
    if associate == "server":
        return False
    return not view.honours_requests


def plan_pairs(
    job: Job,
    sources: Sequence[ContentSource],
    views: Mapping[str, ServerView],
    unreachable: Mapping[str, str],
) -> tuple[PairPlan, ...]:
    """Resolve every request of every content on every server it targets.

    ``views`` holds the servers that answered; ``unreachable`` maps the others
    to the reason. A matcher is built once per server and shared by all content
    so patterns compile once and identical requests resolve once.
    """
    matchers = {name: ServerMatcher(view) for name, view in views.items()}
    plans: list[PairPlan] = []
    for source in sources:
        for server in source.spec.servers:
            target = source.spec.guids.get(server)
            policy = job.run.ambiguous
            if server in unreachable:
                plans.append(
                    PairPlan(
                        source,
                        server,
                        unreachable=unreachable[server],
                        target_guid=target,
                        ambiguous=policy,
                    )
                )
                continue
            view = views[server]
            resolutions: tuple[Resolution, ...] = ()
            if source.manifest is not None and source.manifest.requests:
                resolutions = matchers[server].resolve_all(
                    source.manifest.requests, job.run.associate
                )
            plans.append(
                PairPlan(
                    source,
                    server,
                    resolutions=resolutions,
                    target_guid=target,
                    explicit_association=_uses_explicit(view, job.run.associate),
                    ambiguous=policy,
                )
            )
    return tuple(plans)


def rows_for(plan: PairPlan, outcome: PairOutcome) -> tuple[Row, ...]:
    """The report rows of one pair: one per request, or one for the whole pair."""
    content, server = plan.key
    base = Row(
        content,
        server,
        None,
        "",
        "none",
        deploy=outcome.deploy,
        content_guid=outcome.content_guid,
        bundle_id=outcome.bundle_id,
        task_id=outcome.task_id,
        associated=outcome.associated,
        drift=outcome.drift,
        dashboard_url=outcome.dashboard_url,
        error=outcome.error,
        duration_s=outcome.duration_s,
    )
    manifest = plan.source.manifest
    if manifest is None:
        return (replace(base, status="invalid", reason=plan.source.problem),)
    if plan.unreachable:
        if not manifest.requests:
            return (replace(base, status="unreachable", reason=plan.unreachable),)
        return tuple(
            replace(
                base,
                request_index=request.index,
                request=request.text,
                status="unreachable",
                reason=plan.unreachable,
            )
            for request in manifest.requests
        )
    if not manifest.requests:
        return (base,)
    rows: list[Row] = []
    for request, resolution in zip(manifest.requests, plan.resolutions, strict=True):
        chosen = resolution.chosen if passes(resolution, plan.ambiguous) else None
        rows.append(
            replace(
                base,
                request_index=request.index,
                request=request.text,
                status=resolution.status,
                integration_guid=chosen.guid if chosen else "",
                integration_name=(chosen.name or "") if chosen else "",
                integration_type=(chosen.template or "") if chosen else "",
                auth_type=(chosen.auth_type or "") if chosen else "",
                candidates=len(resolution.candidates),
                reason=resolution.reason,
            )
        )
    return tuple(rows)
