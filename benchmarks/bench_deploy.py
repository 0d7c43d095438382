"""Deploy throughput and upload memory of ``batch-deploy run`` against embedded sandboxes.

Run from the repository root::

    python benchmarks/bench_deploy.py [--content 60] [--servers 3] [--per-server 8]

Part 1, throughput. Content folders and a job file are written to a temporary
folder, and ``runner.execute(job, command="run")`` deploys every content item
to every sandbox server; the runner starts the sandboxes itself from the job
file (``sandbox = "<seed>.json"``). Every manifest carries one integration
request that matches on every server. The run's wall time is compared with a
lower bound for its deploy work: with ``per_server`` pipelines per server, a
server's ``n`` deploys take at least ``ceil(n / per_server)`` rounds, and one
round at least the task's run time plus one latency for each request that a
pipeline makes, one after another.

That request count is measured, not assumed: a middleware added to each
sandbox's application records every request it receives, and the requests
that arrive after the deploy phase began, divided by the deploys, give the
length of one pipeline's chain (a pipeline sends its requests strictly one at
a time). Two bounds are printed: the one the issue defines, counting every
request, and a strict one that leaves out the task polls answered while the
task still ran (their latency overlaps the task's own time, so counting them
loosens the bound: the more often a client polls, the easier it would pass).

Part 2, memory. One content item with a large file of random bytes (so the
archive is as large as its input) is deployed to two sandbox servers in a
fresh Python process; the growth of its peak resident set size is reported
(``VmHWM``, reset just before the run through ``/proc/self/clear_refs``,
with a thread sampling ``VmRSS`` every 5 ms as a cross-check).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
from aiohttp import web
from aiohttp.typedefs import Middleware

import batch_deploy.sandbox.server as sandbox_server
from batch_deploy.jobs import Job, load_job
from batch_deploy.results import RunResult
from batch_deploy.runner import Event, PairFinished, PhaseStarted, execute
from batch_deploy.sandbox.app import make_app
from batch_deploy.sandbox.options import SandboxOptions
from batch_deploy.sandbox.store import Store

# Versions cycle so that both association paths run: 2025.09.0 and later
# associate from the manifest themselves, older servers get a PUT.
VERSIONS = ("2025.11.0", "2025.09.0", "2025.03.0")
MIB = 1024 * 1024
TARGET_RATIO = 1.2
TARGET_RSS_MIB = 64
PROBE_PERIOD = 0.005
TASK_ROUTE = "/tasks/{task_id}"
# The name serve_sandbox looks up when it builds a sandbox's application.
APP_FACTORY = "make_app"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Lags = list[tuple[float, float]]


# --- fixtures on disk ---------------------------------------------------------------------


def guid_for(server: int, item: int) -> str:
    digest = hashlib.sha256(f"bench-{server}-{item}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def integration(guid: str, name: str, template: str, auth_type: str) -> dict[str, Any]:
    return {
        "guid": guid,
        "name": name,
        "description": f"{name} (benchmark)",
        "template": template,
        "auth_type": auth_type,
        "config": {"client_id": f"client-{guid[:8]}"},
    }


def write_seed(folder: Path, index: int) -> tuple[Path, str]:
    """Server ``index``'s seed file, and the guid the benchmark's request must match."""
    wanted = guid_for(index, 0)
    document = {
        "version": VERSIONS[index % len(VERSIONS)],
        "hostname": f"bench-{index}.example.com",
        "user": {"guid": guid_for(index, 99), "username": "deployer", "role": "publisher"},
        "integrations": [
            integration(wanted, "Snowflake production", "snowflake", "Viewer"),
            integration(guid_for(index, 1), "Snowflake staging", "snowflake", "Service Account"),
            integration(guid_for(index, 2), "Databricks analytics", "databricks", "Viewer"),
            integration(guid_for(index, 3), "keycloak integration", "custom", "Viewer"),
        ],
    }
    path = folder / f"server-{index}.json"
    path.write_text(json.dumps(document, indent=2))
    return path, wanted


def write_content(folder: Path, files: dict[str, bytes], large: Sequence[str] = ()) -> None:
    """A content folder whose manifest lists ``files`` (and ``large``, written by the
    caller) and asks for one integration."""
    folder.mkdir(parents=True)
    checksums = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        checksums[name] = hashlib.md5(data, usedforsecurity=False).hexdigest()
    for name in large:
        checksums[name] = "0" * 32  # the tool does not check them; hashing is wasted time
    manifest = {
        "version": 1,
        "metadata": {"appmode": "python-api", "entrypoint": "app"},
        "python": {"version": "3.11.7"},
        "files": {name: {"checksum": checksum} for name, checksum in checksums.items()},
        "integration_requests": [
            {"type": "snowflake", "name": "^Snowflake production$", "auth_type": "Viewer"}
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def write_job(
    root: Path,
    seeds: Sequence[Path],
    content: Sequence[Path],
    *,
    concurrency: int,
    per_server: int,
    options: SandboxOptions,
) -> Path:
    lines = [
        "[run]",
        'report_dir = "reports"',
        f"concurrency = {concurrency}",
        f"per_server = {per_server}",
        "task_timeout = 120",
        'ambiguous = "fail"',
        'associate = "auto"',
        "skip_unchanged = true",
    ]
    for index, seed in enumerate(seeds):
        lines += [
            f"[servers.bench-{index}]",
            f"sandbox = {json.dumps(seed.name)}",
            f"sandbox_options = {{ latency = {options.latency}, "
            f"task_seconds = {options.task_seconds} }}",
        ]
    for folder in content:
        lines += ["[[content]]", f"dir = {json.dumps(folder.relative_to(root).as_posix())}"]
    path = root / "jobs.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- what reaches the sandboxes -------------------------------------------------------------


@dataclass
class Hit:
    """One request as a sandbox saw it (times from ``time.monotonic()``)."""

    server: str
    method: str
    route: str  # the route's template, e.g. /__api__/v1/content/{guid}/bundles
    key: str  # content guid, task id, or "name:<name>" for a lookup by name
    arrived: float
    answered: float
    status: int
    answer: dict[str, Any] = field(default_factory=dict)  # POSTs and task polls only


def _answer_of(response: web.StreamResponse) -> dict[str, Any]:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return {}
    try:
        data = json.loads(response.body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _recorder(server: str, hits: list[Hit]) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.monotonic()
        status = 0
        answer: dict[str, Any] = {}
        try:
            response = await handler(request)
            status = response.status
            if request.method == "POST" or "task_id" in request.match_info:
                answer = _answer_of(response)
            return response
        finally:
            info = request.match_info
            resource = info.route.resource
            key = info.get("guid") or info.get("task_id") or ""
            if not key and "name" in request.query:
                key = "name:" + request.query["name"]
            route = resource.canonical if resource is not None else request.path
            answered = time.monotonic()
            hits.append(
                Hit(server, request.method, route, key, arrived, answered, status, answer)
            )

    return record


@contextlib.contextmanager
def recording(hits: list[Hit]) -> Iterator[None]:
    """Every sandbox started meanwhile records its requests into ``hits``.

    ``serve_sandbox`` builds each sandbox's application with ``make_app``; the
    stand-in adds one outermost middleware (so the simulated latency is
    inside what it times) and changes nothing else.
    """

    def counting_app(store: Store, *, api_key: str, options: SandboxOptions) -> web.Application:
        app = make_app(store, api_key=api_key, options=options)
        app.middlewares.insert(0, _recorder(store.seed.hostname.split(".")[0], hits))
        return app

    setattr(sandbox_server, APP_FACTORY, counting_app)
    try:
        yield
    finally:
        setattr(sandbox_server, APP_FACTORY, make_app)


# --- part 1: throughput ---------------------------------------------------------------------


@dataclass
class Timeline:
    """When each phase began and the last pair finished (the runner's events)."""

    started: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    last_finish: float = 0.0

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, PhaseStarted):
            self.phases[event.phase] = now
        elif isinstance(event, PairFinished):
            self.last_finish = max(self.last_finish, now)


