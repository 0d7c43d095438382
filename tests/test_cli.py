"""``batch-deploy`` as a user runs it: exit status, streams, reports, secrets, signals."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    QUICK_RETRIES,
    Ran,
    command,
    command_on_a_terminal,
    dead_url,
    deploys,
    environment,
    finish,
    load_json,
    report_texts,
    sandboxes,
    silent_listener,
    start,
    statuses,
    wait_until,
    write_job,
)
from jobkit import (
    ALL_INTEGRATIONS,
    AMBIGUOUS,
    API_KEY,
    DATABRICKS_A,
    KEY_ENV,
    ONE_SNOWFLAKE,
    SNOWFLAKE,
    TWO_REQUESTS,
    UNMATCHED,
    integration,
    seed,
    write_content,
)

from batch_deploy.cli import main
from batch_deploy.sandbox import SandboxOptions, parse_seed

CURRENT = seed("2025.11.0")
LEGACY = seed("2025.03.0")
ANCIENT = seed("2024.06.0")

VAULT = "0a7e5c1d-2b3f-4e6a-8c9d-1f2e3d4c5b6a"
CLIENT_SECRET = "CS-Qx81vT-never-printed"
PASSWORD = "PW-Lm42zR-never-printed"
NESTED_TOKEN = "RT-Jk77wB-never-printed"
VAULT_INTEGRATION = integration(
    VAULT,
    "Vault OAuth",
    "custom",
    "Viewer",
    auth_mode="Confidential",
    client_id="vault-client-7731",
    client_secret=CLIENT_SECRET,
    password=PASSWORD,
    extra={"refresh_token": NESTED_TOKEN, "region": "eu"},
)
SECRETS = (CLIENT_SECRET, PASSWORD, NESTED_TOKEN)


def five_kinds(root: Path) -> list[dict[str, object]]:
    """Content whose requests match, are ambiguous, miss, need two, or are absent."""
    write_content(root / "one", ONE_SNOWFLAKE)
    write_content(root / "two", TWO_REQUESTS)
    write_content(root / "dbx", AMBIGUOUS)
    write_content(root / "miss", UNMATCHED)
    write_content(root / "plain")
    return [{"dir": name} for name in ("one", "two", "dbx", "miss", "plain")]


def rows_of(document: dict[str, Any], content: str, server: str) -> dict[str, Any]:
    """The single results.json row of a pair that has one request or none."""
    found: list[dict[str, Any]] = [
        r for r in document["rows"] if (r["content"], r["server"]) == (content, server)
    ]
    (row,) = found
    return row


INTERRUPTED_LINE = (
    "batch-deploy: interrupted; cancelling what is in flight and writing the reports "
    "(Ctrl-C again quits at once)\n"
)


def reports_line(report_dir: Path) -> str:
    names = ("results.csv", "results.json", "report.html")
    return "reports: " + ", ".join(str(report_dir / name) for name in names) + "\n"


# --- in-process calls, where a subprocess buys nothing --------------------------------


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Ran]]:
    """``main(argv)`` with its output captured; the logging it configures is undone."""
    root = logging.getLogger()
    ours = logging.getLogger("batch_deploy")
    saved = (list(root.handlers), root.level, ours.level)

    def call(*argv: str) -> Ran:
        try:
            code = main(list(argv))
        except SystemExit as stop:  # argparse: --version, usage errors
            code = stop.code if isinstance(stop.code, int) else -1
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    yield call
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


def test_version(in_process: Callable[..., Ran], tmp_path: Path) -> None:
    assert in_process("--version") == Ran(0, "batch-deploy 0.1.0\n", "")
    # The console script is the same entry point.
    assert command("--version", cwd=tmp_path, launcher=("batch-deploy",)) == Ran(
        0, "batch-deploy 0.1.0\n", ""
    )


GOOD_JOB = """\
[run]
report_dir = "reports"

[servers.live]
url = "{url}"
api_key_env = "E2E_CONNECT_API_KEY"

[servers.spare]
url = "{url}"
api_key_env = "E2E_CONNECT_API_KEY"

