"""The async shell: servers, bundles and deploy pipelines under limits.

Phases, each emitting events for whoever draws progress (the CLI):

1. servers  every server at once: settings, user, integrations. A server that
            fails becomes ``unreachable`` for its pairs; the others go on.
2. plan     pure: every request resolved on every server (planning.py).
3. bundles  (run) each content's archive built once, in worker threads.
4. deploys  (run) one pipeline per passing pair, limited overall and per
            server; each ends in a PairOutcome value, never an exception.

Setting ``stop`` (the CLI does on Ctrl-C) cancels what is in flight; those
pairs end ``cancelled`` and the result is still returned for the reports.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anyio

from ._version import __version__
from .bundle import BuiltBundle, build_bundle_async
from .connect import Association, ConnectClient, Content, RetryPolicy, ServerSettings, User
from .errors import (
    BatchDeployError,
    ConnectError,
    ManifestError,
    NotFound,
    StateError,
    TaskError,
)
from .integrations import Integration, ServerView
from .jobs import ContentSpec, Job, ServerSpec
from .manifest import load_manifest
from .planning import ContentSource, PairPlan, plan_pairs, rows_for
from .report import render_csv, render_html, render_json, terminal_text
from .results import PairOutcome, Row, RunMeta, RunResult, ServerMeta
from .sandbox import serve_sandbox
from .sandbox.seed import Seed, load_seed
from .state import PairState, load_state, save_state
from .versions import parse_version

__all__ = [
    "BundlesBuilt",
    "Event",
    "PairFinished",
    "PhaseStarted",
    "ServerChecked",
    "ServerSurvey",
    "execute",
    "plan",
    "run",
    "survey",
    "write_reports",
]

log = logging.getLogger("batch_deploy.runner")

Phase = Literal["servers", "bundles", "deploys"]


@dataclass(frozen=True)
class PhaseStarted:
    phase: Phase
    total: int


@dataclass(frozen=True)
class ServerChecked:
    server: str
    error: str  # "" when the server answered


@dataclass(frozen=True)
class BundlesBuilt:
    content: str
    error: str


@dataclass(frozen=True)
class PairFinished:
    outcome: PairOutcome


Event = PhaseStarted | ServerChecked | BundlesBuilt | PairFinished
EventSink = Callable[[Event], None]

# Worker threads building archives at once; compression is CPU-bound.
BUNDLE_THREADS = 2
# Lines of a failed task's output carried into the report.
OUTPUT_TAIL = 3
DEPLOY_ROLES = ("administrator", "publisher")
INTERRUPTED_EARLY = "interrupted before this server answered"


@dataclass(frozen=True)
class ServerSurvey:
    """What the server phase learned about one server."""

    name: str
    meta: ServerMeta
    view: ServerView | None  # None when unreachable
    settings: ServerSettings | None = None
    user: User | None = None


@dataclass(frozen=True)
class _Endpoint:
    url: str
    api_key: str = field(repr=False)
    verify_tls: bool = True
    ca_bundle: Path | None = None
    key_hint: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


def _ignore(_event: Event) -> None:
    return None


def _load_seeds(job: Job) -> dict[str, Seed]:
    """Read every sandbox seed before anything starts: a bad seed stops the job."""
    return {
        name: load_seed(spec.sandbox)
        for name, spec in job.servers.items()
        if spec.sandbox is not None
    }


async def _open_endpoints(
    job: Job, seeds: Mapping[str, Seed], stack: AsyncExitStack
) -> dict[str, _Endpoint]:
    endpoints: dict[str, _Endpoint] = {}
    for name, spec in job.servers.items():
        if name in seeds:
            # Without a key from the environment, each embedded sandbox gets a
            # fresh one that lives only in memory.
            key = spec.api_key or secrets.token_urlsafe(24)
            running = await stack.enter_async_context(
                serve_sandbox(seeds[name], api_key=key, options=spec.sandbox_options)
            )
            endpoints[name] = _Endpoint(running.url, key)
        elif spec.url is None or spec.api_key is None:
            raise BatchDeployError(f"{name}: a url server without its API key; this is a bug")
        else:
            endpoints[name] = _Endpoint(
                spec.url,
                spec.api_key,
                spec.verify_tls,
                spec.ca_bundle,
                f"${spec.api_key_env}" if spec.api_key_env else "",
            )
    return endpoints


async def _survey_one(spec: ServerSpec, client: ConnectClient) -> ServerSurvey:
    settings: ServerSettings | None = None
    user: User | None = None
    integrations: tuple[Integration, ...] | None = None
    error = ""
    try:
        settings = await client.server_settings()
        user = await client.current_user()
        if user.role in DEPLOY_ROLES:
            integrations = await client.integrations()
        else:
            # The role is the server's text, bound for stderr: escaped like the summary.
            error = (
                f"{spec.name}: the API key belongs to {user.username!r}, a "
                f"{terminal_text(user.role)}; deploying needs a publisher or administrator key"
            )
    except ConnectError as failure:
        error = str(failure)
    version_text = spec.version or (settings.version if settings else "")
    meta = ServerMeta(
        spec.name,
        client.url,
        version_text,
        None if integrations is None else len(integrations),
        user.username if user else "",
        user.role if user else "",
        error=error,
    )
    if error or settings is None:
        return ServerSurvey(spec.name, meta, None, settings, user)
    try:
        version = parse_version(version_text)
    except ValueError:
        log.warning(
            "%s: cannot read version %r; assuming a current server", spec.name, version_text
        )
        version = None
    view = ServerView(
        spec.name,
        version,
        settings.oauth_integrations_enabled,
        settings.oauth_licensed,
        integrations,
    )
    return ServerSurvey(spec.name, meta, view, settings, user)


async def _survey_all(
    job: Job, clients: Mapping[str, ConnectClient], emit: EventSink
) -> dict[str, ServerSurvey]:
    surveys: dict[str, ServerSurvey] = {}
    emit(PhaseStarted("servers", len(clients)))

    async def one(name: str) -> None:
        survey = await _survey_one(job.servers[name], clients[name])
        surveys[name] = survey
        if survey.meta.error:
            log.warning("unreachable: %s", survey.meta.error)
        emit(ServerChecked(name, survey.meta.error))

    async with anyio.create_task_group() as group:
        for name in clients:
            group.start_soon(one, name)
    return {name: surveys[name] for name in clients}


async def _open_clients(
    job: Job, seeds: Mapping[str, Seed], stack: AsyncExitStack, retry: RetryPolicy | None
) -> dict[str, ConnectClient]:
    """One client per server (starting embedded sandboxes first), closed by ``stack``."""
    endpoints = await _open_endpoints(job, seeds, stack)
    return {
        name: await stack.enter_async_context(_open_client(name, endpoint, retry))
        for name, endpoint in endpoints.items()
    }


def _open_client(name: str, endpoint: _Endpoint, retry: RetryPolicy | None) -> ConnectClient:
    return ConnectClient(
        server=name,
        url=endpoint.url,
        api_key=endpoint.api_key,
        verify_tls=endpoint.verify_tls,
        ca_bundle=endpoint.ca_bundle,
        key_hint=endpoint.key_hint,
        retry=retry,
    )


async def survey(
    job: Job,
    *,
    on_event: EventSink | None = None,
    retry: RetryPolicy | None = None,
    stop: anyio.Event | None = None,
) -> tuple[ServerSurvey, ...] | None:
    """The server phase alone (the ``integrations`` command); None if stopped."""
    seeds = _load_seeds(job)
    surveys: dict[str, ServerSurvey] = {}
    async with AsyncExitStack() as stack, _stoppable(stop) as scope:
        clients = await _open_clients(job, seeds, stack, retry)
        surveys = await _survey_all(job, clients, on_event or _ignore)
    if scope.cancelled_caught:
        return None
    return tuple(surveys.values())


def _load_sources(specs: Sequence[ContentSpec]) -> list[ContentSource]:
    sources = []
    for spec in specs:
        try:
            sources.append(ContentSource(spec, load_manifest(spec.dir)))
        except ManifestError as error:
            sources.append(ContentSource(spec, None, str(error)))
    return sources


@dataclass
class _Progress:
    """What one pipeline has learned so far, for a cancelled pair's row."""

    content: Content | None = None
    bundle_id: str = ""
    task_id: str = ""


