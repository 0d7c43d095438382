"""The API key goes only to the server's own origin, and nowhere else."""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_deploy.bundle import BuiltBundle
from batch_deploy.connect import ConnectClient, RetryPolicy
from batch_deploy.errors import APIError, AuthenticationFailed, ConnectError, NotFound

from .connect_support import KEY, sandbox_client, serve_app

pytestmark = pytest.mark.anyio

USER = {"guid": "u1", "username": "pat", "user_role": "publisher"}


class Recorder:
    """Answers with a user (or a redirect) and remembers each request's key header."""

    def __init__(self, redirect_to: str = "", status: int = 302) -> None:
        self.redirect_to = redirect_to
        self.status = status
        self.seen: list[tuple[str, str, str | None, bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            (request.method, request.path, request.headers.get("Authorization"), body)
        )
        if self.redirect_to and request.path.startswith("/__api__/"):
            return web.Response(status=self.status, headers={"Location": self.redirect_to})
        if request.path.endswith("/deploy"):
            return web.json_response({"task_id": "t9"}, status=202)
        return web.json_response(USER)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def test_server_settings_go_without_the_key() -> None:
    recorder = Recorder()
    async with (
        serve_app(recorder.app()) as url,
        ConnectClient(server="s", url=url, api_key=KEY) as client,
    ):
        await client.server_settings()
        await client.current_user()
    assert [(path, auth) for _, path, auth, _ in recorder.seen] == [
        ("/__api__/server_settings", None),
        ("/__api__/v1/user", f"Key {KEY}"),
    ]


async def test_key_is_not_sent_to_another_host() -> None:
    # 127.0.0.1 and localhost are different origins even on one machine.
    elsewhere = Recorder()
    async with serve_app(elsewhere.app(), host="127.0.0.1") as other:
        other_url = other.replace("127.0.0.1", "localhost")
        origin = Recorder(redirect_to=f"{other_url}/__api__/v1/user")
        async with (
            serve_app(origin.app()) as url,
            ConnectClient(server="s", url=url, api_key=KEY) as client,
        ):
            user = await client.current_user()
    assert user.username == "pat"
    assert origin.seen == [("GET", "/__api__/v1/user", f"Key {KEY}", b"")]
    assert elsewhere.seen == [("GET", "/__api__/v1/user", None, b"")]


async def test_a_401_after_a_cross_host_redirect_says_so() -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response({"code": 30, "error": "no key"}, status=401)

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", refuse)
    async with serve_app(other_app) as other:
        other_url = other.replace("127.0.0.1", "localhost")
        origin = Recorder(redirect_to=f"{other_url}/api/user")
        async with (
            serve_app(origin.app()) as url,
            ConnectClient(server="s", url=url, api_key=KEY, key_hint="$K") as client,
        ):
            with pytest.raises(AuthenticationFailed) as caught:
                await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the API key was rejected (401, Connect code 30: no key); "
        f"the server redirected to {other_url}, which is never sent the key; set url to the "
        "address that serves the API"
    )


async def test_key_follows_a_redirect_within_the_server() -> None:
    recorder = Recorder()
    moved = Recorder(redirect_to="/moved/__api__/v1/user", status=301)

    async def both(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/moved/"):
            return await recorder.handle(request)
        return await moved.handle(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", both)
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY) as client,
    ):
        await client.current_user()
    assert recorder.seen == [("GET", "/moved/__api__/v1/user", f"Key {KEY}", b"")]


async def test_post_is_followed_only_through_307_and_308() -> None:
    target = Recorder()
    async with serve_app(target.app()) as other:
        keeper = Recorder(redirect_to=f"{other}/real/deploy", status=307)
        async with (
            serve_app(keeper.app()) as url,
            ConnectClient(server="s", url=url, api_key=KEY) as client,
        ):
            assert await client.deploy("c1", "5") == "t9"
        # Same host and scheme but another port: another origin, so no key.
        assert target.seen == [("POST", "/real/deploy", None, b'{"bundle_id": "5"}')]

        changer = Recorder(redirect_to=f"{other}/real/deploy", status=302)
        async with (
            serve_app(changer.app()) as url,
            ConnectClient(server="s", url=url, api_key=KEY) as client,
        ):
            with pytest.raises(APIError) as caught:
                await client.deploy("c1", "5")
    assert str(caught.value) == (
        f"s: POST /__api__/v1/content/c1/deploy: the server redirected this POST to {other} "
        "(302), which would drop its body; set url to the address the server redirects to"
    )
    assert len(target.seen) == 1


async def test_redirect_loops_end() -> None:
    loop = Recorder(redirect_to="/__api__/v1/user")
    async with (
        serve_app(loop.app()) as url,
        ConnectClient(server="s", url=url, api_key=KEY, max_redirects=3) as client,
    ):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: more than 3 redirects; set url to the server's final address"
    )
    # Not retried: a redirect loop does not heal.
    assert len(loop.seen) == 4


async def test_key_never_in_repr_logs_or_errors(
    bundle: BuiltBundle, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with sandbox_client(key_hint="$SECRET_VAR") as (_, client):
            assert KEY not in repr(client)
            content = await client.create_content("logged")
            uploaded = await client.upload_bundle(content.guid, bundle.path, bundle.md5_hex)
            task_id = await client.deploy(content.guid, uploaded.id)
            await client.wait_task(task_id, deadline_s=10)
        async with sandbox_client(api_key=KEY[::-1]) as (_, wrong):
            with pytest.raises(AuthenticationFailed) as caught:
                await wrong.current_user()
    assert KEY[::-1] not in str(caught.value)
    assert KEY[::-1] not in repr(caught.value)
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith(f"sandbox: POST /__api__/v1/content/{content.guid}/bundles -> 200 in ")
        for m in messages
    )
    assert any(m.startswith("sandbox: GET /__api__/v1/user -> 401 in ") for m in messages)
    for message in messages:
        assert KEY not in message
        assert KEY[::-1] not in message
        assert "Authorization" not in message


@settings(max_examples=4, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=40))
async def test_a_guid_never_leaves_its_path_segment(guids: list[str]) -> None:
    paths: list[str] = []

    async def record(request: web.Request) -> web.StreamResponse:
        paths.append(request.raw_path)
        return web.json_response({"code": 4, "error": "gone"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=RetryPolicy(attempts=1)) as client,
    ):
        for guid in guids:
            paths.clear()
            with pytest.raises(ConnectError) as caught:
                await client.get_content(guid)
            if isinstance(caught.value, NotFound):
                assert paths == [f"/__api__/v1/content/{quote(guid, safe='')}"]
                assert unquote(paths[0].rsplit("/", 1)[1]) == guid
            else:
                assert paths == []
                assert str(caught.value) == (
                    f"s: {guid!r} is not a valid content guid; check the content guid in the "
                    "job file or state.json"
                )