[[content]]
dir = "one"
"""


@pytest.mark.parametrize(
    ("argv", "variables", "expected"),
    [
        pytest.param(
            ["plan", "jobs.toml", "--server", "lvie"],
            {KEY_ENV: API_KEY},
            'batch-deploy: --server: "lvie" is not a server in jobs.toml; '
            'did you mean "live"? (defined: live, spare)\n',
            id="unknown-server",
        ),
        pytest.param(
            ["run", "jobs.toml", "--content", "nothing*", "--server", "live", "--server", "x"],
            {KEY_ENV: API_KEY},
            'batch-deploy: --server: "x" is not a server in jobs.toml; use one of: live, spare\n'
            'batch-deploy: --content: "nothing*" matches no content name or folder in '
            "jobs.toml; use a glob matching one of: one\n",
            id="every-selection-problem-at-once",
        ),
        pytest.param(
            ["plan", "missing.toml"],
            {KEY_ENV: API_KEY},
            "batch-deploy: missing.toml: no such job file; check the path\n",
            id="missing-job-file",
        ),
        pytest.param(
            ["run", "jobs.toml"],
            {},
            "batch-deploy: jobs.toml:6: servers.live.api_key_env: environment variable "
            "E2E_CONNECT_API_KEY is not set; export E2E_CONNECT_API_KEY=<API key> first\n"
            "batch-deploy: jobs.toml:10: servers.spare.api_key_env: environment variable "
            "E2E_CONNECT_API_KEY is not set; export E2E_CONNECT_API_KEY=<API key> first\n",
            id="missing-key-variable",
        ),
        pytest.param(
            ["integrations", "jobs.toml", "--json"],
            {KEY_ENV: API_KEY},
            "batch-deploy: --json writes one server's sandbox seed; "
            "choose one with --server NAME (live, spare)\n",
            id="integrations-json-of-several-servers",
        ),
    ],
)
def test_a_job_that_cannot_start_exits_2_before_contacting_anything(
    in_process: Callable[..., Ran],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    variables: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    with silent_listener() as server:
        (tmp_path / "jobs.toml").write_text(GOOD_JOB.format(url=server.url))
        assert in_process(*argv) == Ran(2, "", expected)
        assert server.arrivals() == 0
        assert not (tmp_path / "reports").exists()
        # The probe does notice a connection.
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
        assert server.pending()
        assert server.arrivals() == 1


@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("--concurrency", "0", "argument --concurrency: expected 1 or more, got 0"),
        ("--per-server", "four", "argument --per-server: expected a whole number, got 'four'"),
        ("--ambiguous", "any", "argument --ambiguous: invalid choice: 'any' (choose from "),
    ],
)
def test_a_bad_option_exits_2_with_usage(
    in_process: Callable[..., Ran],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: str,
    complaint: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, API_KEY)
    with silent_listener() as server:
        (tmp_path / "jobs.toml").write_text(GOOD_JOB.format(url=server.url))
        ran = in_process("run", "jobs.toml", option, value)
        assert server.arrivals() == 0
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.startswith("usage: batch-deploy run ")
    assert ran.err.splitlines()[-1].startswith(f"batch-deploy run: error: {complaint}")


@pytest.mark.parametrize(
    ("argv", "seed_text", "state_text", "expected"),
    [
        pytest.param(
            ["run", "jobs.toml"],
            '{"version": "2025.11.0"}',
            None,
            "batch-deploy: {root}/box.json: integrations: is missing; list the server's "
            "integrations (an empty array [] for none), for example from "
            "`batch-deploy integrations --json`\n",
            id="bad-seed-run",
        ),
        pytest.param(
            ["integrations", "jobs.toml"],
            '{"version": "2025.11.0"}',
            None,
            "batch-deploy: {root}/box.json: integrations: is missing; list the server's "
            "integrations (an empty array [] for none), for example from "
            "`batch-deploy integrations --json`\n",
            id="bad-seed-integrations",
        ),
        pytest.param(
            ["run", "jobs.toml"],
            json.dumps(CURRENT),
            "{not json",
            "batch-deploy: {root}/reports/state.json: the state file of an earlier run "
            "cannot be used (not JSON); delete it to start afresh (the next run then looks "
            "content up by name)\n",
            id="bad-state",
        ),
    ],
)
def test_a_bad_seed_or_state_file_stops_the_job_before_any_server_is_asked(
    in_process: Callable[..., Ran],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    seed_text: str,
    state_text: str | None,
    expected: str,
) -> None:
    root = tmp_path.resolve()
    monkeypatch.chdir(root)
    monkeypatch.setenv(KEY_ENV, API_KEY)
    write_content(root / "one", ONE_SNOWFLAKE)
    (root / "box.json").write_text(seed_text)
    if state_text is not None:
        (root / "reports").mkdir()
        (root / "reports" / "state.json").write_text(state_text)
    with silent_listener() as server:
        (root / "jobs.toml").write_text(
            GOOD_JOB.format(url=server.url) + '[servers.box]\nsandbox = "box.json"\n'
        )
        ran = in_process(*argv)
        assert server.arrivals() == 0
    assert ran == Ran(2, "", expected.format(root=root))
    written = sorted(path.name for path in (root / "reports").iterdir()) if state_text else []
    assert written == (["state.json"] if state_text else [])


def test_a_bad_job_file_lists_every_problem_and_contacts_nothing(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    with silent_listener() as server:
        (tmp_path / "jobs.toml").write_text(
            "[run]\n"
            'report_dir = "reports"\n'
            "concurency = 3\n"
            "[servers.live]\n"
            f'url = "{server.url}"\n'
            f'api_key_env = "{KEY_ENV}"\n'
            "[[content]]\n"
            'dir = "one"\n'
            'servers = ["lve"]\n'
        )
        ran = command("run", "jobs.toml", cwd=tmp_path)
        (tmp_path / "broken.toml").write_text("[run\nconcurrency = 2\n")
        broken = command("plan", "broken.toml", cwd=tmp_path)
        assert server.arrivals() == 0
    assert ran == Ran(
        2,
        "",
        'batch-deploy: jobs.toml:3: run.concurency: unknown key; did you mean "concurrency"? '
        "(allowed: report_dir, concurrency, per_server, task_timeout, ambiguous, associate, "
        "skip_unchanged)\n"
        'batch-deploy: jobs.toml:9: content[0].servers: "lve" is not a defined server; '
        'did you mean "live"? (defined: live)\n',
    )
    assert broken == Ran(
        2,
        "",
        "batch-deploy: broken.toml:1:5: invalid TOML: Expected ']' at the end of a table "
        "declaration; fix the syntax there\n",
    )
    assert not (tmp_path / "reports").exists()


# --- plan and run ------------------------------------------------------------------


def test_plan_prints_only_the_table_and_exits_by_what_resolved(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    content = five_kinds(root)
    with sandboxes({"current": CURRENT, "legacy": LEGACY}) as servers:
        write_job(root, servers, content)
        clean = command("plan", "jobs.toml", "--content", "one", cwd=root)
        full = command("plan", "jobs.toml", "--json", "-vv", cwd=root)
        assert all(server.store.content == {} for server in servers.values())

    assert clean == Ran(
        0,
        "content  current  legacy\n"
        "-------  -------  -------\n"
        "one      planned  planned\n"
        "Total: 2 pairs (2 planned); 2 request rows (2 matched)\n",
        reports_line(root / "reports"),
    )

    assert full.code == 1
    # Logs go to stderr, so stdout is exactly the results.json document.
    debug = r"^DEBUG batch_deploy\.connect: current: GET /__api__/v1/user "
    assert re.search(debug, full.err, re.MULTILINE)
    assert full.err.endswith(reports_line(root / "reports"))
    assert full.out == (root / "reports" / "results.json").read_text(encoding="utf-8")
    document = json.loads(full.out)
    assert document["command"] == "plan"
    assert statuses(document) == {
        ("one", "current"): ["matched"],
        ("one", "legacy"): ["matched"],
        ("two", "current"): ["matched", "matched"],
        ("two", "legacy"): ["unsupported", "unsupported"],
        ("dbx", "current"): ["ambiguous"],
        ("dbx", "legacy"): ["ambiguous"],
        ("miss", "current"): ["unmatched"],
        ("miss", "legacy"): ["unmatched"],
        ("plain", "current"): ["none"],
        ("plain", "legacy"): ["none"],
    }
    assert set(deploys(document).values()) == {"planned", "blocked"}
    assert deploys(document)[("two", "legacy")] == "blocked"


def test_run_exit_status_and_selection_options(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    content = five_kinds(root)
    failing = SandboxOptions(task_failure_rate=1.0)
    with (
        sandboxes({"current": CURRENT}) as good,
        sandboxes({"broken": CURRENT}, options=failing) as bad,
    ):
        write_job(root, {**good, **bad}, content)
        store = good["current"].store
        chosen = command(
            "run",
            "jobs.toml",
            "--server",
            "current",
            "--content",
            "o*",
            "--content",
            "pla?n",
            "--report-dir",
            "elsewhere",
            cwd=root,
        )
        assert sorted(record.name for record in store.content.values()) == ["one", "plain"]
        assert bad["broken"].store.content == {}
        assert not (root / "reports").exists()

        everything = command("run", "jobs.toml", cwd=root)
        everything_doc = load_json(root / "reports" / "results.json")

        first = command(
            "run", "jobs.toml", "--ambiguous=first", "--content=dbx", "--server=current", "-q",
            cwd=root,
        )
        first_doc = load_json(root / "reports" / "results.json")
        associations = store.associations

    # --report-dir is relative to where the command runs.
    assert chosen == Ran(
        0,
        "content  current\n"
        "-------  --------\n"
        "one      deployed\n"
        "plain    deployed\n"
        "Total: 2 pairs (2 deployed); 2 request rows (1 matched, 1 none)\n",
        reports_line(root / "elsewhere"),
    )
    chosen_doc = load_json(root / "elsewhere" / "results.json")
    assert deploys(chosen_doc) == {("one", "current"): "deployed", ("plain", "current"): "deployed"}
    assert sorted(report_texts(root / "elsewhere")) == [
        "report.html",
        "results.csv",
        "results.json",
        "state.json",
    ]

    assert everything.code == 1
    found = deploys(everything_doc)
    # Found by name although this report_dir has no state: same bundle, no redeploy.
    assert found[("one", "current")] == "unchanged"
    assert found[("two", "current")] == "deployed"
    assert found[("dbx", "current")] == "blocked"
    assert found[("one", "broken")] == "failed"
    broken = rows_of(everything_doc, "one", "broken")
    assert broken["error"].endswith(f"; logs: {broken['dashboard_url']}/logs")

    assert first == Ran(
        0,
        "content  current\n"
        "-------  --------\n"
        "dbx      deployed\n"
        "Total: 1 pair (1 deployed); 1 request row (1 ambiguous)\n",
        "",  # -q: not even where the reports went
    )
    assert deploys(first_doc) == {("dbx", "current"): "deployed"}
    (dbx,) = first_doc["rows"]
    assert (dbx["status"], dbx["candidates"], dbx["integration_guid"]) == (
        "ambiguous",
        2,
        DATABRICKS_A,
    )
    assert [a.integration_guid for a in associations[dbx["content_guid"]]] == [DATABRICKS_A]


def test_sigint_cancels_in_flight_pairs_keeps_the_reports_and_resume_finishes(
    tmp_path: Path,
) -> None:
    root = tmp_path.resolve()
    names = [f"app-{index}" for index in range(4)]
    for name in names:
        write_content(root / name, ONE_SNOWFLAKE)
    slow = SandboxOptions(task_seconds=0.6)
    with sandboxes({"current": CURRENT}, options=slow) as servers:
        write_job(root, servers, [{"dir": name} for name in names], run={"concurrency": 1})
        store = servers["current"].store
        process = start("run", "jobs.toml", cwd=root)
        # Ctrl-C while the second deploy task runs: the first pair has finished.
        wait_until(lambda: len(store.tasks) >= 2, process)
        in_flight = [task for task in list(store.tasks.values()) if not task.finished]
        process.send_signal(signal.SIGINT)
        interrupted = finish(process)
        reports = report_texts(root / "reports")
        # The server finishes the task the client stopped waiting for.
        deadline = time.monotonic() + 30
        while not all(task.finished for task in in_flight) and time.monotonic() < deadline:
            time.sleep(0.01)

        resumed = command("run", "jobs.toml", "--resume", "--concurrency", "4", cwd=root)
        resumed_doc = load_json(root / "reports" / "results.json")
        created = sorted(record.name for record in store.content.values())

    assert interrupted.code == 130, interrupted
    assert interrupted.out == (
        "content  current\n"
        "-------  ---------\n"
        "app-0    deployed\n"
        "app-1    cancelled\n"
        "app-2    cancelled\n"
        "app-3    cancelled\n"
        "Total: 4 pairs (1 deployed, 3 cancelled); 4 request rows (4 matched)\n"
    )
    assert interrupted.err == (
        INTERRUPTED_LINE + reports_line(root / "reports")
    )
    document = json.loads(reports["results.json"])
    assert document["interrupted"] is True
    assert deploys(document) == {
        ("app-0", "current"): "deployed",
        ("app-1", "current"): "cancelled",
        ("app-2", "current"): "cancelled",
        ("app-3", "current"): "cancelled",
    }
    rows = {row["content"]: row for row in document["rows"]}
    # What the cancelled pipeline had learned is kept for the report.
    (task,) = in_flight
    assert (rows["app-1"]["content_guid"], rows["app-1"]["task_id"]) == (task.content_guid, task.id)
    assert rows["app-1"]["error"] == "interrupted before the deploy finished"
    assert reports["results.csv"].count(",cancelled,") == 3
    assert "cancelled" in reports["report.html"]
    state = json.loads(reports["state.json"])
    assert [(pair["content"], pair["server"]) for pair in state["pairs"]] == [("app-0", "current")]

    assert resumed.code == 0, resumed
    assert [deploys(resumed_doc)[(name, "current")] for name in names] == [
        "skipped",  # state.json says it finished with this bundle
        "unchanged",  # the server activated the bundle of the interrupted task
        "deployed",
        "deployed",
    ]
    resumed_rows = {row["content"]: row for row in resumed_doc["rows"]}
    assert resumed_rows["app-0"]["content_guid"] == rows["app-0"]["content_guid"]
    assert resumed_rows["app-1"]["content_guid"] == rows["app-1"]["content_guid"]
    assert created == names  # no twins


def test_sigint_before_a_server_answers_still_reports_every_pair(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one", ONE_SNOWFLAKE)
    with silent_listener() as server:
        (root / "jobs.toml").write_text(GOOD_JOB.format(url=server.url))
        process = start("plan", "jobs.toml", cwd=root)
        wait_until(server.pending, process)
        process.send_signal(signal.SIGINT)
        interrupted = finish(process)
    assert interrupted == Ran(
        130,
        "content  live       spare\n"
        "-------  ---------  ---------\n"
        "one      cancelled  cancelled\n"
        "Total: 2 pairs (2 cancelled); 2 request rows (2 unreachable)\n",
        INTERRUPTED_LINE + reports_line(root / "reports"),
    )
    document = load_json(root / "reports" / "results.json")
    assert document["interrupted"] is True
    assert {row["reason"] for row in document["rows"]} == {
        "interrupted before this server answered"
    }


def test_sigint_stops_integrations_while_a_server_is_silent(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    with silent_listener() as server:
        (tmp_path / "jobs.toml").write_text(GOOD_JOB.format(url=server.url))
        process = start("integrations", "jobs.toml", cwd=tmp_path)
        try:
            wait_until(server.pending, process)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=3)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert (process.returncode, out) == (130, "")
    assert "Traceback" not in err


def test_concurrency_options_override_the_job_file(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    batches = {"wide": ["wide-0", "wide-1", "wide-2"], "narrow": ["narrow-0", "narrow-1"]}
    for name in batches["wide"] + batches["narrow"]:
        write_content(root / name, ONE_SNOWFLAKE)
    content = [{"dir": name} for name in batches["wide"] + batches["narrow"]]
    slow = SandboxOptions(task_seconds=0.3)
    peaks: dict[str, int] = {}
    results: dict[str, Ran] = {}
    with sandboxes({"current": CURRENT}, options=slow) as servers:
        write_job(root, servers, content, run={"concurrency": 1, "per_server": 2})
        store = servers["current"].store
        for batch, options in (
            ("wide", ["--concurrency", "3"]),
            ("narrow", ["--concurrency", "3", "--per-server", "1"]),
        ):
            process = start("run", "jobs.toml", "--content", f"{batch}-*", *options, cwd=root)
            peak = 0
            deadline = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < deadline:
                running = sum(1 for task in list(store.tasks.values()) if not task.finished)
                peak = max(peak, running)
                time.sleep(0.005)
            peaks[batch] = peak
            results[batch] = finish(process)

    assert {batch: ran.code for batch, ran in results.items()} == {"wide": 0, "narrow": 0}
    # The job file's concurrency of 1 gave way to 3, leaving per_server = 2 to bind;
    # then --per-server 1 bound instead.
    assert peaks == {"wide": 2, "narrow": 1}


def test_progress_bars_only_on_a_terminal_and_never_with_no_progress(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one", ONE_SNOWFLAKE)
    write_content(root / "plain")
    with sandboxes({"current": CURRENT}) as servers:
        write_job(root, servers, [{"dir": "one"}, {"dir": "plain"}])
        terminal = command_on_a_terminal("run", "jobs.toml", cwd=root)
        quiet_terminal = command_on_a_terminal("run", "jobs.toml", "--no-progress", cwd=root)
        piped = command("run", "jobs.toml", cwd=root)

    table = (
        "content  current\n"
        "-------  {rule}\n"
        "one      {0}\n"
        "plain    {0}\n"
        "Total: 2 pairs (2 {0}); 2 request rows (1 matched, 1 none)\n"
    )
    assert (terminal.code, terminal.out) == (0, table.format("deployed", rule="-" * 8))
    # One bar per phase, drawn with carriage returns, counting to its total.
    for phase, total in (("servers", 1), ("bundles", 2), ("deploys", 2)):
        assert re.search(rf"\r{phase}: 100%\|[^\r\n]*\| {total}/{total} ", terminal.err), phase
    assert terminal.err.endswith(reports_line(root / "reports").replace("\n", "\r\n"))

    unchanged = table.format("unchanged", rule="-" * 9)
    reports = reports_line(root / "reports")
    assert quiet_terminal == Ran(0, unchanged, reports.replace("\n", "\r\n"))
    assert piped == Ran(0, unchanged, reports)


# --- secrets -------------------------------------------------------------------------

GOOD_KEY = "lc-GOOD-9Qw2xK7zT4tv1Pq"
WRONG_KEY = "lc-WRONG-3Hn8pR5vY6yw2Lm"
VAULT_REQUEST: list[dict[str, Any]] = [
    {"type": "custom", "name": "^Vault", "config": {"auth_mode": "Confidential"}}
]


def test_no_api_key_or_config_secret_is_written_anywhere(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one", ONE_SNOWFLAKE)
    write_content(root / "vault", VAULT_REQUEST)
    vaulted = seed("2025.11.0", integrations=[*ALL_INTEGRATIONS, VAULT_INTEGRATION])
    env = environment({"GOOD_KEY_VAR": GOOD_KEY, "WRONG_KEY_VAR": WRONG_KEY})
    with sandboxes({"good": vaulted, "badkey": vaulted}, api_key=GOOD_KEY) as servers:
        (root / "jobs.toml").write_text(
            '[run]\nreport_dir = "reports"\n'
            f'[servers.good]\nurl = "{servers["good"].url}"\napi_key_env = "GOOD_KEY_VAR"\n'
            f'[servers.badkey]\nurl = "{servers["badkey"].url}"\napi_key_env = "WRONG_KEY_VAR"\n'
            f'[servers.down]\nurl = "{dead_url()}"\napi_key_env = "GOOD_KEY_VAR"\n'
            '[[content]]\ndir = "one"\n[[content]]\ndir = "vault"\n'
        )
        ran = {
            "run": command("run", "jobs.toml", "-vv", cwd=root, env=env, launcher=QUICK_RETRIES),
            "plan": command(
                "plan", "jobs.toml", "-vv", "--json", cwd=root, env=env, launcher=QUICK_RETRIES
            ),
            "integrations": command(
                "integrations", "jobs.toml", "-vv", cwd=root, env=env, launcher=QUICK_RETRIES
            ),
        }
        reports = report_texts(root / "reports")
        assert servers["badkey"].store.content == {}

    assert {name: done.code for name, done in ran.items()} == {
        "run": 1,
        "plan": 1,
        "integrations": 1,
    }
    # The debug log really ran, including the request the key was refused on.
    assert "DEBUG batch_deploy.connect: good: POST /__api__/v1/content " in ran["run"].err
    assert "DEBUG batch_deploy.connect: badkey: GET /__api__/v1/user -> 401 " in ran["run"].err
    assert sorted(reports) == ["report.html", "results.csv", "results.json", "state.json"]
    document = json.loads(reports["results.json"])
    assert document["command"] == "plan"  # the last command's reports
    assert statuses(document)[("one", "badkey")] == ["unreachable"]
    assert statuses(document)[("one", "down")] == ["unreachable"]
    assert statuses(document)[("vault", "good")] == ["matched"]
    badkey = rows_of(document, "one", "badkey")
    assert badkey["reason"].endswith("the API key is not valid for this server.); "
                                     "check the key in $WRONG_KEY_VAR")
    state = json.loads(reports["state.json"])
    assert {(pair["content"], pair["server"]) for pair in state["pairs"]} == {
        ("one", "good"),
        ("vault", "good"),
    }
    assert f"  {VAULT}  Vault OAuth  type=custom  " in ran["integrations"].out
    assert ran["integrations"].err.count(": unreachable: ") == 2

    written = {f"{name} {stream}": getattr(done, stream) for name, done in ran.items()
               for stream in ("out", "err")}
    written.update(reports)
    for where, text in written.items():
        for secret in (GOOD_KEY, WRONG_KEY, *SECRETS):
            assert secret not in text, (secret, where)


# --- integrations --------------------------------------------------------------------


def test_integrations_lists_each_server_with_secrets_redacted(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one", ONE_SNOWFLAKE)
    vaulted = seed("2025.09.0", integrations=[ALL_INTEGRATIONS[0], VAULT_INTEGRATION])
    # A third server whose key is not set: only a selection without it can run.
    closed = '[servers.closed]\nurl = "https://connect.invalid"\napi_key_env = "CLOSED_KEY"\n'
    with sandboxes({"vaulted": vaulted, "ancient": ANCIENT}) as servers:
        job = write_job(root, servers, [{"dir": "one"}], extra_servers=closed)
        listed = command(
            "integrations", "jobs.toml", "--server", "vaulted", "--server", "ancient", cwd=root
        )
        unselected = command("integrations", "jobs.toml", cwd=root)
        urls = {name: server.url for name, server in servers.items()}

    line = job.read_text().splitlines().index('api_key_env = "CLOSED_KEY"') + 1
    assert unselected == Ran(
        2,
        "",
        f"batch-deploy: jobs.toml:{line}: servers.closed.api_key_env: environment variable "
        "CLOSED_KEY is not set; export CLOSED_KEY=<API key> first\n",
    )

    assert listed == Ran(
        0,
        f"vaulted ({urls['vaulted']}, Connect 2025.09.0): 2 integration(s)\n"
        f"  {SNOWFLAKE}  Snowflake production  type=snowflake  auth_type=Viewer  "
        'config={"client_id":"abc"}\n'
        f"  {VAULT}  Vault OAuth  type=custom  auth_type=Viewer  "
        'config={"auth_mode":"Confidential","client_id":"vault-client-7731",'
        '"client_secret":"<redacted>","extra":{"refresh_token":"<redacted>","region":"eu"},'
        '"password":"<redacted>"}\n'
        f"ancient ({urls['ancient']}, Connect 2024.06.0): no integrations API\n",
        "",
    )


def test_integrations_json_is_a_seed_that_rehearses_the_plan_offline(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    content: list[dict[str, object]] = [*five_kinds(root), {"dir": "vault"}]
    write_content(root / "vault", VAULT_REQUEST)
    live_seed = seed("2025.03.0", integrations=[*ALL_INTEGRATIONS, VAULT_INTEGRATION])
    with sandboxes({"live": live_seed, "other": CURRENT}) as servers:
        write_job(root, servers, content)
        exported = command("integrations", "jobs.toml", "--server", "live", "--json", cwd=root)
        live = command("plan", "jobs.toml", "--server", "live", "--json", cwd=root)

    assert exported.code == 0, exported
    assert exported.err == ""
    for secret in SECRETS:
        assert secret not in exported.out
    rehearsal_seed = parse_seed(exported.out, "rehearsal.json")
    assert rehearsal_seed.version == "2025.03.0"
    assert [i.guid for i in rehearsal_seed.integrations] == [
        *(item["guid"] for item in ALL_INTEGRATIONS),
        VAULT,
    ]
    assert rehearsal_seed.user.role == "publisher"

    (root / "rehearsal.json").write_text(exported.out)
    rehearsal_job = (root / "jobs.toml").read_text().split("[[content]]", 1)[1]
    (root / "offline.toml").write_text(
        '[run]\nreport_dir = "offline"\n[servers.live]\nsandbox = "rehearsal.json"\n'
        "[[content]]" + rehearsal_job
    )
    # No key anywhere: the embedded sandbox needs none.
    offline = command("plan", "offline.toml", "--json", cwd=root, env=environment({}))

    assert (live.code, offline.code) == (1, 1)
    live_rows = json.loads(live.out)["rows"]
    assert json.loads(offline.out)["rows"] == live_rows
    assert statuses(json.loads(live.out)) == {
        ("one", "live"): ["matched"],
        ("two", "live"): ["unsupported", "unsupported"],
        ("dbx", "live"): ["ambiguous"],
        ("miss", "live"): ["unmatched"],
        ("plain", "live"): ["none"],
        ("vault", "live"): ["matched"],
    }


# --- the sandbox command ----------------------------------------------------------------

SANDBOX_KEY = "sbx-key-Vq3LmT8w"


def test_sandbox_command_serves_until_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "seed.json").write_text(json.dumps(CURRENT))
    env = environment({"CONNECT_API_KEY": SANDBOX_KEY})
    process = start(
        "sandbox", "--seed", "seed.json", "--port", "0", "--latency", "0.2",
        "--task-seconds", "0.1", "--sticky-cookies", cwd=tmp_path, env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.fullmatch(
            r"Connect sandbox serving at (http://127\.0\.0\.1:(\d+)) \(Ctrl-C stops it\)\n", first
        )
        assert found is not None, first
        url = found[1]
        assert int(found[2]) > 0
        began = time.monotonic()
        with urllib.request.urlopen(f"{url}/__api__/server_settings", timeout=10) as answer:
            settings = json.loads(answer.read())
        assert time.monotonic() - began >= 0.2  # --latency took effect
        assert settings["version"] == "2025.11.0"
        request = urllib.request.Request(f"{url}/__api__/v1/user")
        request.add_header("Authorization", f"Key {SANDBOX_KEY}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["username"] == "deployer"
        process.send_signal(signal.SIGINT)
    finally:
        stopped = finish(process)
    assert stopped == Ran(0, "", "")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["sandbox", "--seed", "seed.json"],
            "batch-deploy: --api-key-env: the variable CONNECT_API_KEY is not set; "
            "export CONNECT_API_KEY=<a key of your choice> for the sandbox to accept\n",
            id="no-key",
        ),
        pytest.param(
            ["sandbox", "--seed", "seed.json", "--api-key-env", "MY_SANDBOX_KEY"],
            "batch-deploy: --api-key-env: the variable MY_SANDBOX_KEY is not set; "
            "export MY_SANDBOX_KEY=<a key of your choice> for the sandbox to accept\n",
            id="no-key-in-the-named-variable",
        ),
    ],
)
def test_sandbox_command_without_its_key_exits_2(
    in_process: Callable[..., Ran],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONNECT_API_KEY", raising=False)
    monkeypatch.delenv("MY_SANDBOX_KEY", raising=False)
    (tmp_path / "seed.json").write_text(json.dumps(CURRENT))
    assert in_process(*argv) == Ran(2, "", expected)


def test_sandbox_command_with_a_bad_seed_exits_2(
    in_process: Callable[..., Ran], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONNECT_API_KEY", SANDBOX_KEY)
    (tmp_path / "seed.json").write_text('{"integrations": 3, "hostnme": "x"}')
    assert in_process("sandbox", "--seed", "seed.json") == Ran(
        2,
        "",
        "batch-deploy: seed.json: hostnme: unknown key; remove it (allowed keys: version, "
        "hostname, oauth_integrations_enabled, license, user, integrations, content)\n"
        "batch-deploy: seed.json: integrations: is a number; write an array of integration "
        "objects\n",
    )