class _Deployer:
    """Runs every deploy pipeline of one ``run`` and keeps the state file."""

    def __init__(
        self,
        job: Job,
        clients: Mapping[str, ConnectClient],
        views: Mapping[str, ServerView],
        state_path: Path,
        states: dict[tuple[str, str], PairState],
        resume: bool,
        emit: EventSink,
    ) -> None:
        self.job = job
        self.clients = clients
        self.views = views
        self.state_path = state_path
        self.states = states
        self.resume = resume
        self.emit = emit
        self.outcomes: dict[tuple[str, str], PairOutcome] = {}
        self.overall = anyio.CapacityLimiter(job.run.concurrency)
        self.per_server = {name: anyio.CapacityLimiter(job.run.per_server) for name in job.servers}
        self.state_lock = anyio.Lock()

    def finish(self, outcome: PairOutcome) -> None:
        self.outcomes[(outcome.content, outcome.server)] = outcome
        self.emit(PairFinished(outcome))

    async def run(self, plans: Sequence[PairPlan], bundles: Mapping[str, BuiltBundle]) -> None:
        async with anyio.create_task_group() as group:
            for plan in plans:
                group.start_soon(self.pipeline, plan, bundles[plan.source.name])

    async def pipeline(self, plan: PairPlan, bundle: BuiltBundle) -> None:
        progress = _Progress()
        started = time.monotonic()
        try:
            # The server's slot first: waiting for a busy server must not hold an
            # overall slot that a pipeline to another server could use.
            async with self.per_server[plan.server], self.overall:
                outcome = await self.deploy(plan, bundle, progress)
        except anyio.get_cancelled_exc_class():
            content = progress.content
            self.finish(
                PairOutcome(
                    plan.source.name,
                    plan.server,
                    "cancelled",
                    content_guid=content.guid if content else "",
                    bundle_id=progress.bundle_id,
                    task_id=progress.task_id,
                    dashboard_url=content.dashboard_url if content else "",
                    error="interrupted before the deploy finished",
                    duration_s=round(time.monotonic() - started, 3),
                    bundle_md5=bundle.md5_hex,
                )
            )
            raise
        except BatchDeployError as error:
            content = progress.content
            outcome = PairOutcome(
                plan.source.name,
                plan.server,
                "failed",
                content_guid=content.guid if content else "",
                bundle_id=progress.bundle_id,
                task_id=progress.task_id,
                dashboard_url=content.dashboard_url if content else "",
                error=_describe_failure(error, content),
                bundle_md5=bundle.md5_hex,
            )
        outcome = replace(outcome, duration_s=round(time.monotonic() - started, 3))
        if outcome.deploy in ("deployed", "unchanged"):
            # A finished deploy is recorded even if Ctrl-C arrives meanwhile, so that
            # a rerun goes into the same content item and --resume can skip it.
            with anyio.CancelScope(shield=True):
                try:
                    await self.remember(outcome)
                except StateError as error:
                    # The deploy itself succeeded; say what was not recorded and go on.
                    log.warning("%s", error)
                    outcome = replace(outcome, error=f"deployed, but not recorded: {error}")
        self.finish(outcome)

    async def remember(self, outcome: PairOutcome) -> None:
        async with self.state_lock:
            self.states[(outcome.content, outcome.server)] = PairState(
                content_guid=outcome.content_guid,
                bundle_id=outcome.bundle_id,
                bundle_md5=outcome.bundle_md5,
                finished=_now().isoformat(timespec="seconds").replace("+00:00", "Z"),
            )
            snapshot = dict(self.states)
            await anyio.to_thread.run_sync(save_state, self.state_path, snapshot)

    async def target(self, plan: PairPlan, client: ConnectClient) -> Content:
        """The content item to deploy into; created only when none exists."""
        if plan.target_guid:
            try:
                return await client.get_content(plan.target_guid)
            except NotFound as error:
                raise BatchDeployError(
                    f"{plan.server}: content {plan.target_guid} named by guid.{plan.server} "
                    "for this entry does not exist; fix the guid or remove it to deploy by name"
                ) from error
        remembered = self.states.get(plan.key)
        if remembered is not None:
            try:
                return await client.get_content(remembered.content_guid)
            except NotFound:
                log.info(
                    "%s: content %s from state.json is gone; looking it up by name",
                    plan.server,
                    remembered.content_guid,
                )
        found = await client.find_content(plan.source.name)
        if found is not None:
            return found
        return await client.create_content(plan.source.name, plan.source.title)

    async def deploy(self, plan: PairPlan, bundle: BuiltBundle, progress: _Progress) -> PairOutcome:
        name, server = plan.key
        remembered = self.states.get(plan.key)
        if self.resume and remembered is not None and remembered.bundle_md5 == bundle.md5_hex:
            return PairOutcome(
                name,
                server,
                "skipped",
                content_guid=remembered.content_guid,
                bundle_id=remembered.bundle_id,
                bundle_md5=bundle.md5_hex,
            )
        client = self.clients[server]
        content = await self.target(plan, client)
        progress.content = content
        if content.title != plan.source.title:
            content = await client.update_content(content.guid, title=plan.source.title)
            progress.content = content
        status: Literal["deployed", "unchanged"] = "deployed"
        bundle_id = ""
        task_id = ""
        if self.job.run.skip_unchanged and content.bundle_id:
            active_md5 = await client.active_bundle_md5(content)
            if active_md5 == bundle.md5_hex:
                status = "unchanged"
                bundle_id = content.bundle_id
        if status == "deployed":
            uploaded = await client.upload_bundle(content.guid, bundle.path, bundle.md5_hex)
            bundle_id = progress.bundle_id = uploaded.id
            task_id = progress.task_id = await client.deploy(content.guid, uploaded.id)
            await client.wait_task(task_id, deadline_s=self.job.run.task_timeout)
            if plan.explicit_association and plan.has_requests:
                await client.set_associations(content.guid, plan.expected_guids)
        associated, drift = await self.read_back(plan, client, content)
        return PairOutcome(
            name,
            server,
            status,
            content_guid=content.guid,
            bundle_id=bundle_id,
            task_id=task_id,
            associated=associated,
            drift=drift,
            dashboard_url=content.dashboard_url,
            bundle_md5=bundle.md5_hex,
        )

    async def read_back(
        self, plan: PairPlan, client: ConnectClient, content: Content
    ) -> tuple[tuple[str, ...] | None, bool | None]:
        if not self.views[plan.server].has_integrations_api:
            return None, None
        found: tuple[Association, ...] = await client.associations(content.guid)
        associated = tuple(a.integration_guid for a in found)
        if not plan.has_requests:
            # Without requests we resolved nothing, so there is nothing to drift from.
            return associated, None
        return associated, set(associated) != set(plan.expected_guids)


