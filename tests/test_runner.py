"""plan and run end to end against sandboxes of different Connect versions."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest
from jobkit import (
    AMBIGUOUS,
    API_KEY,
    DATABRICKS_A,
    KEY_ENV,
    KEYCLOAK,
    ONE_SNOWFLAKE,
    SNOWFLAKE,
    TWO_REQUESTS,
    UNMATCHED,
    VISITOR,
    fleet,
    seed,
    write_content,
)

from batch_deploy.connect import RetryPolicy
from batch_deploy.jobs import Job, load_job
from batch_deploy.results import PairOutcome, Row, RunResult
from batch_deploy.runner import PairFinished, PhaseStarted, execute, write_reports
from batch_deploy.sandbox import SandboxOptions

pytestmark = pytest.mark.anyio

CURRENT = seed("2025.11.0")
MID = seed("2025.07.0")
LEGACY = seed("2025.03.0")
ANCIENT = seed("2024.06.0")


# Retries as in production, minus the waiting.
FAST = RetryPolicy(attempts=8, timeout=20.0, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)


async def go(job: Job, **options: Any) -> RunResult:
    return await execute(job, retry=FAST, **options)


def outcome(result: RunResult, content: str, server: str) -> PairOutcome:
    (found,) = [o for o in result.outcomes if (o.content, o.server) == (content, server)]
    return found


def rows(result: RunResult, content: str, server: str) -> list[Row]:
    return [r for r in result.rows if (r.content, r.server) == (content, server)]


def statuses(result: RunResult, content: str, server: str) -> list[str]:
    return [r.status for r in rows(result, content, server)]


def standard_content(root: Path) -> list[dict[str, object]]:
    write_content(root / "one", ONE_SNOWFLAKE)
    write_content(root / "two", TWO_REQUESTS)
    write_content(root / "dbx", AMBIGUOUS)
    write_content(root / "plain")
    write_content(root / "miss", UNMATCHED)
    return [{"dir": name} for name in ("one", "two", "dbx", "plain", "miss")]


async def test_plan_resolves_every_request_on_every_server_and_deploys_nothing(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, {"current": CURRENT, "legacy": LEGACY, "ancient": ANCIENT}) as f:
        result = await go(f.job(standard_content(tmp_path)), command="plan")
        for server in f.servers.values():
            assert server.store.content == {}

    assert statuses(result, "one", "current") == ["matched"]
    assert statuses(result, "one", "legacy") == ["matched"]
    assert statuses(result, "one", "ancient") == ["unsupported"]
    assert statuses(result, "two", "current") == ["matched", "matched"]
    # Below 2025.07.0 one content item can hold one integration only.
    assert statuses(result, "two", "legacy") == ["unsupported", "unsupported"]
    assert statuses(result, "dbx", "current") == ["ambiguous"]
    assert statuses(result, "plain", "current") == ["none"]
    assert statuses(result, "miss", "current") == ["unmatched"]
    assert outcome(result, "one", "current").deploy == "planned"
    assert outcome(result, "two", "legacy").deploy == "blocked"
    assert outcome(result, "dbx", "current").deploy == "blocked"
    assert outcome(result, "plain", "ancient").deploy == "planned"

    (one,) = rows(result, "one", "current")
    assert (one.integration_guid, one.integration_name, one.candidates) == (
        SNOWFLAKE,
        "Snowflake production",
        1,
    )
    (legacy_two, _) = rows(result, "two", "legacy")
    assert "2025.07.0" in legacy_two.reason
    (miss,) = rows(result, "miss", "current")
    assert miss.reason.startswith('no integration matches; closest is "Snowflake production"')
    assert {s.name: s.integration_count for s in result.meta.servers} == {
        "current": 5,
        "legacy": 5,
        "ancient": None,
    }


async def test_run_deploys_what_passes_and_reads_back_associations(tmp_path: Path) -> None:
    content = [*standard_content(tmp_path)]
    async with fleet(tmp_path, {"current": CURRENT, "mid": MID}) as f:
        job = f.job(content)
        result = await go(job, command="run")
        current_store = f.servers["current"].store
        mid_store = f.servers["mid"].store

        two_current = outcome(result, "two", "current")
        two_mid = outcome(result, "two", "mid")
        assert two_current.deploy == "deployed"
        assert two_mid.deploy == "deployed"
        # 2025.11.0 associates from the manifest by itself; 2025.07.0 needs our PUT.
        assert set(two_current.associated or ()) == {KEYCLOAK, VISITOR}
        assert set(two_mid.associated or ()) == {KEYCLOAK, VISITOR}
        assert two_current.drift is False
        assert two_mid.drift is False
        assert {
            a.integration_guid for a in current_store.associations[two_current.content_guid]
        } == {
            KEYCLOAK,
            VISITOR,
        }
        assert outcome(result, "dbx", "current").deploy == "blocked"
        assert outcome(result, "miss", "mid").deploy == "blocked"
        plain = outcome(result, "plain", "current")
        assert plain.deploy == "deployed"
        assert plain.drift is None
        assert plain.dashboard_url.endswith(f"/connect/#/apps/{plain.content_guid}")
        deployed_names = sorted(record.name for record in mid_store.content.values())
        assert deployed_names == ["one", "plain", "two"]

    state = json.loads((tmp_path / "reports" / "state.json").read_text())
    assert state["version"] == 1
    assert len(state["pairs"]) == 6


async def test_explicit_association_puts_the_resolved_set(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        job = f.job([{"dir": "one"}], run={"associate": "explicit"})
        result = await go(job, command="run")
        done = outcome(result, "one", "current")
        assert done.deploy == "deployed"
        assert done.associated == (SNOWFLAKE,)
        assert done.drift is False


async def test_server_association_on_an_old_server_is_unsupported(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"mid": MID}) as f:
        job = f.job([{"dir": "one"}], run={"associate": "server"})
        result = await go(job, command="plan")
    (row,) = rows(result, "one", "mid")
    assert row.status == "unsupported"
    assert outcome(result, "one", "mid").deploy == "blocked"


async def test_hidden_version_counts_as_current_unless_pinned(tmp_path: Path) -> None:
    write_content(tmp_path / "two", TWO_REQUESTS)
    async with fleet(tmp_path, {"hidden": seed("")}) as f:
        result = await go(f.job([{"dir": "two"}]), command="plan")
        assert statuses(result, "two", "hidden") == ["matched", "matched"]
        assert result.meta.servers[0].version == ""
        text = (
            (tmp_path / "jobs.toml")
            .read_text()
            .replace(
                'api_key_env = "E2E_CONNECT_API_KEY"',
                'api_key_env = "E2E_CONNECT_API_KEY"\nversion = "2025.03.0"',
            )
        )
        (tmp_path / "jobs.toml").write_text(text)
        pinned = load_job(tmp_path / "jobs.toml", {KEY_ENV: API_KEY})
        result = await go(pinned, command="plan")
    assert statuses(result, "two", "hidden") == ["unsupported", "unsupported"]
    assert result.meta.servers[0].version == "2025.03.0"


async def test_ambiguous_first_takes_the_servers_first_candidate(tmp_path: Path) -> None:
    write_content(tmp_path / "dbx", AMBIGUOUS)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        blocked = await go(f.job([{"dir": "dbx"}]), command="run")
        first = await go(f.job([{"dir": "dbx"}], run={"ambiguous": "first"}), command="run")
    assert outcome(blocked, "dbx", "current").deploy == "blocked"
    (row,) = rows(first, "dbx", "current")
    assert (row.status, row.candidates, row.integration_guid) == ("ambiguous", 2, DATABRICKS_A)
    done = outcome(first, "dbx", "current")
    assert done.deploy == "deployed"
    assert done.associated == (DATABRICKS_A,)


async def test_faults_are_retried_without_creating_twins(tmp_path: Path) -> None:
    for index in range(6):
        write_content(tmp_path / f"app-{index}", ONE_SNOWFLAKE)
    # No dropped connections here: see the next test for why they cannot all recover.
    faults = SandboxOptions(
        error_rate=0.15,
        rate_limit=400,
        retry_after=0.05,
        sticky_cookies=True,
        random_seed=7,
    )
    async with fleet(tmp_path, {"current": CURRENT}, faults) as f:
        job = f.job([{"dir": f"app-{index}"} for index in range(6)], run={"per_server": 3})
        result = await go(job, command="run")
        names = [record.name for record in f.servers["current"].store.content.values()]
    assert [o.deploy for o in result.outcomes] == ["deployed"] * 6, [
        o.error for o in result.outcomes
    ]
    assert sorted(names) == sorted(set(names)) == [f"app-{index}" for index in range(6)]


async def test_dropped_connections_never_make_twins(tmp_path: Path) -> None:
    for index in range(6):
        write_content(tmp_path / f"app-{index}", ONE_SNOWFLAKE)
    faults = SandboxOptions(drop_rate=0.1, sticky_cookies=True, random_seed=3)
    async with fleet(tmp_path, {"current": CURRENT}, faults) as f:
        job = f.job([{"dir": f"app-{index}"} for index in range(6)], run={"per_server": 3})
        result = await go(job, command="run")
        names = [record.name for record in f.servers["current"].store.content.values()]
    assert sorted(names) == sorted(set(names))
    for done in result.outcomes:
        if done.deploy == "failed":
            # A deploy POST whose connection dropped may have started a task, so it
            # is not repeated; everything else recovers by retrying.
            where = f"current: POST /__api__/v1/content/{done.content_guid}/deploy: "
            assert done.error.startswith(where), done.error
        else:
            assert done.deploy == "deployed", done.error


async def test_unreachable_servers_do_not_stop_the_others(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    dead = dead_port()
    async with fleet(
        tmp_path, {"current": CURRENT, "viewer": seed("2025.11.0", role="viewer")}
    ) as f:
        extra = (
            f'[servers.down]\nurl = "http://127.0.0.1:{dead}"\napi_key_env = "{KEY_ENV}"\n'
            f'[servers.badkey]\nurl = "{f.servers["current"].url}"\napi_key_env = "WRONG_KEY"\n'
        )
        job = f.job([{"dir": "one"}], extra_servers=extra, environ={"WRONG_KEY": "not-the-key"})
        result = await go(job, command="run")
    assert outcome(result, "one", "current").deploy == "deployed"
    down = rows(result, "one", "down")[0]
    assert down.status == "unreachable"
    assert down.reason == (
        f"down: GET /__api__/server_settings: cannot connect to 127.0.0.1:{dead} "
        "(Connection refused); check url and that the server is running"
    )
    viewer = rows(result, "one", "viewer")[0]
    assert viewer.reason == (
        "viewer: the API key belongs to 'deployer', a viewer; "
        "deploying needs a publisher or administrator key"
    )
    badkey = rows(result, "one", "badkey")[0]
    assert badkey.status == "unreachable"
    assert badkey.reason == (
        "badkey: GET /__api__/v1/user: the API key was rejected (401, Connect code 30: "
        "We couldn't log you in with the provided credentials: the API key is not valid "
        "for this server.); check the key in $WRONG_KEY"
    )
    assert "not-the-key" not in json.dumps([r.reason for r in result.rows])
    assert {o.server: o.deploy for o in result.outcomes} == {
        "current": "deployed",
        "viewer": "blocked",
        "down": "blocked",
        "badkey": "blocked",
    }


async def test_rerun_redeploys_into_the_same_items_and_skips_unchanged(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        first = await go(f.job([{"dir": "one"}]), command="run")
        again = await go(f.job([{"dir": "one"}]), command="run")
        write_content(tmp_path / "one", ONE_SNOWFLAKE, files={"app.py": b"print(2)\n"})
        changed = await go(f.job([{"dir": "one"}]), command="run")
        store = f.servers["current"].store
        assert len(store.content) == 1
        assert len(store.bundles) == 2

    guid = outcome(first, "one", "current").content_guid
    assert outcome(first, "one", "current").deploy == "deployed"
    unchanged = outcome(again, "one", "current")
    assert (unchanged.deploy, unchanged.content_guid) == ("unchanged", guid)
    assert unchanged.associated == (SNOWFLAKE,)
    redeployed = outcome(changed, "one", "current")
    assert (redeployed.deploy, redeployed.content_guid) == ("deployed", guid)


async def test_stop_cancels_in_flight_pairs_and_resume_finishes_the_rest(tmp_path: Path) -> None:
    for index in range(4):
        write_content(tmp_path / f"app-{index}", ONE_SNOWFLAKE)
    content = [{"dir": f"app-{index}"} for index in range(4)]
    slow = SandboxOptions(task_seconds=0.4)
    async with fleet(tmp_path, {"current": CURRENT}, slow) as f:
        job = f.job(content, run={"per_server": 1, "concurrency": 1})
        stop = anyio.Event()

        def on_event(event: object) -> None:
            if isinstance(event, PairFinished) and event.outcome.deploy == "deployed":
                stop.set()

        interrupted = await go(job, command="run", on_event=on_event, stop=stop)
        resumed = await go(job, command="run", resume=True)
        names = sorted(record.name for record in f.servers["current"].store.content.values())

    assert interrupted.meta.interrupted
    deploys = [o.deploy for o in interrupted.outcomes]
    assert deploys[0] == "deployed"
    assert set(deploys[1:]) == {"cancelled"}
    assert [o.deploy for o in resumed.outcomes] == ["skipped", "deployed", "deployed", "deployed"]
    assert (
        outcome(resumed, "app-0", "current").content_guid
        == outcome(interrupted, "app-0", "current").content_guid
    )
    assert names == ["app-0", "app-1", "app-2", "app-3"]
    write_reports(interrupted, tmp_path / "partial")
    assert "cancelled" in (tmp_path / "partial" / "results.csv").read_text()


async def test_a_manifest_path_outside_its_folder_never_uploads(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    write_content(tmp_path / "dotdot", listed=["app.py", "../secret.txt"])
    sneaky = write_content(tmp_path / "link")
    (sneaky / "data.txt").symlink_to(secret)
    write_content(sneaky, files={"app.py": b"x\n", "data.txt": b"TOP-SECRET"})
    (sneaky / "data.txt").unlink()
    (sneaky / "data.txt").symlink_to(secret)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        result = await go(f.job([{"dir": "dotdot"}, {"dir": "link"}]), command="run")
        assert f.servers["current"].store.bundles == {}
    for name in ("dotdot", "link"):
        (row,) = rows(result, name, "current")
        assert (row.status, row.request_index, row.deploy) == ("invalid", None, "blocked")
    assert "leaves the content folder" in rows(result, "dotdot", "current")[0].reason
    assert "data.txt" in rows(result, "link", "current")[0].reason


def dead_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_failed_task_reports_connects_error_output_and_logs(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}, SandboxOptions(task_failure_rate=1.0)) as f:
        result = await go(f.job([{"dir": "one"}]), command="run")
    failed = outcome(result, "one", "current")
    assert failed.deploy == "failed"
    assert failed.task_id
    task = failed.task_id
    step = "restoring the Python environment (pip install -r requirements.txt)"
    assert failed.error == (
        f"current: GET /__api__/v1/tasks/{task}: the deploy task {task} failed (code 1): "
        f"Unable to deploy bundle {failed.bundle_id}: {step} exited with status 1; "
        "read the task output and the content's logs on the server to fix it; "
        "last output: Bundle requested Python version 3.11; using "
        "/opt/python/3.11/bin/python3 which has version 3.11 | "
        f"Installing packages from requirements.txt... | Error: {step} exited with status 1; "
        f"logs: {failed.dashboard_url}/logs"
    )


async def test_a_task_past_its_deadline_fails_the_pair_only(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}, SandboxOptions(task_seconds=3)) as f:
        result = await go(f.job([{"dir": "one"}], run={"task_timeout": 0.3}), command="run")
    late = outcome(result, "one", "current")
    assert late.deploy == "failed"
    assert late.error.startswith(
        f"current: GET /__api__/v1/tasks/{late.task_id}: the deploy task {late.task_id} "
        "was still running after 0.3 s; raise task_timeout in the job file"
    )


async def test_associations_changed_by_hand_show_as_drift(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        first = await go(f.job([{"dir": "one"}]), command="run")
        guid = outcome(first, "one", "current").content_guid
        # Someone swaps the integration in the dashboard after the deploy.
        f.servers["current"].store.set_associations(guid, [VISITOR])
        again = await go(f.job([{"dir": "one"}]), command="run")
    drifted = outcome(again, "one", "current")
    assert drifted.deploy == "unchanged"
    assert drifted.associated == (VISITOR,)
    assert drifted.drift is True
    (row,) = rows(again, "one", "current")
    assert (row.integration_guid, row.associated, row.drift) == (SNOWFLAKE, (VISITOR,), True)


async def test_a_state_file_that_cannot_be_written_does_not_stop_the_run(tmp_path: Path) -> None:
    write_content(tmp_path / "one", ONE_SNOWFLAKE)
    write_content(tmp_path / "two", ONE_SNOWFLAKE)
    async with fleet(tmp_path, {"current": CURRENT}) as f:
        job = f.job([{"dir": "one"}, {"dir": "two"}])
        report_dir = job.run.report_dir

        def block_the_report_dir(event: object) -> None:
            if isinstance(event, PhaseStarted) and event.phase == "deploys":
                report_dir.write_text("a file where the reports folder should be")

        result = await go(job, command="run", on_event=block_the_report_dir)
    for name in ("one", "two"):
        done = outcome(result, name, "current")
        assert done.deploy == "deployed"
        assert done.error.startswith(
            f"deployed, but not recorded: {report_dir / 'state.json'}: the state file cannot "
            "be written"
        )