def check_outcomes(result: RunResult, expected: dict[str, str], pairs: int) -> list[str]:
    problems = []
    if len(result.outcomes) != pairs:
        problems.append(f"{len(result.outcomes)} outcomes for {pairs} pairs")
    for outcome in result.outcomes:
        where = f"{outcome.content} on {outcome.server}"
        if outcome.deploy != "deployed":
            problems.append(f"{where}: {outcome.deploy} ({outcome.error})")
        elif outcome.associated != (expected[outcome.server],) or outcome.drift:
            problems.append(f"{where}: associated {outcome.associated}, drift {outcome.drift}")
    return problems


@dataclass
class Pipeline:
    """The requests of one deploy pipeline, in the order they arrived."""

    hits: list[Hit]

    def first(self, method: str, suffix: str, *, finished: bool = False) -> Hit:
        for hit in self.hits:
            if hit.method != method or not hit.route.endswith(suffix):
                continue
            if not finished or hit.answer.get("finished") is True:
                return hit
        raise LookupError(f"no {method} {suffix} in this pipeline")


def pipelines(hits: Sequence[Hit]) -> list[Pipeline]:
    """The deploy phase's requests grouped by the content item they served."""
    by_name: dict[tuple[str, str], str] = {}
    by_task: dict[tuple[str, str], str] = {}
    for hit in hits:
        if hit.method == "POST" and hit.route.endswith("/v1/content") and "guid" in hit.answer:
            by_name[(hit.server, f"name:{hit.answer.get('name')}")] = str(hit.answer["guid"])
        if hit.method == "POST" and hit.route.endswith("/deploy") and "task_id" in hit.answer:
            by_task[(hit.server, str(hit.answer["task_id"]))] = hit.key
    groups: dict[tuple[str, str], list[Hit]] = defaultdict(list)
    for hit in hits:
        guid = (
            by_name.get((hit.server, hit.key))
            or by_task.get((hit.server, hit.key))
            or hit.key
            or str(hit.answer.get("guid", ""))
        )
        groups[(hit.server, guid)].append(hit)
    return [Pipeline(sorted(group, key=lambda h: h.arrived)) for group in groups.values()]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _gaps(hits: Sequence[Hit]) -> float:
    """Time from one answer to the next request: spent in the client (and the loop)."""
    return sum(max(0.0, b.arrived - a.answered) for a, b in itertools.pairwise(hits))


