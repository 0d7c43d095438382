"""Retries: what is repeated, how often, how long it waits, and what never is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import stamina
from aiohttp import web
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from batch_deploy.bundle import BuiltBundle
from batch_deploy.connect import ConnectClient, RetryPolicy
from batch_deploy.connect.retry import retry_idempotent, retry_unsent
from batch_deploy.errors import (
    APIError,
    AuthenticationFailed,
    Conflict,
    ConnectFailed,
    NotFound,
    RateLimited,
    RequestTimedOut,
)
from batch_deploy.sandbox import SandboxOptions

from .connect_support import FAST, KEY, dead_port, make_seed, sandbox_client, serve_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    """Every retry stamina schedules during the test."""
    seen: list[RetryDetails] = []

    def record(details: RetryDetails) -> None:
        seen.append(details)

    set_on_retry_hooks([record])
    try:
        yield seen
    finally:
        set_on_retry_hooks(None)


class Script:
    """A tiny stand-in for Connect whose answers the test writes in advance."""

    def __init__(self, *answers: int | str) -> None:
        # An int is a status to answer with; "drop" closes the connection.
        self.answers = list(answers)
        self.hits = 0
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.bodies.append(await request.read())
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        assert isinstance(answer, int)
        if answer == 429:
            return web.json_response({"error": "slow"}, status=429, headers={"Retry-After": "0.3"})
        if answer >= 400:
            return web.json_response({"code": 0, "error": "scripted"}, status=answer)
        return web.json_response(self.ok(request), status=answer)

    def ok(self, request: web.Request) -> Any:
        if request.path.endswith("/deploy"):
            return {"task_id": "t1"}
        if request.path.endswith("/bundles"):
            return {"id": "7", "content_guid": "c", "size": 1, "active": False, "metadata": {}}
        return {"guid": "u1", "username": "pat", "user_role": "publisher"}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def client_for(url: str, retry: RetryPolicy = FAST) -> ConnectClient:
    return ConnectClient(server="s", url=url, api_key=KEY, retry=retry)


async def test_gets_recover_from_injected_503s() -> None:
    options = SandboxOptions(error_rate=0.3, random_seed=3)
    async with sandbox_client(options=options) as (_, client):
        for _ in range(25):
            assert (await client.current_user()).role == "administrator"


async def test_gets_recover_from_dropped_connections(retries: list[RetryDetails]) -> None:
    options = SandboxOptions(drop_rate=0.3, random_seed=5)
    async with sandbox_client(options=options) as (_, client):
        for _ in range(25):
            assert await client.find_content("existing-app") is not None
    assert any(isinstance(r.caused_by, ConnectFailed) for r in retries)


async def test_rate_limit_is_waited_out(retries: list[RetryDetails]) -> None:
    options = SandboxOptions(rate_limit=2, retry_after=0.1)
    # The sandbox counts requests per second: the third waits about a second.
    policy = RetryPolicy(attempts=30, wait_initial=0.001, wait_max=0.01, wait_jitter=0)
    async with sandbox_client(options=options, retry=policy) as (_, client):
        for _ in range(3):
            await client.current_user()
    assert retries
    assert all(isinstance(r.caused_by, RateLimited) for r in retries)
    assert all(r.wait_for == pytest.approx(0.1) for r in retries)


async def test_retry_after_replaces_the_backoff(retries: list[RetryDetails]) -> None:
    script = Script(429)
    async with serve_app(script.app()) as url, client_for(url) as client:
        started = time.monotonic()
        await client.current_user()
        elapsed = time.monotonic() - started
    assert script.hits == 2
    assert elapsed >= 0.3
    assert [r.wait_for for r in retries] == [pytest.approx(0.3)]


def test_retry_after_is_capped() -> None:
    hook = retry_idempotent(RetryPolicy(max_retry_after=5.0))
    assert hook(RateLimited("x", retry_after=3600)) == 5.0
    assert hook(RateLimited("x", retry_after=None)) is True


@pytest.mark.parametrize(
    ("error", "idempotent", "unsent"),
    [
        (APIError("x", status=502), True, False),
        (APIError("x", status=503), True, True),
        (APIError("x", status=504), True, False),
        (APIError("x", status=500), False, False),
        (NotFound("x", status=404), False, False),
        (Conflict("x", status=409), False, False),
        (AuthenticationFailed("x", status=401), False, False),
        (RateLimited("x", retry_after=1.5), 1.5, 1.5),
        (RequestTimedOut("x"), True, False),
        (ConnectFailed("x"), True, False),  # not known to be unsent
    ],
)
def test_which_errors_are_retried(error: Exception, idempotent: object, unsent: object) -> None:
    policy = RetryPolicy()
    assert retry_idempotent(policy)(error) == idempotent
    assert retry_unsent(policy, lambda _: False)(error) == unsent


async def test_attempts_are_bounded() -> None:
    script = Script(503, 503, 503, 503, 503, 503)
    policy = RetryPolicy(attempts=4, wait_initial=0.001, wait_max=0.001, wait_jitter=0)
    async with serve_app(script.app()) as url, client_for(url, policy) as client:
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert caught.value.status == 503
    assert script.hits == 4


async def test_total_time_is_bounded() -> None:
    script = Script(*([503] * 50))
    policy = RetryPolicy(attempts=50, timeout=0.3, wait_initial=0.1, wait_max=0.1, wait_jitter=0)
    async with serve_app(script.app()) as url, client_for(url, policy) as client:
        started = time.monotonic()
        with pytest.raises(APIError):
            await client.current_user()
    assert time.monotonic() - started < 1.0
    assert 2 <= script.hits <= 5


async def test_stamina_testing_mode_removes_the_waits() -> None:
    script = Script(503, 503, 503, 503)
    async with serve_app(script.app()) as url, client_for(url, RetryPolicy()) as client:
        started = time.monotonic()
        with stamina.set_testing(True, attempts=3), pytest.raises(APIError):
            await client.current_user()
    assert script.hits == 3
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("status", [401, 403, 404, 409, 500])
async def test_client_errors_are_not_retried(status: int) -> None:
    script = Script(status, status)
    async with serve_app(script.app()) as url, client_for(url) as client:
        with pytest.raises(APIError):
            await client.current_user()
    assert script.hits == 1


async def test_deploy_is_not_repeated_after_a_dropped_connection(
    retries: list[RetryDetails],
) -> None:
    script = Script("drop", 202)
    async with serve_app(script.app()) as url, client_for(url) as client:
        with pytest.raises(ConnectFailed) as caught:
            await client.deploy("c1", "7")
    assert script.hits == 1
    assert retries == []
    assert caught.value.where == "POST /__api__/v1/content/c1/deploy"


@pytest.mark.parametrize("first", [503, 429])
async def test_deploy_is_repeated_when_the_server_did_not_act(first: int) -> None:
    script = Script(first, 202)
    async with serve_app(script.app()) as url, client_for(url) as client:
        assert await client.deploy("c1", "7") == "t1"
    assert script.hits == 2
    assert script.bodies == [b'{"bundle_id": "7"}'] * 2


@pytest.mark.parametrize("first", [502, 504])
async def test_deploy_is_not_repeated_after_a_gateway_error(first: int) -> None:
    script = Script(first, 202)
    async with serve_app(script.app()) as url, client_for(url) as client:
        with pytest.raises(APIError):
            await client.deploy("c1", "7")
    assert script.hits == 1


async def test_deploy_is_repeated_when_no_connection_opened(
    retries: list[RetryDetails],
) -> None:
    policy = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.001, wait_jitter=0)
    async with client_for(f"http://127.0.0.1:{dead_port()}", policy) as client:
        with pytest.raises(ConnectFailed, match="Connection refused"):
            await client.deploy("c1", "7")
    assert len(retries) == 2


async def test_upload_is_retried_from_the_start_of_the_file(
    bundle: BuiltBundle, retries: list[RetryDetails]
) -> None:
    script = Script("drop", 503, 200)
    async with serve_app(script.app()) as url, client_for(url) as client:
        uploaded = await client.upload_bundle("c1", bundle.path, bundle.md5_hex)
    assert uploaded.id == "7"
    assert script.hits == 3
    assert script.bodies[-1] == bundle.path.read_bytes()
    assert len(retries) == 2


class ContentScript:
    """Connect's content list and create, with scripted trouble around the POST."""

    def __init__(self, posts: list[str], stale_lookups: int = 0) -> None:
        # "land-drop": create it, then drop the connection; "land-504": create,
        # answer 504; "503": create nothing, answer 503; "ok": create normally.
        self.posts = posts
        self.stale_lookups = stale_lookups
        self.items: list[dict[str, Any]] = []
        self.post_hits = 0
        self.lookup_hits = 0

    def item(self, name: str) -> dict[str, Any]:
        return {"guid": f"g-{len(self.items) + 1}", "name": name, "title": None}

    async def create(self, request: web.Request) -> web.StreamResponse:
        self.post_hits += 1
        body = await request.json()
        plan = self.posts.pop(0) if self.posts else "ok"
        if plan == "503":
            return web.json_response({"code": 0, "error": "busy"}, status=503)
        if any(item["name"] == body["name"] for item in self.items):
            return web.json_response({"code": 26, "error": "name taken"}, status=409)
        created = self.item(body["name"])
        self.items.append(created)
        if plan == "land-drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if plan == "land-504":
            return web.json_response({"code": 0, "error": "gateway timeout"}, status=504)
        return web.json_response(created)

    async def lookup(self, request: web.Request) -> web.StreamResponse:
        self.lookup_hits += 1
        if self.stale_lookups:
            self.stale_lookups -= 1
            return web.json_response([])
        name = request.query.get("name")
        return web.json_response([item for item in self.items if item["name"] == name])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/__api__/v1/content", self.create)
        app.router.add_get("/__api__/v1/content", self.lookup)
        return app


