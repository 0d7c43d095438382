"""Deploy throughput and upload memory of ``batch-deploy run`` against embedded sandboxes.

Run from the repository root::

    python benchmarks/bench_deploy.py [--content 60] [--servers 3] [--per-server 8]

Part 1, throughput: content folders and a job file are written to a temporary
folder and ``runner.execute(job, command="run")`` deploys every content item
to every sandbox server (``sandbox = "<seed>.json"`` in the job file, started
by the runner itself). Every manifest carries one integration request that
matches on every server. The run's wall time is compared with a lower bound
for the deploy work alone: with ``per_server`` pipelines per server, a
server's deploys take at least ``ceil(n / per_server)`` rounds, and one
round is at least the task's run time plus one latency for each HTTP
request a pipeline makes, one after another. That request count is measured,
not assumed: every request that reaches a sandbox is recorded by a
middleware added to its application, and the requests that arrive during
the deploy phase are divided by the deploys (a pipeline sends its requests
strictly one at a time, so this is the length of its chain).

Part 2, memory: one content item with a 200 MB file of random bytes (so the
archive is as large as its input) is deployed to two sandbox servers in a
fresh Python process; the growth of that process's peak resident set size
(``VmHWM``, reset before the run through ``/proc/self/clear_refs``, and a
sampling thread as a cross-check) is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import math
import os
import platform
import resource
import shutil
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

import batch_deploy.sandbox.server as sandbox_server
from batch_deploy.jobs import Job, load_job
from batch_deploy.results import PairOutcome, RunResult
from batch_deploy.runner import Event, PairFinished, PhaseStarted, execute
from batch_deploy.sandbox.options import SandboxOptions
from batch_deploy.sandbox.store import Store

SNOWFLAKE_VIEWER = "Snowflake production"
# Versions cycle so that both association paths run: 2025.09.0 and later
# associate from the manifest themselves, older servers get a PUT.
VERSIONS = ("2025.11.0", "2025.09.0", "2025.03.0")
MIB = 1024 * 1024
TARGET_RATIO = 1.2
TARGET_RSS_MIB = 64

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- fixtures on disk -----------------------------------------------------------------


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
    """A seed for server ``index``; returns its path and the integration requests match."""
    wanted = guid_for(index, 0)
    document = {
        "version": VERSIONS[index % len(VERSIONS)],
        "hostname": f"bench-{index}.example.com",
        "user": {"guid": guid_for(index, 99), "username": "deployer", "role": "publisher"},
        "integrations": [
            integration(wanted, SNOWFLAKE_VIEWER, "snowflake", "Viewer"),
            integration(guid_for(index, 1), "Snowflake staging", "snowflake", "Service Account"),
            integration(guid_for(index, 2), "Databricks analytics", "databricks", "Viewer"),
            integration(guid_for(index, 3), "keycloak integration", "custom", "Viewer"),
        ],
    }
    path = folder / f"server-{index}.json"
    path.write_text(json.dumps(document, indent=2))
    return path, wanted


def write_content(folder: Path, files: dict[str, bytes | Path]) -> None:
    """A content folder whose manifest lists ``files`` and asks for one integration."""
    folder.mkdir(parents=True)
    checksums = {}
    for name, data in files.items():
        if isinstance(data, Path):
            checksums[name] = "0" * 32  # not checked by the tool; hashing 200 MB is wasted time
            continue
        (folder / name).write_bytes(data)
        checksums[name] = hashlib.md5(data, usedforsecurity=False).hexdigest()
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


# --- counting what reaches the sandboxes ---------------------------------------------


@dataclass
class Hit:
    """One request as a sandbox saw it (times: ``time.monotonic()``)."""

    server: str
    method: str
    route: str
    key: str  # content guid, task id, or "name:<name>" for a lookup by name
    arrived: float
    answered: float
    status: int
    answer: dict[str, Any] = field(default_factory=dict)


def _answer_of(response: web.StreamResponse) -> dict[str, Any]:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return {}
    try:
        data = json.loads(response.body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _recorder(server: str, hits: list[Hit]) -> Any:
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
            hits.append(
                Hit(
                    server,
                    request.method,
                    resource.canonical if resource is not None else request.path,
                    key,
                    arrived,
                    time.monotonic(),
                    status,
                    answer,
                )
            )

    return record


@contextlib.contextmanager
def recording(hits: list[Hit]) -> Iterator[None]:
    """Every sandbox started meanwhile records its requests into ``hits``.

    The runner starts its sandboxes through ``serve_sandbox``, which builds
    the application with ``make_app``; the wrapper adds one outermost
    middleware (before the simulated latency) and changes nothing else.
    """
    original = sandbox_server.make_app

    def counting_app(store: Store, *, api_key: str, options: SandboxOptions) -> web.Application:
        app = original(store, api_key=api_key, options=options)
        app.middlewares.insert(0, _recorder(store.seed.hostname.split(".")[0], hits))
        return app

    sandbox_server.make_app = counting_app
    try:
        yield
    finally:
        sandbox_server.make_app = original


# --- part 1: throughput -----------------------------------------------------------------


@dataclass
class Timeline:
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
        if outcome.deploy != "deployed":
            problems.append(f"{outcome.content} on {outcome.server}: {outcome.deploy} "
                            f"({outcome.error})")
        elif outcome.associated != (expected[outcome.server],) or outcome.drift:
            problems.append(f"{outcome.content} on {outcome.server}: associated "
                            f"{outcome.associated}, drift {outcome.drift}")
    return problems


@dataclass
class Pipeline:
    """The requests of one deploy pipeline, in the order they arrived."""

    hits: list[Hit]

    def first(self, method: str, suffix: str, *, finished: bool = False) -> Hit:
        for hit in self.hits:
            if hit.method == method and hit.route.endswith(suffix):
                if finished and hit.answer.get("finished") is not True:
                    continue
                return hit
        raise LookupError(f"no {method} {suffix} in this pipeline")


def pipelines(hits: Sequence[Hit]) -> list[Pipeline]:
    """Group the deploy phase's requests by the content item they served."""
    by_name = {}
    by_task = {}
    for hit in hits:
        if hit.method == "POST" and hit.route.endswith("/v1/content") and "guid" in hit.answer:
            by_name[(hit.server, "name:" + str(hit.answer.get("name")))] = hit.answer["guid"]
        if hit.method == "POST" and hit.route.endswith("/deploy") and "task_id" in hit.answer:
            by_task[(hit.server, str(hit.answer["task_id"]))] = hit.key
    groups: dict[tuple[str, str], list[Hit]] = defaultdict(list)
    for hit in hits:
        guid = by_name.get((hit.server, hit.key)) or by_task.get((hit.server, hit.key)) or hit.key
        groups[(hit.server, guid)].append(hit)
    return [Pipeline(sorted(group, key=lambda h: h.arrived)) for group in groups.values()]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def where_time_goes(
    deploy_hits: Sequence[Hit], deploy_wall: float, per_server: int, servers: int, task: float
) -> list[str]:
    """One line per part of a pipeline, averaged over the pipelines."""
    setup, waits, closing, active, poll_sleep, polls, client_gaps = [], [], [], [], [], [], []
    for pipeline in pipelines(deploy_hits):
        deploy = pipeline.first("POST", "/deploy")
        done = pipeline.first("GET", "/tasks/{task_id}", finished=True)
        start, end = pipeline.hits[0].arrived, max(h.answered for h in pipeline.hits)
        setup.append(deploy.answered - start)
        waits.append(done.answered - deploy.answered)
        closing.append(end - done.answered)
        active.append(end - start)
        task_hits = [h for h in pipeline.hits if h.route.endswith("/tasks/{task_id}")]
        polls.append(len(task_hits))
        poll_sleep.append(
            sum(b.arrived - a.answered for a, b in zip(task_hits, task_hits[1:], strict=False))
        )
        others = [h for h in pipeline.hits if h not in task_hits]
        client_gaps.append(
            sum(max(0.0, b.arrived - a.answered) for a, b in zip(others, others[1:], strict=False))
            - max(0.0, others[others.index(deploy) + 1].arrived - deploy.answered
                  if others.index(deploy) + 1 < len(others) else 0.0)
        )
    busy = sum(active) / (per_server * servers * deploy_wall) if deploy_wall else 0.0
    return [
        f"  one pipeline, mean of {len(active)}: {_mean(active):.3f} s from its first request "
        "to its last answer",
        f"    before the task (lookup, create, upload, deploy): {_mean(setup):.3f} s",
        f"    deploy answered -> finished task seen:           {_mean(waits):.3f} s "
        f"(task runs {task:g} s; {_mean(polls):.1f} polls, {_mean(poll_sleep):.3f} s "
        "between them)",
        f"    after the task (associations):                   {_mean(closing):.3f} s",
        f"    client-side gaps between requests (not polls):   {_mean(client_gaps):.3f} s",
        f"  pipeline slots busy during the deploy phase: {busy:.0%} "
        f"({per_server} x {servers} slots)",
    ]


