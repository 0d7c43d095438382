"""The README's commands, run as a newcomer would type them.

Every command in a ``sh`` block of README.md must be known here and is run
(in a copy of the shipped example, so the checkout stays clean); a command
added to the README without a test fails ``test_every_readme_command_is_exercised``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from batch_deploy.errors import JobError
from batch_deploy.jobs import parse_job

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def readme_commands() -> list[str]:
    return [line.strip() for block in blocks("sh") for line in block.splitlines() if line.strip()]


QUICK_START_INSTALL = "python -m pip install -e '.[test]' && batch-deploy run jobs.toml"
TEST_COMMAND = "python -m pytest"
KNOWN = {
    QUICK_START_INSTALL,
    TEST_COMMAND,
    "batch-deploy plan jobs.toml",
    "batch-deploy run jobs.toml",
    "batch-deploy integrations jobs.toml --server current",
    "batch-deploy integrations jobs.toml --server current --json > rehearsal-seed.json",
    "CONNECT_API_KEY=rehearsal-key batch-deploy sandbox"
    " --seed examples/servers/current.json --port 3939",
    "batch-deploy run jobs.toml --resume",
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The shipped job and its examples, copied so reports land in tmp_path."""
    shutil.copy(REPO / "jobs.toml", tmp_path / "jobs.toml")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    return tmp_path


