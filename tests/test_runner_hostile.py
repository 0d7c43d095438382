"""A run against a server that answers with junk: every pair ends as a value, never a crash."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from jobkit import API_KEY, KEY_ENV, write_content

from batch_deploy.connect import RetryPolicy
from batch_deploy.jobs import load_job
from batch_deploy.runner import execute

pytestmark = pytest.mark.anyio

DEEP = "[" * 5000 + "]" * 5000
# Deep enough to crash the matcher's recursion, shallow enough for json to parse.
NESTED = "[" * 900 + "]" * 900
TOO_DEEP = (
    ": the answer nests more than 64 levels deep, which no Connect answer does; check that "
    "url points at a Connect server"
)
SETTINGS = {
    "version": "2025.09.0",
    "oauth_integrations_enabled": True,
    "license": {"oauth-integrations": True},
}
INTEGRATION = {"guid": "g1", "name": "Warehouse", "template": "snowflake", "auth_type": "Viewer"}
CONTENT = {"guid": "c1", "name": "app", "title": "app", "dashboard_url": "http://x/c1"}

Answer = Callable[[], web.StreamResponse]


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def raw(text: str) -> Answer:
    return lambda: web.Response(text=text, content_type="application/json")


def data(value: Any) -> Answer:
    return lambda: web.json_response(value)


def hostile_app(overrides: dict[str, Answer]) -> web.Application:
    """A Connect that behaves, except for the calls named in ``overrides``."""
    normal: dict[str, Answer] = {
        "settings": data(SETTINGS),
        "user": data({"guid": "u1", "username": "pat", "user_role": "publisher"}),
        "integrations": data([{**INTEGRATION, "config": {"warehouse": "main"}}]),
        "find": data([]),
        "create": data(CONTENT),
        "upload": data({"id": "7", "content_guid": "c1"}),
        "deploy": lambda: web.json_response({"task_id": "t1"}, status=202),
        "task": data({"output": ["ok"], "finished": True, "code": 0, "last": 1}),
        "associations": data([{"content_guid": "c1", "oauth_integration_guid": "g1"}]),
    }
    answers = {**normal, **overrides}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        path, method = request.path, request.method
        if path == "/__api__/server_settings":
            call = "settings"
        elif path == "/__api__/v1/user":
            call = "user"
        elif path == "/__api__/v1/oauth/integrations":
            call = "integrations"
        elif path == "/__api__/v1/content":
            call = "find" if method == "GET" else "create"
        elif path.endswith("/bundles"):
            call = "upload"
        elif path.endswith("/deploy"):
            call = "deploy"
        elif path.startswith("/__api__/v1/tasks/"):
            call = "task"
        elif path.endswith("/associations"):
            call = "associations"
        else:
            return web.json_response({"code": 4, "error": "no such object"}, status=404)
        return answers[call]()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


CASES: dict[str, tuple[dict[str, Answer], str, str]] = {
    # name: (overrides, the pair's deploy status, its error)
    "settings nested deeply": (
        {"settings": raw(DEEP)},
        "blocked",
        "h: GET /__api__/server_settings" + TOO_DEEP,
    ),
    "integration config nested deeply": (
        {"integrations": data([{**INTEGRATION, "config": {"warehouse": json.loads(NESTED)}}])},
        "blocked",
        "h: GET /__api__/v1/oauth/integrations" + TOO_DEEP,
    ),
    "a role with control characters": (
        {"user": data({"guid": "u1", "username": "pat\x07", "user_role": "viewer\x1b[2J"})},
        "blocked",
        "h: the API key belongs to 'pat\\x07', a viewer\\x1b[2J; deploying needs a publisher "
        "or administrator key",
    ),
    "integrations not a list": (
        {"integrations": data({"guid": "g1"})},
        "blocked",
        "h: GET /__api__/v1/oauth/integrations: the answer does not look like Connect's (the "
        "integrations are not a list); check that url points at a Connect server",
    ),
    "content list nested deeply": (
        {"find": raw(DEEP)},
        "failed",
        "h: GET /__api__/v1/content" + TOO_DEEP,
    ),
    "guid a number": (
        {"find": data([{**CONTENT, "guid": 5}])},
        "failed",
        "h: GET /__api__/v1/content: the answer does not look like Connect's ('guid' is "
        "missing or not a string); check that url points at a Connect server",
    ),
    "created content is null": (
        {"create": data(None)},
        "failed",
        "h: POST /__api__/v1/content: the answer does not look like Connect's (a content "
        "item is not a JSON object); check that url points at a Connect server",
    ),
    "task id not a string": (
        {"deploy": lambda: web.json_response({"task_id": ["t1"]}, status=202)},
        "failed",
        "h: POST /__api__/v1/content/c1/deploy: the answer does not look like Connect's (no "
        '"task_id" in the answer); check that url points at a Connect server',
    ),
    "task id leaving its path": (
        {"deploy": lambda: web.json_response({"task_id": "../../v1/user"}, status=202)},
        "failed",
        "h: '../../v1/user' is not a valid task id; check the task id in the job file or "
        "state.json",
    ),
    "task output not a list": (
        {"task": data({"output": "ok", "finished": True, "code": 0})},
        "failed",
        "h: GET /__api__/v1/tasks/t1: the answer does not look like Connect's (a task's "
        '"output" is not a list); check that url points at a Connect server',
    ),
    "task nested deeply": (
        {"task": raw(DEEP)},
        "failed",
        "h: GET /__api__/v1/tasks/t1" + TOO_DEEP,
    ),
    "task fields null or odd": (
        {
            "task": data(
                {
                    "output": [None, 3, {"a": 1}],
                    "finished": True,
                    "code": None,
                    "error": None,
                    "last": -7,
                    "id": None,
                }
            )
        },
        "deployed",
        "",
    ),
    "associations nested deeply": (
        {"associations": raw(DEEP)},
        "failed",
        "h: GET /__api__/v1/content/c1/oauth/integrations/associations" + TOO_DEEP,
    ),
    "association without a guid": (
        {"associations": data([{"content_guid": "c1", "oauth_integration_guid": None}])},
        "failed",
        "h: GET /__api__/v1/content/c1/oauth/integrations/associations: the answer does not "
        "look like Connect's ('oauth_integration_guid' is missing or not a string); check "
        "that url points at a Connect server",
    ),
}


@pytest.mark.parametrize(("overrides", "deploy", "error"), CASES.values(), ids=CASES.keys())
async def test_junk_from_a_server_ends_as_a_value(
    tmp_path: Path, overrides: dict[str, Answer], deploy: str, error: str
) -> None:
    write_content(tmp_path / "app", [{"type": "snowflake", "config": {"warehouse": "main"}}])
    async with serve_app(hostile_app(overrides)) as url:
        (tmp_path / "jobs.toml").write_text(
            f'[servers.h]\nurl = "{url}"\napi_key_env = "{KEY_ENV}"\n[[content]]\ndir = "app"\n'
        )
        job = load_job(tmp_path / "jobs.toml", {KEY_ENV: API_KEY})
        result = await execute(job, command="run", retry=RetryPolicy(attempts=1))
    (outcome,) = result.outcomes
    assert (outcome.deploy, outcome.error) == (deploy, error)
    statuses = [row.status for row in result.rows]
    assert statuses == (["unreachable"] if deploy == "blocked" else ["matched"])