async def _execute(job: Job, timeline: Timeline) -> RunResult:
    timeline.started = time.monotonic()
    return await execute(job, command="run", on_event=timeline)


def throughput(options: argparse.Namespace) -> bool:
    latency, task = options.latency, options.task_seconds
    sandbox_options = SandboxOptions(latency=latency, task_seconds=task)
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
            write_content(
                folder,
                {
                    "app.py": f"# item {item}\nfrom fastapi import FastAPI\napp = FastAPI()\n"
                    .encode(),
                    "requirements.txt": b"fastapi\n",
                },
            )
            folders.append(folder)
        job_path = write_job(
            root,
            seeds,
            folders,
            concurrency=options.concurrency,
            per_server=options.per_server,
            options=sandbox_options,
        )
        job = load_job(job_path, {})
        hits: list[Hit] = []
        timeline = Timeline()
        with recording(hits):
            result = anyio.run(_execute, job, timeline)
        finished = time.monotonic()

    pairs = options.content * options.servers
    problems = check_outcomes(result, expected, pairs)
    if problems:
        print(f"FAILED: {len(problems)} of {pairs} pairs did not deploy as expected:")
        for problem in problems[:10]:
            print("  " + problem)
        return False

    wall = finished - timeline.started
    deploys_at = timeline.phases["deploys"]
    deploy_wall = timeline.last_finish - deploys_at
    deploy_hits = [hit for hit in hits if hit.arrived >= deploys_at]
    per_server_hits = Counter(hit.server for hit in deploy_hits)
    chains = {server: per_server_hits[server] / options.content for server in expected}
    longest = max(chains.values())
    rounds = math.ceil(options.content / options.per_server)
    bound = rounds * (task + longest * latency)
    routes = Counter((hit.method, hit.route) for hit in deploy_hits)

    print(
        f"part 1: {options.content} content x {options.servers} sandbox servers "
        f"(latency {latency:g} s, tasks {task:g} s), per_server {options.per_server}, "
        f"concurrency {options.concurrency}: all {pairs} pairs deployed and associated"
    )
    print(
        "  requests per deploy, counted: a middleware on each sandbox records every request;"
        " those arriving after the deploy phase began, divided by that server's deploys"
    )
    print("    " + ", ".join(f"{server} {chains[server]:.2f}" for server in sorted(chains)))
    for (method, route), count in sorted(routes.items(), key=lambda item: -item[1]):
        print(f"    {count / pairs:5.2f}  {method:5} {route}")
    phase_text = ", ".join(
        f"{name} {(later - at):.3f} s"
        for (name, at), later in zip(
            timeline.phases.items(),
            [*list(timeline.phases.values())[1:], timeline.last_finish],
            strict=True,
        )
    )
    print(f"  phases: {phase_text}; before the first phase "
          f"{min(timeline.phases.values()) - timeline.started:.3f} s, after the last pair "
          f"{finished - timeline.last_finish:.3f} s")
    print(
        f"  lower bound: ceil({options.content}/{options.per_server}) x "
        f"({task:g} + {longest:.2f} x {latency:g}) = {rounds} x "
        f"{task + longest * latency:.3f} = {bound:.3f} s"
    )
    print(f"  wall time of the run:   {wall:7.3f} s   ratio {wall / bound:.3f} "
          f"(target <= {TARGET_RATIO})")
    print(f"  deploy phase alone:     {deploy_wall:7.3f} s   ratio {deploy_wall / bound:.3f}")
    print("  where the deploy phase's time goes:")
    for line in where_time_goes(
        deploy_hits, deploy_wall, options.per_server, options.servers, task
    ):
        print(line)
    return wall / bound <= TARGET_RATIO