def sh(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def csv_rows(report_dir: Path) -> list[dict[str, str]]:
    with (report_dir / "results.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_readme_command_is_exercised() -> None:
    assert set(readme_commands()) == KNOWN


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci
    assert TEST_COMMAND in readme_commands()


def test_quick_start_run_shows_every_outcome(example: Path) -> None:
    # The install half is what .ci/run does on a fresh machine; here it is installed.
    run_part = QUICK_START_INSTALL.split(" && ")[1]
    done = sh(run_part, example)
    assert done.returncode == 1, done.stderr  # blocked pairs, on purpose
    rows = csv_rows(example / "reports")
    by_pair: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        by_pair.setdefault((row["content"], row["server"]), []).append(row["status"])
    assert by_pair[("revenue-api", "current")] == ["matched"]
    assert by_pair[("revenue-api", "legacy")] == ["matched"]
    assert by_pair[("sales-dashboard", "current")] == ["matched", "matched"]
    assert by_pair[("sales-dashboard", "legacy")] == ["unsupported", "unsupported"]
    assert by_pair[("demand-forecast", "current")] == ["ambiguous"]
    assert by_pair[("warehouse-report", "current")] == ["unmatched"]
    assert by_pair[("azure-notebook", "current")] == ["invalid"]
    assert by_pair[("handbook", "current")] == ["none"]
    near_miss = next(
        r for r in rows if (r["content"], r["server"]) == ("warehouse-report", "current")
    )
    assert near_miss["reason"] == (
        'no integration matches; closest is "Snowflake staging" '
        '(7a41c2de-5b9f-4d3e-8c21-0e6f5a4b3c2d): auth_type is "Service Account", not "Viewer"'
    )
    deploys = {(r["content"], r["server"]): r["deploy"] for r in rows}
    assert set(deploys.values()) == {"deployed", "blocked"}
    for name in ("results.csv", "results.json", "report.html", "state.json"):
        assert (example / "reports" / name).is_file()
    assert "Total: 12 pairs (6 blocked, 6 deployed)" in done.stdout

    resumed = sh("batch-deploy run jobs.toml --resume", example)
    assert resumed.returncode == 1, resumed.stderr
    after = {(r["content"], r["server"]): r["deploy"] for r in csv_rows(example / "reports")}
    # The embedded sandboxes start afresh each run, so --resume skips what state.json
    # says is done rather than asking the servers.
    assert {after[pair] for pair, deploy in deploys.items() if deploy == "deployed"} == {"skipped"}


def test_plan_deploys_nothing_then_run_deploys_what_passes(example: Path) -> None:
    done = sh("batch-deploy plan jobs.toml", example)
    assert done.returncode == 1  # the example's blocked pairs
    assert not (example / "reports" / "state.json").exists()
    assert {r["deploy"] for r in csv_rows(example / "reports")} == {"planned", "blocked"}

    again = sh("batch-deploy run jobs.toml", example)
    assert again.returncode == 1
    assert {r["deploy"] for r in csv_rows(example / "reports")} == {"deployed", "blocked"}


def test_integrations_and_the_offline_rehearsal(example: Path) -> None:
    listed = sh("batch-deploy integrations jobs.toml --server current", example)
    assert listed.returncode == 0, listed.stderr
    assert "Snowflake production" in listed.stdout
    assert "sandbox-only-not-a-real-secret" not in listed.stdout
    assert '"client_secret":"<redacted>"' in listed.stdout

    seeded = sh(
        "batch-deploy integrations jobs.toml --server current --json > rehearsal-seed.json",
        example,
    )
    assert seeded.returncode == 0, seeded.stderr
    seed = json.loads((example / "rehearsal-seed.json").read_text())
    assert len(seed["integrations"]) == 7

    # The job file the README describes: the server becomes `sandbox = ...`.
    job = (example / "jobs.toml").read_text()
    job = job.replace(
        'sandbox = "examples/servers/current.json"', 'sandbox = "rehearsal-seed.json"'
    )
    (example / "rehearsal.toml").write_text(job)
    original = sh("batch-deploy plan jobs.toml --server current", example)
    rehearsed = sh("batch-deploy plan rehearsal.toml --server current", example)
    assert original.returncode == rehearsed.returncode == 1
    assert original.stdout.split("reports:")[0] == rehearsed.stdout.split("reports:")[0]


def test_sandbox_command_serves_until_interrupted(example: Path) -> None:
    (command,) = [c for c in readme_commands() if " sandbox " in c]
    # Port 0 instead of 3939: the test must not depend on a free fixed port.
    command = command.replace("--port 3939", "--port 0")
    env_part, rest = command.split(" ", 1)
    name, value = env_part.split("=")
    process = subprocess.Popen(
        [str(BIN / "batch-deploy"), *rest.split()[1:]],
        cwd=example,
        env={**os.environ, name: value},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.match(
            r"Connect sandbox serving at (http://127\.0\.0\.1:\d+) \(Ctrl-C stops it\)", line
        )
        assert found, line
        request = urllib.request.Request(
            found.group(1) + "/__api__/v1/user", headers={"Authorization": f"Key {value}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["username"] == "release-bot"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_real_server_job_file_in_the_readme_is_valid(tmp_path: Path) -> None:
    (example,) = [b for b in blocks("toml") if "[servers.staging]" in b]
    (tmp_path / "content" / "sales-dashboard").mkdir(parents=True)
    (tmp_path / "apps" / "reports-app").mkdir(parents=True)
    job = parse_job(
        example,
        tmp_path / "jobs.toml",
        {"STAGING_CONNECT_API_KEY": "k"},
        glob=lambda pattern: sorted(str(p) for p in Path("/").glob(pattern.lstrip("/"))),
    )
    assert [c.name for c in job.content] == ["sales-dashboard", "reports-app"]
    assert job.servers["staging"].url == "https://connect-staging.example.com"
    with pytest.raises(JobError) as missing:
        parse_job(example, tmp_path / "jobs.toml", {})
    assert "STAGING_CONNECT_API_KEY" in str(missing.value)


def test_the_error_shown_in_the_readme_is_what_a_user_gets() -> None:
    (shown,) = [
        line for b in blocks("text") for line in b.splitlines() if "servers.prod.url" in line
    ]
    text = "\n" * 10 + '[servers.prod]\nurl = 42\napi_key_env = "K"\n[[content]]\ndir = "x"\n'
    with pytest.raises(JobError) as error:
        parse_job(text, Path("jobs.toml"), {"K": "k"})
    assert f"batch-deploy: {error.value.problems[0]}" == shown