def where_time_goes(
    deploy_hits: Sequence[Hit], deploy_wall: float, per_server: int, servers: int, task: float
) -> list[str]:
    """Each part of a pipeline, averaged over the pipelines (sandbox-side clocks)."""
    before: list[float] = []
    before_n: list[int] = []
    before_gaps: list[float] = []
    waits: list[float] = []
    polls: list[int] = []
    idle: list[float] = []
    after: list[float] = []
    after_n: list[int] = []
    active: list[float] = []
    in_server: list[float] = []
    for pipeline in pipelines(deploy_hits):
        deploy = pipeline.first("POST", "/deploy")
        done = pipeline.first("GET", TASK_ROUTE, finished=True)
        hits = pipeline.hits
        start, end = hits[0].arrived, max(h.answered for h in hits)
        head = [h for h in hits if h.arrived <= deploy.arrived]
        task_hits = [h for h in hits if h.route.endswith(TASK_ROUTE)]
        tail = [h for h in hits if h.arrived > done.arrived]
        before.append(deploy.answered - start)
        before_n.append(len(head))
        before_gaps.append(_gaps(head))
        waits.append(done.answered - deploy.answered)
        polls.append(len(task_hits))
        idle.append(_gaps(task_hits))
        after.append(end - done.answered)
        after_n.append(len(tail))
        active.append(end - start)
        in_server.extend(h.answered - h.arrived for h in head + tail)
    busy = sum(active) / (per_server * servers * deploy_wall) if deploy_wall else 0.0
    return [
        f"  where the deploy phase goes (means over {len(active)} pipelines, sandbox clocks):",
        f"    one pipeline: {_mean(active):.3f} s from its first request to its last answer; "
        f"the {per_server} x {servers} slots are busy {busy:.0%} of the phase",
        f"    before the task: {_mean(before):.3f} s = {_mean(before_n):.1f} requests "
        f"(each {_mean(in_server):.3f} s in the sandbox, latency included) "
        f"+ {_mean(before_gaps):.3f} s in the client between them",
        f"    the task: deploy answered -> finished seen {_mean(waits):.3f} s for a {task:g} s "
        f"task (+{_mean(waits) - task:.3f} s); {_mean(polls):.1f} polls, "
        f"{_mean(idle):.3f} s from a poll's answer to the next poll",
        f"    after the task: {_mean(after):.3f} s = {_mean(after_n):.1f} requests and the "
        "client between them",
    ]


async def _probe(lags: Lags) -> None:
    """How late the event loop wakes a sleeper: a delay every pipeline pays too."""
    while True:
        asked = time.monotonic()
        await anyio.sleep(PROBE_PERIOD)
        lags.append((asked, time.monotonic() - asked - PROBE_PERIOD))


async def _execute(job: Job, timeline: Timeline, lags: Lags) -> RunResult:
    async with anyio.create_task_group() as group:
        group.start_soon(_probe, lags)
        timeline.started = time.monotonic()
        result = await execute(job, command="run", on_event=timeline)
        group.cancel_scope.cancel()
    return result


def _phase_text(timeline: Timeline, finished: float) -> str:
    starts = list(timeline.phases.items())
    ends = [at for _, at in starts[1:]] + [timeline.last_finish]
    parts = [f"{name} {end - at:.3f} s" for (name, at), end in zip(starts, ends, strict=True)]
    first = min(timeline.phases.values())
    return (
        f"{', '.join(parts)}; before the first {first - timeline.started:.3f} s, "
        f"after the last pair finished {finished - timeline.last_finish:.3f} s"
    )