# --- part 2: memory ---------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field_name} is not in /proc/self/status")


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak_kib = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))
            self.halt.wait(0.005)


async def _run_only(job: Job) -> RunResult:
    return await execute(job, command="run")


def memory_child(job_path: Path) -> int:
    """In a fresh process: deploy the big bundle, print the RSS figures as JSON."""
    job = load_job(job_path, {})
    gc.collect()
    try:
        # "5" resets the peak resident set size (VmHWM) to the current one.
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before_rss = _status_kib("VmRSS")
    before_hwm = _status_kib("VmHWM")
    sampler = _Sampler()
    sampler.start()
    started = time.monotonic()
    result = anyio.run(_run_only, job)
    seconds = time.monotonic() - started
    sampler.halt.set()
    sampler.join()
    after_hwm = _status_kib("VmHWM")
    outcomes: list[PairOutcome] = list(result.outcomes)
    print(
        json.dumps(
            {
                "reset": reset,
                "before_rss_kib": before_rss,
                "before_hwm_kib": before_hwm,
                "after_hwm_kib": after_hwm,
                "sampled_peak_kib": sampler.peak_kib,
                "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "seconds": seconds,
                "deployed": [o.deploy for o in outcomes],
                "errors": [o.error for o in outcomes if o.error],
            }
        )
    )
    return 0