def _describe_failure(error: BatchDeployError, content: Content | None) -> str:
    text = str(error)
    if isinstance(error, TaskError) and error.output:
        tail = " | ".join(line.strip() for line in error.output[-OUTPUT_TAIL:])
        text += f"; last output: {tail}"
    if isinstance(error, TaskError) and content is not None and content.dashboard_url:
        text += f"; logs: {content.dashboard_url.rstrip('/')}/logs"
    return text


async def _build_bundles(
    sources: Mapping[str, ContentSource], workdir: Path, emit: EventSink
) -> tuple[dict[str, BuiltBundle], dict[str, str]]:
    built: dict[str, BuiltBundle] = {}
    failed: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(BUNDLE_THREADS)
    emit(PhaseStarted("bundles", len(sources)))

    async def one(index: int, source: ContentSource) -> None:
        assert source.manifest is not None
        dest = workdir / f"bundle-{index}"
        dest.mkdir()
        try:
            built[source.name] = await build_bundle_async(
                source.spec.dir, source.manifest, dest, limiter
            )
        except BatchDeployError as error:
            failed[source.name] = str(error)
        emit(BundlesBuilt(source.name, failed.get(source.name, "")))

    async with anyio.create_task_group() as group:
        for index, source in enumerate(sources.values()):
            group.start_soon(one, index, source)
    return built, failed


