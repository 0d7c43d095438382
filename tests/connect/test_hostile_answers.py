"""A server that answers badly on purpose: nothing it sends escapes as a crash or a leak."""

from __future__ import annotations

import contextlib
import json
import ssl
import traceback
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batch_deploy.connect import ConnectClient, RetryPolicy
from batch_deploy.connect.client import MAX_ANSWER_BYTES, TASK_LINE_CHARS, TASK_LINES_KEPT
from batch_deploy.errors import APIError, AuthenticationFailed, ConnectError, ConnectFailed

from .connect_support import KEY, raw_server, serve_app

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)
DEEP = "[" * 5000 + "]" * 5000
USER = {"guid": "u1", "username": "pat", "user_role": "publisher"}


def answering(body: str, status: int = 200, **headers: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=body, status=status, content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


# --- the key in exception chains ------------------------------------------------------


async def test_the_key_is_not_in_a_chained_aiohttp_exception() -> None:
    # aiohttp's ClientResponseError keeps the request's headers (request_info) in
    # its args and repr: a debugger, a test report or an error tracker shows them.
    async with (
        raw_server(b"HTTP/1.1 abc garbage\r\n\r\n", after_request_head=True) as port,
        ConnectClient(
            server="odd", url=f"http://127.0.0.1:{port}", api_key=KEY, retry=ONCE
        ) as client,
    ):
        with pytest.raises(ConnectFailed) as caught:
            await client.current_user()
    error = caught.value
    assert error.__cause__ is not None
    shown = [
        str(error),
        repr(error),
        repr(error.__cause__),
        repr(error.__cause__.args),
        "".join(traceback.format_exception(error)),
        "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
    ]
    for text in shown:
        assert KEY not in text
    assert "'Authorization': '<redacted>'" in repr(error.__cause__)


# --- JSON that is not Connect's ---------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, json.dumps({"guid": json.loads("[" * 65 + "]" * 65)})])
async def test_deeply_nested_json_is_an_api_error(body: str) -> None:
    async with (
        serve_app(answering(body)) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the answer nests more than 64 levels deep, which no Connect "
        "answer does; check that url points at a Connect server"
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_numbers_are_refused(constant: str) -> None:
    body = json.dumps(USER)[:-1] + f', "n": {constant}}}'
    async with (
        serve_app(answering(body)) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the answer is not JSON (application/json); url may not point "
        "at a Connect server: check it in the job file"
    )


async def test_json_at_the_depth_limit_is_read() -> None:
    user = {**USER, "extra": json.loads("[" * 63 + "]" * 63)}
    async with (
        serve_app(answering(json.dumps(user))) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        assert (await client.current_user()).username == "pat"


async def test_a_deeply_nested_error_body_is_ignored() -> None:
    async with (
        serve_app(answering(DEEP, status=500)) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the server failed to answer (500); try again later, and "
        "check the server's health if it persists"
    )


async def test_an_answer_over_the_size_cap_is_not_read() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * (1 << 20)
        with contextlib.suppress(ConnectionError):
            for _ in range(MAX_ANSWER_BYTES // len(chunk) + 2):
                await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", endless)
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the answer is larger than 64 MiB; check that url points "
        "at a Connect server"
    )


# --- server text in messages ------------------------------------------------------------


async def test_control_characters_from_the_server_are_escaped() -> None:
    hostile = "bad\x1b]0;owned\x07 key\x9b31m\x00!\r\nnext"
    body = json.dumps({"code": 30, "error": hostile})
    async with (
        serve_app(answering(body, status=401)) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(AuthenticationFailed) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "s: GET /__api__/v1/user: the API key was rejected (401, Connect code 30: "
        "bad\\x1b]0;owned\\x07 key\\x9b31m\\x00! next); check the API key"
    )


async def test_duplicate_names_list_server_guids_escaped() -> None:
    items = [
        {"guid": f"g{n}\x1b[2J", "name": "app", "owner_guid": f"o{n}"} for n in range(2)
    ]
    async with (
        serve_app(answering(json.dumps(items))) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(ConnectError) as caught:
            await client.find_content("app")
    assert str(caught.value) == (
        "s: GET /__api__/v1/content: 2 content items are named 'app' (g0\\x1b[2J, g1\\x1b[2J); "
        "give this server's guid for the content in the job file to choose one"
    )


# --- redirects --------------------------------------------------------------------------


class Recorder:
    """Answers a user and remembers each request's path and credentials."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            (request.path, request.headers.get("Authorization"), request.headers.get("Cookie"))
        )
        if request.path.startswith("/__api__/v1/tasks/"):
            return web.json_response({"output": ["done"], "finished": True, "code": 0})
        return web.json_response(USER)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def test_a_redirect_from_https_to_http_is_refused(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    plain = Recorder()

    async with serve_app(plain.app()) as plain_url:

        async def downgrade(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{plain_url}{request.path}")

        app = web.Application()
        app.router.add_get("/{tail:.*}", downgrade)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            url = f"https://127.0.0.1:{runner.addresses[0][1]}"
            async with ConnectClient(
                server="tls", url=url, api_key=KEY, ca_bundle=cert, retry=ONCE
            ) as client:
                with pytest.raises(APIError) as caught:
                    await client.server_settings()
        finally:
            await runner.cleanup()
    assert str(caught.value) == (
        f"tls: GET /__api__/server_settings: the server redirected from https to {plain_url}, "
        "which is not encrypted; set url to the server's https address"
    )
    assert plain.seen == []


async def test_task_cookies_are_not_sent_to_another_origin() -> None:
    elsewhere = Recorder()
    async with serve_app(elsewhere.app()) as other:
        other_url = other.replace("127.0.0.1", "localhost")

        async def deploy(request: web.Request) -> web.StreamResponse:
            response = web.json_response({"task_id": "t1"}, status=202)
            response.set_cookie("session", "node-secret")
            return response

        async def task(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{other_url}{request.path_qs}")

        app = web.Application()
        app.router.add_post("/__api__/v1/content/{guid}/deploy", deploy)
        app.router.add_get("/__api__/v1/tasks/{task_id}", task)
        async with (
            serve_app(app) as url,
            ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
        ):
            task_id = await client.deploy("c1", "1")
            finished = await client.wait_task(task_id, deadline_s=5)
    assert finished.output == ("done",)
    assert elsewhere.seen == [("/__api__/v1/tasks/t1", None, None)]


async def test_a_task_is_polled_on_the_node_its_deploy_went_to() -> None:
    # A balancer sets its cookie only on a request that names no node; the jar
    # may name another node by the time the task is polled.
    tasks: dict[str, str] = {}

    async def deploy(request: web.Request) -> web.StreamResponse:
        guid = request.match_info["guid"]
        node = request.cookies.get("node")
        moved = node is None or guid == "moved"
        if moved:
            node = f"n{len(tasks) + 1}"
        assert node is not None
        tasks[f"t-{guid}"] = node
        response = web.json_response({"task_id": f"t-{guid}"}, status=202)
        if moved:
            response.set_cookie("node", node)
        return response

    async def task(request: web.Request) -> web.StreamResponse:
        if request.cookies.get("node") != tasks[request.match_info["task_id"]]:
            return web.json_response({"code": 141, "error": "task lookup failure"}, status=404)
        return web.json_response({"output": ["done"], "finished": True, "code": 0})

    app = web.Application()
    app.router.add_post("/__api__/v1/content/{guid}/deploy", deploy)
    app.router.add_get("/__api__/v1/tasks/{task_id}", task)
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        first = await client.deploy("first", "1")  # gets n1
        second = await client.deploy("second", "2")  # sent with n1: no cookie back
        await client.deploy("moved", "3")  # the jar now says n3
        assert (await client.wait_task(second, deadline_s=5)).output == ("done",)
        assert (await client.wait_task(first, deadline_s=5)).output == ("done",)
    assert tasks == {"t-first": "n1", "t-second": "n1", "t-moved": "n3"}


# --- task output ------------------------------------------------------------------------


async def test_the_output_kept_of_a_task_is_bounded() -> None:
    polls: list[int] = []
    line = "x" * (TASK_LINE_CHARS * 3)

    async def task(request: web.Request) -> web.StreamResponse:
        polls.append(int(request.query["first"]))
        done = len(polls) == 3
        answer: dict[str, Any] = {
            "output": [line] * 600,
            "finished": done,
            "code": 0 if done else None,
            "last": polls[-1] + 600,
        }
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/__api__/v1/tasks/{task_id}", task)
    seen: list[str] = []
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        finished = await client.wait_task("t1", deadline_s=5, on_output=seen.append)
    assert polls == [0, 600, 1200]
    assert seen == [line] * 1800
    assert len(finished.output) == TASK_LINES_KEPT
    assert set(finished.output) == {line[:TASK_LINE_CHARS]}