def memory(options: argparse.Namespace) -> bool:
    size = options.big_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-deploy-rss-") as temp:
        root = Path(temp)
        seeds = [write_seed(root, index)[0] for index in range(2)]
        folder = root / "content" / "big-data"
        write_content(folder, {"app.py": b"print('big')\n", "data.bin": folder / "data.bin"})
        with (folder / "data.bin").open("wb") as handle:
            for _ in range(size // MIB):
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
        left = shutil.disk_usage(root).free
    if child.returncode != 0 or not child.stdout.strip():
        print(f"part 2 FAILED: the measuring process exited {child.returncode}")
        print(child.stderr[-2000:])
        return False
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    if figures["deployed"] != ["deployed", "deployed"]:
        print(f"part 2 FAILED: outcomes {figures['deployed']}: {figures['errors']}")
        return False
    before = figures["before_rss_kib"]
    peak = max(figures["sampled_peak_kib"], figures["after_hwm_kib"])
    growth_mib = (peak - before) / 1024
    print(
        f"part 2: one {options.big_mib} MB content of random bytes to 2 sandbox servers, in a "
        f"fresh process: deployed twice in {figures['seconds']:.2f} s"
    )
    print(
        f"  RSS before {before / 1024:.1f} MiB; peak during the run: VmHWM "
        f"{figures['after_hwm_kib'] / 1024:.1f} MiB"
        f"{' (reset before the run)' if figures['reset'] else ' (not reset: may be stale)'}, "
        f"sampled every 5 ms {figures['sampled_peak_kib'] / 1024:.1f} MiB; "
        f"ru_maxrss {figures['ru_maxrss_kib'] / 1024:.1f} MiB (whole process life)"
    )
    print(f"  peak RSS growth: {growth_mib:.1f} MiB (target < {TARGET_RSS_MIB} MiB)")
    del left
    return growth_mib < TARGET_RSS_MIB


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--content", type=int, default=60)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--per-server", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--task-seconds", type=float, default=0.5)
    parser.add_argument("--big-mib", type=int, default=200, help="size of part 2's file")
    parser.add_argument("--skip-memory", action="store_true", help="run part 1 only")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.memory_child is not None:
        return memory_child(options.memory_child)

    print(f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), "
          f"Python {platform.python_version()} on {platform.system()} {platform.release()}")
    started = time.monotonic()
    fast_enough = throughput(options)
    small_enough = True if options.skip_memory else memory(options)
    print(f"benchmark took {time.monotonic() - started:.1f} s; "
          f"throughput {'met' if fast_enough else 'MISSED'} the target"
          + ("" if options.skip_memory else
             f", memory {'met' if small_enough else 'MISSED'} the target"))
    return 0 if fast_enough and small_enough else 1


if __name__ == "__main__":
    raise SystemExit(main())