async def execute(
    job: Job,
    *,
    command: Literal["plan", "run"],
    resume: bool = False,
    on_event: EventSink | None = None,
    stop: anyio.Event | None = None,
    retry: RetryPolicy | None = None,
) -> RunResult:
    """Plan or run ``job``; every per-pair failure is a value in the result.

    Raises only for what stops the whole job before any server is contacted
    (a bad sandbox seed, an unreadable state file) and for bugs.
    """
    emit = on_event or _ignore
    started = _now()
    seeds = _load_seeds(job)
    state_path = job.run.report_dir / "state.json"
    states = load_state(state_path) if command == "run" else {}
    sources = await anyio.to_thread.run_sync(_load_sources, job.content)
    surveys: dict[str, ServerSurvey] = {}
    plans: tuple[PairPlan, ...] = ()
    outcomes: dict[tuple[str, str], PairOutcome] = {}
    interrupted = False

    async with AsyncExitStack() as stack:
        async with _stoppable(stop) as scope:
            clients = await _open_clients(job, seeds, stack, retry)
            surveys = await _survey_all(job, clients, emit)
            views = {n: s.view for n, s in surveys.items() if s.view is not None}
            unreachable = {n: s.meta.error for n, s in surveys.items() if s.view is None}
            plans = plan_pairs(job, sources, views, unreachable)
            if command == "run":
                deployer = _Deployer(job, clients, views, state_path, states, resume, emit)
                outcomes = deployer.outcomes
                await _run_deploys(plans, deployer, emit)
        interrupted = scope.cancelled_caught or (stop is not None and stop.is_set())

    if interrupted and not plans:
        # Interrupted before the servers answered: every pair is still reported,
        # and _unfinished_outcome marks each one cancelled.
        unasked = dict.fromkeys(job.servers, INTERRUPTED_EARLY)
        plans = plan_pairs(job, sources, {}, unasked)
        surveys = {
            name: ServerSurvey(name, ServerMeta(name, spec.url or "", "", None), None)
            for name, spec in job.servers.items()
        }
    rows: list[Row] = []
    ordered: list[PairOutcome] = []
    for plan in plans:
        outcome = outcomes.get(plan.key)
        if outcome is None:
            outcome = _unfinished_outcome(plan, command)
        ordered.append(outcome)
        rows.extend(rows_for(plan, outcome))
    meta = RunMeta(
        command=command,
        tool_version=__version__,
        job_file=str(job.source),
        job_sha256=job.sha256,
        started=started,
        finished=_now(),
        servers=tuple(s.meta for s in surveys.values()),
        interrupted=interrupted,
    )
    return RunResult(meta, tuple(rows), tuple(ordered))


