"""Command line: argv in, exit status out. The only module that prints.

Exit status: 0 everything resolved (plan) or deployed/unchanged (run); 1 some
pair failed, was blocked or unreachable; 2 the job could not start; 130
interrupted (the reports of what finished are still written).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import stamina
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ._version import __version__
from .connect import log_retry
from .errors import BatchDeployError, JobError, SeedError
from .integrations import redact_config
from .jobs import Job, load_job, narrow_job
from .report import json_text, render_json, render_summary_table, terminal_text
from .results import RunResult
from .runner import (
    BundlesBuilt,
    Event,
    PairFinished,
    PhaseStarted,
    ServerChecked,
    ServerSurvey,
    execute,
    survey,
    write_reports,
)
from .sandbox import run_sandbox_forever
from .sandbox.options import SandboxOptions
from .sandbox.seed import load_seed, seed_document

__all__ = ["main"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("batch_deploy")

SUCCESS = {"plan": ("planned",), "run": ("deployed", "unchanged", "skipped")}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _add_job_options(parser: argparse.ArgumentParser, *, deploys: bool) -> None:
    parser.add_argument("jobs", type=Path, metavar="JOBS", help="the job file (jobs.toml)")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME",
        help="only this server (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="draw no progress bars")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="log less")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    if not deploys:
        return
    parser.add_argument(
        "--content",
        action="append",
        default=[],
        metavar="GLOB",
        help="only content whose name or dir matches (repeatable)",
    )
    parser.add_argument("--report-dir", type=Path, metavar="DIR", help="write the reports here")
    parser.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="deploys in flight, all servers"
    )
    parser.add_argument(
        "--per-server", type=_positive_int, metavar="N", help="deploys in flight on one server"
    )
    parser.add_argument(
        "--ambiguous",
        choices=("fail", "first"),
        help="a request matching several integrations blocks (fail) or takes the first",
    )
    parser.add_argument("--resume", action="store_true", help="skip pairs the last run finished")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-deploy",
        description=(
            "Resolve Posit Connect integration requests on many servers before "
            "deploying, then deploy what passes and report."
        ),
    )
    parser.add_argument("--version", action="version", version=f"batch-deploy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser("plan", help="resolve every request on every server; deploy nothing")
    _add_job_options(plan, deploys=True)
    run = commands.add_parser("run", help="resolve, then deploy what passes")
    _add_job_options(run, deploys=True)
    integrations = commands.add_parser(
        "integrations", help="list each server's integrations (secrets redacted)"
    )
    _add_job_options(integrations, deploys=False)
    sandbox = commands.add_parser("sandbox", help="serve one Connect sandbox until interrupted")
    sandbox.add_argument("--seed", type=Path, required=True, metavar="FILE")
    sandbox.add_argument("--port", type=int, default=0, metavar="N", help="0 picks a free port")
    sandbox.add_argument(
        "--api-key-env",
        default="CONNECT_API_KEY",
        metavar="VAR",
        help="the variable holding the key the sandbox accepts (default CONNECT_API_KEY)",
    )
    defaults = SandboxOptions()
    for option, value in vars(defaults).items():
        flag = "--" + option.replace("_", "-")
        if isinstance(value, bool):
            sandbox.add_argument(flag, action="store_true", help="fault: " + option)
        else:
            sandbox.add_argument(
                flag, type=type(value), default=value, metavar="N", help=f"fault: {option}"
            )
    sandbox.add_argument("-q", "--quiet", action="count", default=0)
    sandbox.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if level == logging.DEBUG else level)
    # Debug output of our own modules only: third-party debug logs are noise.
    logging.getLogger("batch_deploy").setLevel(level)
    # stamina's own retry log says only "retry_scheduled"; ours names the call.
    stamina.instrumentation.set_on_retry_hooks([log_retry])


def _problem(message: str) -> int:
    print(f"batch-deploy: {message}", file=sys.stderr)
    return EXIT_CANNOT_START


def _load(args: argparse.Namespace, *, deploys: bool) -> Job:
    # Keys are needed only for the servers this command will talk to.
    job = load_job(args.jobs, keys_for=args.server or None)
    if deploys:
        return narrow_job(
            job,
            servers=args.server,
            content=args.content,
            report_dir=args.report_dir,
            concurrency=args.concurrency,
            per_server=args.per_server,
            ambiguous=args.ambiguous,
        )
    return narrow_job(job, servers=args.server)


class _Progress:
    """tqdm bars on stderr, one per phase, fed by the runner's events."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, PhaseStarted):
            self.close()
            self.bar = tqdm(
                total=event.total,
                desc=event.phase,
                unit="",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
        elif isinstance(event, ServerChecked | BundlesBuilt | PairFinished) and self.bar:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception a task group wrapped, however deeply; None if several."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return error


async def _with_interrupt(work: Callable[[anyio.Event], Any]) -> Any:
    """Run ``work(stop)``: the first Ctrl-C (or SIGTERM) sets ``stop`` so the work
    can wind down and report; a second one gives up at once."""
    stop = anyio.Event()

    async def watch() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _signal in signals:
                if stop.is_set():
                    raise KeyboardInterrupt
                stop.set()
                print(
                    "batch-deploy: interrupted; cancelling what is in flight and writing "
                    "the reports (Ctrl-C again quits at once)",
                    file=sys.stderr,
                )

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                return await work(stop)
            finally:
                group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Task groups wrap what they raise; callers want the error itself.
        sole = _sole_error(group)
        if sole is None:
            raise
        raise sole from None


def _exit_status(result: RunResult) -> int:
    if result.meta.interrupted:
        return EXIT_INTERRUPTED
    good = SUCCESS[result.meta.command]
    return EXIT_OK if all(o.deploy in good for o in result.outcomes) else EXIT_PROBLEMS


def _deploy_command(args: argparse.Namespace, command: Literal["plan", "run"]) -> int:
    job = _load(args, deploys=True)
    progress = _Progress(enabled=not args.no_progress and sys.stderr.isatty())

    async def work(stop: anyio.Event) -> RunResult:
        return await execute(job, command=command, resume=args.resume, on_event=progress, stop=stop)

    with ExitStack() as stack:
        if progress.enabled:
            stack.enter_context(logging_redirect_tqdm())
        stack.callback(progress.close)
        result: RunResult = anyio.run(_with_interrupt, work)
    written = write_reports(result, job.run.report_dir)
    if args.json:
        sys.stdout.write(render_json(result))
    else:
        sys.stdout.write(render_summary_table(result))
    if args.quiet == 0:
        # stdout is for the summary alone; where the reports went goes to stderr.
        paths = ", ".join(str(path) for path in written.values())
        print(f"reports: {paths}", file=sys.stderr)
    return _exit_status(result)


def _integration_lines(surveys: Sequence[ServerSurvey], out: TextIO) -> int:
    # Every value here may come from a server: escaped as the summary table is.
    status = EXIT_OK
    for found in surveys:
        view = found.view
        if view is None:
            # The runner has already logged why the server could not be asked.
            status = EXIT_PROBLEMS
            continue
        version = found.meta.version or "hidden"
        where = terminal_text(
            f"{found.name} ({found.meta.url}, Connect {version})", keep_unicode=True
        )
        if view.integrations is None:
            out.write(f"{where}: no integrations API\n")
            continue
        out.write(f"{where}: {len(view.integrations)} integration(s)\n")
        for item in view.integrations:
            config = json.dumps(redact_config(item.config), separators=(",", ":"), sort_keys=True)
            line = (
                f"{item.guid}  {item.name or '-'}  type={item.template or '-'}  "
                f"auth_type={item.auth_type or '-'}  config={config}"
            )
            out.write(f"  {terminal_text(line, keep_unicode=True)}\n")
    return status


def _integrations_command(args: argparse.Namespace) -> int:
    job = _load(args, deploys=False)
    if args.json and len(job.servers) != 1:
        names = ", ".join(job.servers)
        return _problem(
            f"--json writes one server's sandbox seed; choose one with --server NAME ({names})"
        )
    progress = _Progress(enabled=not args.no_progress and sys.stderr.isatty())

    async def work(stop: anyio.Event) -> tuple[ServerSurvey, ...] | None:
        return await survey(job, on_event=progress, stop=stop)

    try:
        surveys: tuple[ServerSurvey, ...] | None = anyio.run(_with_interrupt, work)
    finally:
        progress.close()
    if surveys is None:
        return EXIT_INTERRUPTED
    if not args.json:
        return _integration_lines(surveys, sys.stdout)
    (found,) = surveys
    if found.view is None or found.settings is None:
        return EXIT_PROBLEMS
    user = found.user
    document = seed_document(
        version=found.settings.version,
        hostname=found.settings.hostname,
        oauth_integrations_enabled=found.settings.oauth_integrations_enabled,
        license=(
            {}
            if found.settings.oauth_licensed is None
            else {"oauth-integrations": found.settings.oauth_licensed}
        ),
        user=None
        if user is None
        else {"guid": user.guid, "username": user.username, "role": user.role},
        integrations=found.view.integrations or (),
    )
    sys.stdout.write(json_text(document) + "\n")
    return EXIT_OK


def _sandbox_command(args: argparse.Namespace) -> int:
    key = os.environ.get(args.api_key_env, "")
    if not key:
        return _problem(
            f"--api-key-env: the variable {args.api_key_env} is not set; "
            f"export {args.api_key_env}=<a key of your choice> for the sandbox to accept"
        )
    seed = load_seed(args.seed)
    options = SandboxOptions(**{name: getattr(args, name) for name in vars(SandboxOptions())})

    def ready(url: str) -> None:
        print(f"Connect sandbox serving at {url} (Ctrl-C stops it)", flush=True)

    run_sandbox_forever(seed, api_key=key, options=options, port=args.port, on_ready=ready)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    _configure_logging(args.verbose - args.quiet)
    try:
        if args.command == "sandbox":
            return _sandbox_command(args)
        if args.command == "integrations":
            return _integrations_command(args)
        command: Literal["plan", "run"] = args.command
        return _deploy_command(args, command)
    except (JobError, SeedError) as error:
        for line in str(error).splitlines():
            print(f"batch-deploy: {line}", file=sys.stderr)
        return EXIT_CANNOT_START
    except BatchDeployError as error:
        # A whole-run problem after the start (e.g. a state file that cannot be read).
        print(f"batch-deploy: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        print("batch-deploy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (``| head``); nothing more to say to it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PROBLEMS