def throughput(options: argparse.Namespace) -> bool:
    latency: float = options.latency
    task: float = options.task_seconds
    content: int = options.content
    per_server: int = options.per_server
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as temp:
        root = Path(temp)
        seeds, expected = [], {}
        for index in range(options.servers):
            path, wanted = write_seed(root, index)
            seeds.append(path)
            expected[f"bench-{index}"] = wanted
        folders = []
        for item in range(options.content):
            folder = root / "content" / f"app-{item:03d}"
            app = f"# item {item}\nfrom fastapi import FastAPI\n\napp = FastAPI()\n"
            write_content(folder, {"app.py": app.encode(), "requirements.txt": b"fastapi\n"})
            folders.append(folder)
        job = load_job(
            write_job(
                root,
                seeds,
                folders,
                concurrency=options.concurrency,
                per_server=options.per_server,
                options=SandboxOptions(latency=latency, task_seconds=task),
            ),
            {},
        )
        hits: list[Hit] = []
        lags: Lags = []
        timeline = Timeline()
        with recording(hits):
            result = anyio.run(_execute, job, timeline, lags)
        finished = time.monotonic()

    pairs = options.content * options.servers
    problems = check_outcomes(result, expected, pairs)
    if problems:
        print(f"part 1 FAILED: {len(problems)} of {pairs} pairs did not deploy as expected:")
        for problem in problems[:10]:
            print("  " + problem)
        return False

    wall = finished - timeline.started
    deploys_at = timeline.phases["deploys"]
    deploy_wall = timeline.last_finish - deploys_at
    deploy_hits = [hit for hit in hits if hit.arrived >= deploys_at]
    counted = Counter(hit.server for hit in deploy_hits)
    chains = {server: counted[server] / content for server in expected}
    chain = max(chains.values())
    rounds = math.ceil(content / per_server)
    bound = rounds * (task + chain * latency)
    # Only the poll that sees the task finished adds a latency after the task.
    outside = Counter(hit.server for hit in deploy_hits if not hit.route.endswith(TASK_ROUTE))
    strict_chain = max(outside[server] / content for server in expected) + 1
    strict = rounds * (task + strict_chain * latency)
    routes = Counter((hit.method, hit.route) for hit in deploy_hits)

    print(
        f"part 1: {options.content} content x {options.servers} sandbox servers "
        f"(latency {latency:g} s, tasks {task:g} s), per_server {options.per_server}, "
        f"concurrency {options.concurrency}: all {pairs} pairs deployed and associated"
    )
    print(
        "  requests per deploy, counted: a middleware on each sandbox records every request;"
        " those that arrived after the deploy phase began, divided by the server's deploys:"
    )
    print("    " + ", ".join(f"{server} {chains[server]:.2f}" for server in sorted(chains)))
    for (method, route), count in sorted(routes.items(), key=lambda item: -item[1]):
        print(f"    {count / pairs:5.2f} x {method:5} {route}")
    print(f"  phases: {_phase_text(timeline, finished)}")
    print(
        f"  lower bound (issue): ceil({options.content}/{options.per_server}) x ({task:g} + "
        f"{chain:.2f} x {latency:g}) = {rounds} x {task + chain * latency:.3f} = {bound:.3f} s"
    )
    print(
        f"  strict lower bound, without the polls answered while the task ran: {rounds} x "
        f"({task:g} + {strict_chain:.2f} x {latency:g}) = {strict:.3f} s"
    )
    print(
        f"  wall time of the run: {wall:6.3f} s   ratio {wall / bound:.3f} "
        f"(target <= {TARGET_RATIO}); against the strict bound {wall / strict:.3f}"
    )
    print(
        f"  deploy phase alone:   {deploy_wall:6.3f} s   ratio {deploy_wall / bound:.3f}; "
        f"against the strict bound {deploy_wall / strict:.3f}"
    )
    during = sorted(lag for asked, lag in lags if deploys_at <= asked <= timeline.last_finish)
    if during:
        print(
            f"  event loop (the client and the sandboxes share it): a {PROBE_PERIOD * 1000:g} ms "
            f"sleep wakes {statistics.fmean(during) * 1000:.1f} ms late on average, "
            f"{during[int(len(during) * 0.95)] * 1000:.1f} ms at the 95th percentile"
        )
    for line in where_time_goes(
        deploy_hits, deploy_wall, options.per_server, options.servers, task
    ):
        print(line)
    return wall / bound <= TARGET_RATIO