async def test_create_that_landed_is_found_not_repeated() -> None:
    script = ContentScript(["land-drop"])
    async with serve_app(script.app()) as url, client_for(url) as client:
        created = await client.create_content("twin-risk", "T")
    assert created.guid == "g-1"
    assert (script.post_hits, script.lookup_hits, len(script.items)) == (1, 1, 1)


async def test_create_that_failed_is_repeated_once_absent() -> None:
    script = ContentScript(["503"])
    async with serve_app(script.app()) as url, client_for(url) as client:
        created = await client.create_content("retry-me")
    assert created.guid == "g-1"
    assert (script.post_hits, script.lookup_hits, len(script.items)) == (2, 1, 1)


async def test_conflict_after_a_repeat_means_it_landed() -> None:
    # The lookup after the 504 does not see the new item yet; the repeated
    # POST then meets 409, and a second lookup finds it.
    script = ContentScript(["land-504"], stale_lookups=1)
    async with serve_app(script.app()) as url, client_for(url) as client:
        created = await client.create_content("eventual")
    assert created.guid == "g-1"
    assert (script.post_hits, script.lookup_hits, len(script.items)) == (2, 2, 1)


async def test_first_conflict_is_an_error() -> None:
    script = ContentScript([])
    script.items.append(script.item("taken"))
    async with serve_app(script.app()) as url, client_for(url) as client:
        with pytest.raises(Conflict):
            await client.create_content("taken")
    assert (script.post_hits, script.lookup_hits) == (1, 0)


async def test_no_twins_under_faults() -> None:
    options = SandboxOptions(error_rate=0.3, drop_rate=0.2, random_seed=11)
    names = [f"app-{index:02d}" for index in range(15)]
    async with sandbox_client(make_seed(content=[]), options) as (running, client):
        for name in names:
            assert (await client.create_content(name)).name == name
        stored = sorted(record.name for record in running.store.content.values())
    assert stored == names


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        RetryPolicy(timeout=0)
