"""Following deploy tasks: long polls, cookies, failures and deadlines."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from batch_deploy.bundle import BuiltBundle
from batch_deploy.connect import ConnectClient
from batch_deploy.errors import NotFound, TaskFailed, TaskTimedOut
from batch_deploy.sandbox import SandboxOptions

from .connect_support import KEY, built_bundle, sandbox_client, serve_app

pytestmark = pytest.mark.anyio


async def deploy_one(client: ConnectClient, name: str, bundle: BuiltBundle) -> tuple[str, str]:
    content = await client.create_content(name)
    uploaded = await client.upload_bundle(content.guid, bundle.path, bundle.md5_hex)
    return content.guid, await client.deploy(content.guid, uploaded.id)


async def test_sticky_cookie_polls_succeed(bundle: BuiltBundle) -> None:
    options = SandboxOptions(sticky_cookies=True, task_seconds=0.2)
    async with sandbox_client(options=options) as (running, client):
        _, task_id = await deploy_one(client, "sticky", bundle)
        task = await client.wait_task(task_id, deadline_s=10)
        assert task.code == 0
        # Without the deploy response's cookie the same poll is refused.
        async with ConnectClient(server="fresh", url=running.url, api_key=KEY) as fresh:
            with pytest.raises(NotFound) as caught:
                await fresh.wait_task(task_id, deadline_s=5)
    assert caught.value.code == 141


async def test_concurrent_deploys_each_poll_their_own_node(tmp_path: Path) -> None:
    # Deploys sent together (latency holds every answer until all are sent)
    # land on random nodes; each task's polls must carry its own deploy's
    # cookie, not whichever one the session's jar saw last.
    options = SandboxOptions(sticky_cookies=True, latency=0.2, task_seconds=0.2, random_seed=2)
    bundle = built_bundle(tmp_path / "app")
    uploads: dict[str, str] = {}
    codes: dict[str, int | None] = {}
    async with sandbox_client(options=options) as (running, client):

        async def prepare(name: str) -> None:
            content = await client.create_content(name)
            uploaded = await client.upload_bundle(content.guid, bundle.path, bundle.md5_hex)
            uploads[content.guid] = uploaded.id

        async def deploy(guid: str, bundle_id: str) -> None:
            task_id = await client.deploy(guid, bundle_id)
            codes[task_id] = (await client.wait_task(task_id, deadline_s=10)).code

        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(prepare, f"node-{n}")
        async with anyio.create_task_group() as group:
            for guid, bundle_id in uploads.items():
                group.start_soon(deploy, guid, bundle_id)
        nodes = {running.store.tasks[task_id].node for task_id in codes}
    assert list(codes.values()) == [0] * 6
    assert nodes == {"node-a", "node-b"}


async def test_failed_task(bundle: BuiltBundle) -> None:
    options = SandboxOptions(task_failure_rate=1.0)
    async with sandbox_client(options=options) as (_, client):
        _, task_id = await deploy_one(client, "broken", bundle)
        with pytest.raises(TaskFailed) as caught:
            await client.wait_task(task_id, deadline_s=10)
    error = caught.value
    step = "restoring the Python environment (pip install -r requirements.txt)"
    assert str(error) == (
        f"sandbox: GET /__api__/v1/tasks/{task_id}: the deploy task {task_id} failed (code 1): "
        f"Unable to deploy bundle 1: {step} exited with status 1; read the task output and "
        "the content's logs on the server to fix it"
    )
    assert error.task_id == task_id
    assert error.output[0] == "Extracting bundle 1..."
    assert error.output[-1] == f"Error: {step} exited with status 1"


async def test_task_deadline(bundle: BuiltBundle) -> None:
    # Eight lines over four seconds: one line every half second.
    options = SandboxOptions(task_seconds=4)
    async with sandbox_client(options=options) as (_, client):
        _, task_id = await deploy_one(client, "slow", bundle)
        started = time.monotonic()
        with pytest.raises(TaskTimedOut) as caught:
            await client.wait_task(task_id, deadline_s=0.75)
        assert time.monotonic() - started < 1.5
    assert str(caught.value) == (
        f"sandbox: GET /__api__/v1/tasks/{task_id}: the deploy task {task_id} was still "
        "running after 0.75 s; raise task_timeout in the job file, or check the content's "
        "logs on the server"
    )
    assert caught.value.output == ("Extracting bundle 1...",)


async def test_polls_are_long_not_tight(
    bundle: BuiltBundle, caplog: pytest.LogCaptureFixture
) -> None:
    options = SandboxOptions(task_seconds=0.8)
    async with sandbox_client(options=options) as (_, client):
        _, task_id = await deploy_one(client, "patient", bundle)
        with caplog.at_level(logging.DEBUG, logger="batch_deploy.connect"):
            task = await client.wait_task(task_id, deadline_s=10)
    polls = [r for r in caplog.records if f"/tasks/{task_id}" in r.getMessage()]
    assert len(task.output) == 8
    # One poll per line at most, plus the last; a busy loop would make hundreds.
    assert 2 <= len(polls) <= 9


class TaskScript:
    """A task endpoint whose answers are written in advance."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.json_response({"id": "t1", "code": None, "error": "", **answer})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/__api__/v1/tasks/{task_id}", self.handle)
        return app


async def test_each_line_is_read_once() -> None:
    script = TaskScript(
        [
            {"output": ["a", "b"], "last": 2, "finished": False},
            {"output": ["c"], "last": 3, "finished": True, "code": 0},
        ]
    )
    seen: list[str] = []
    async with (
        serve_app(script.app()) as url,
        ConnectClient(server="s", url=url, api_key=KEY) as client,
    ):
        task = await client.wait_task("t1", deadline_s=3, on_output=seen.append)
    assert seen == ["a", "b", "c"]
    assert task.output == ("a", "b", "c")
    assert [q["first"] for q in script.queries] == ["0", "2"]
    assert all(0 <= int(q["wait"]) <= 3 for q in script.queries)


async def test_a_server_ignoring_wait_is_not_hammered() -> None:
    script = TaskScript([{"output": [], "last": 0, "finished": False}])
    async with (
        serve_app(script.app()) as url,
        ConnectClient(server="s", url=url, api_key=KEY) as client,
    ):
        with pytest.raises(TaskTimedOut):
            await client.wait_task("t1", deadline_s=0.6)
    # At most one poll per MIN_POLL_INTERVAL (0.2 s).
    assert 2 <= len(script.queries) <= 4