# --- part 2: memory -------------------------------------------------------------------------


def _status_kib(name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(f"{name} is not in /proc/self/status")


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak_kib = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))
            self.halt.wait(0.005)


async def _run_job(job: Job) -> RunResult:
    return await execute(job, command="run")


def memory_child(job_path: Path) -> int:
    """In a fresh process: deploy the large content, print the RSS figures as JSON."""
    job = load_job(job_path, {})
    gc.collect()
    try:
        # "5" resets the peak resident set size (VmHWM) to the current one.
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before_rss = _status_kib("VmRSS")
    sampler = _Sampler()
    sampler.start()
    started = time.monotonic()
    hits: list[Hit] = []
    with recording(hits):
        result = anyio.run(_run_job, job)
    seconds = time.monotonic() - started
    sampler.halt.set()
    sampler.join()
    figures = {
        "reset": reset,
        "before_rss_kib": before_rss,
        "after_hwm_kib": _status_kib("VmHWM"),
        "sampled_peak_kib": sampler.peak_kib,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "seconds": seconds,
        "deployed": [outcome.deploy for outcome in result.outcomes],
        "errors": [outcome.error for outcome in result.outcomes if outcome.error],
        "uploaded": [
            hit.answer.get("size")
            for hit in hits
            if hit.method == "POST" and hit.route.endswith("/bundles")
        ],
    }
    print(json.dumps(figures))
    return 0


def memory(options: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-deploy-rss-") as temp:
        root = Path(temp)
        seeds = [write_seed(root, index)[0] for index in range(2)]
        folder = root / "content" / "big-data"
        write_content(folder, {"app.py": b"print('big')\n"}, large=["data.bin"])
        with (folder / "data.bin").open("wb") as handle:
            for _ in range(options.big_mib):
                handle.write(os.urandom(MIB))
        job_path = write_job(
            root,
            seeds,
            [folder],
            concurrency=4,
            per_server=2,
            options=SandboxOptions(latency=options.latency, task_seconds=0.1),
        )
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(job_path)],
            capture_output=True,
            text=True,
            check=False,
        )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        print(f"part 2 FAILED: the measuring process exited {child.returncode}")
        print(child.stderr[-2000:])
        return False
    figures = json.loads(lines[-1])
    if figures["deployed"] != ["deployed", "deployed"]:
        print(f"part 2 FAILED: outcomes {figures['deployed']}: {figures['errors']}")
        return False
    before: int = figures["before_rss_kib"]
    peak: int = max(figures["sampled_peak_kib"], figures["after_hwm_kib"])
    growth_mib = (peak - before) / 1024
    sizes = " and ".join(f"{size / MIB:.1f}" for size in figures["uploaded"])
    hwm_note = "reset just before the run" if figures["reset"] else "NOT reset: may be stale"
    print(
        f"part 2: one content with a {options.big_mib} MiB file of random bytes to 2 sandbox "
        f"servers in a fresh process: archives of {sizes} MiB uploaded and deployed "
        f"in {figures['seconds']:.2f} s"
    )
    print(
        f"  RSS before the run {before / 1024:.1f} MiB; peak during it: VmHWM "
        f"{figures['after_hwm_kib'] / 1024:.1f} MiB ({hwm_note}), VmRSS sampled every 5 ms "
        f"{figures['sampled_peak_kib'] / 1024:.1f} MiB; ru_maxrss over the process's life "
        f"{figures['ru_maxrss_kib'] / 1024:.1f} MiB"
    )
    print(f"  peak RSS growth: {growth_mib:.1f} MiB (target < {TARGET_RSS_MIB} MiB)")
    return growth_mib < TARGET_RSS_MIB


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--content", type=int, default=60)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--per-server", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--task-seconds", type=float, default=0.5)
    parser.add_argument("--big-mib", type=int, default=200, help="part 2's file size")
    parser.add_argument("--skip-memory", action="store_true", help="run part 1 only")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.memory_child is not None:
        return memory_child(options.memory_child)

    print(
        f"machine: nproc {len(os.sched_getaffinity(0))} (of {os.cpu_count()} cores), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    started = time.monotonic()
    fast = throughput(options)
    small = True if options.skip_memory else memory(options)
    verdicts = [f"throughput {'met' if fast else 'MISSED'} its target"]
    if not options.skip_memory:
        verdicts.append(f"memory {'met' if small else 'MISSED'} its target")
    print(f"{'; '.join(verdicts)} (benchmark took {time.monotonic() - started:.1f} s)")
    return 0 if fast and small else 1


if __name__ == "__main__":
    raise SystemExit(main())