def _unfinished_outcome(plan: PairPlan, command: str) -> PairOutcome:
    """The outcome of a pair no pipeline reported: every pair of a plan, the
    blocked pairs of a run, and whatever an interrupt left unstarted."""
    if plan.unreachable == INTERRUPTED_EARLY:
        return PairOutcome(plan.source.name, plan.server, "cancelled", error=INTERRUPTED_EARLY)
    if not plan.deployable:
        return PairOutcome(plan.source.name, plan.server, "blocked", error=plan.blocked_reason)
    if command == "plan":
        return PairOutcome(plan.source.name, plan.server, "planned")
    return PairOutcome(
        plan.source.name, plan.server, "cancelled", error="interrupted before the deploy started"
    )


async def _cancel_on(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    log.info("interrupted: cancelling what is in flight")
    scope.cancel()


@asynccontextmanager
async def _stoppable(stop: anyio.Event | None) -> AsyncIterator[anyio.CancelScope]:
    """A scope that ``stop`` cancels; check ``cancelled_caught`` afterwards."""
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as watcher:
            if stop is not None:
                watcher.start_soon(_cancel_on, stop, scope)
            try:
                yield scope
            finally:
                watcher.cancel_scope.cancel()


async def _run_deploys(plans: Sequence[PairPlan], deployer: _Deployer, emit: EventSink) -> None:
    passing = [plan for plan in plans if plan.deployable]
    needed = {plan.source.name: plan.source for plan in passing}
    with tempfile.TemporaryDirectory(prefix="batch-deploy-") as workdir:
        bundles, broken = await _build_bundles(needed, Path(workdir), emit)
        for plan in passing:
            if plan.source.name in broken:
                deployer.finish(
                    PairOutcome(
                        plan.source.name, plan.server, "failed", error=broken[plan.source.name]
                    )
                )
        ready = [plan for plan in passing if plan.source.name in bundles]
        emit(PhaseStarted("deploys", len(ready)))
        await deployer.run(ready, bundles)


def write_reports(result: RunResult, report_dir: Path) -> dict[str, Path]:
    """Write results.csv, results.json and report.html, each atomically."""
    report_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for filename, text in (
        ("results.csv", render_csv(result)),
        ("results.json", render_json(result)),
        ("report.html", render_html(result)),
    ):
        target = report_dir / filename
        _atomic_write(target, text)
        written[filename] = target
    return written


def _atomic_write(target: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


async def plan(job: Job, *, on_event: EventSink | None = None) -> RunResult:
    """Resolve every request on every server; deploy nothing."""
    return await execute(job, command="plan", on_event=on_event)


async def run(
    job: Job,
    *,
    resume: bool = False,
    on_event: EventSink | None = None,
    stop: anyio.Event | None = None,
) -> RunResult:
    """Resolve, then deploy every pair that passes."""
    return await execute(job, command="run", resume=resume, on_event=on_event, stop=stop)
