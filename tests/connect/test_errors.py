"""Every failure becomes one of batch_deploy's errors, with an exact message."""

from __future__ import annotations

import contextlib
import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from batch_deploy.connect import ConnectClient, RetryPolicy
from batch_deploy.errors import (
    APIError,
    AuthenticationFailed,
    Conflict,
    ConnectError,
    ConnectFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimedOut,
    TLSFailed,
)
from batch_deploy.sandbox import SandboxOptions
from batch_deploy.sandbox.seed import DEFAULT_USER_GUID

from .connect_support import (
    EXISTING,
    FAST,
    KEY,
    dead_port,
    make_seed,
    raw_server,
    sandbox_client,
    serve_app,
)

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)
TWICE = RetryPolicy(attempts=2, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)


async def test_rejected_key_points_at_its_variable() -> None:
    async with sandbox_client(api_key="wrong", key_hint="$SANDBOX_KEY") as (_, client):
        # server_settings goes without the key, so a wrong key does not stop it.
        assert (await client.server_settings()).version == "2025.09.0"
        with pytest.raises(AuthenticationFailed) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "sandbox: GET /__api__/v1/user: the API key was rejected (401, Connect code 30: "
        "We couldn't log you in with the provided credentials: the API key is not valid "
        "for this server.); check the key in $SANDBOX_KEY"
    )
    assert (caught.value.status, caught.value.code) == (401, 30)
    assert (caught.value.server, caught.value.where) == ("sandbox", "GET /__api__/v1/user")


async def test_rejected_key_without_hint() -> None:
    async with sandbox_client(api_key="wrong") as (_, client):
        with pytest.raises(AuthenticationFailed, match=r"\.\); check the API key$"):
            await client.integrations()


async def test_viewer_may_not_create() -> None:
    seed = make_seed(user={"guid": DEFAULT_USER_GUID, "username": "v", "role": "viewer"})
    async with sandbox_client(seed) as (_, client):
        with pytest.raises(PermissionDenied) as caught:
            await client.create_content("not-allowed")
    assert str(caught.value) == (
        "sandbox: POST /__api__/v1/content: the key's user may not do this (403, Connect "
        "code 22: You don't have permission to perform this operation: viewers cannot "
        "publish content; use a publisher's or an administrator's API key.); use a key of "
        "a publisher or administrator who may change this content"
    )


async def test_missing_content() -> None:
    guid = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    async with sandbox_client() as (_, client):
        with pytest.raises(NotFound) as caught:
            await client.get_content(guid)
    assert str(caught.value) == (
        f"sandbox: GET /__api__/v1/content/{guid}: no such object (404, Connect code 4: "
        "The requested object does not exist.); check the guid, and that url points at the "
        "right Connect server"
    )


async def test_taken_name() -> None:
    async with sandbox_client() as (_, client):
        with pytest.raises(Conflict) as caught:
            await client.create_content("existing-app")
    assert str(caught.value) == (
        "sandbox: POST /__api__/v1/content: the server reports a conflict (409, Connect code "
        f"26: An object with that name already exists: content 'existing-app' is {EXISTING}; "
        "redeploy to that guid or choose another name.); if the content name is taken by "
        "another owner, choose another name or give this server's guid in the job file"
    )


async def test_rate_limited_with_retry_after_seconds() -> None:
    options = SandboxOptions(rate_limit=1, retry_after=0.25)
    async with sandbox_client(options=options, retry=ONCE) as (_, client):
        await client.current_user()
        with pytest.raises(RateLimited) as caught:
            await client.current_user()
    assert caught.value.retry_after == 0.25
    assert str(caught.value) == (
        "sandbox: GET /__api__/v1/user: the server is limiting requests (429, Connect code 0: "
        "Too Many Requests: the sandbox accepts 1 requests per second; retry after 0.25 "
        "seconds.); wait 0.25 s and try again, or lower per_server in the job file"
    )


async def test_server_error_after_retries() -> None:
    options = SandboxOptions(error_rate=1.0)
    async with sandbox_client(options=options, retry=TWICE) as (_, client):
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert type(caught.value) is APIError
    assert str(caught.value) == (
        "sandbox: GET /__api__/v1/user: the server failed to answer (503, Connect code 0: "
        "Service Unavailable: the sandbox injected this error (sandbox_options.error_rate); "
        "retry the request.); try again later, and check the server's health if it persists"
    )


async def test_refused_connection() -> None:
    port = dead_port()
    async with ConnectClient(server="dead", url=f"http://127.0.0.1:{port}/", api_key=KEY,
                             retry=TWICE) as client:
        with pytest.raises(ConnectFailed) as caught:
            await client.server_settings()
    assert str(caught.value) == (
        f"dead: GET /__api__/server_settings: cannot connect to 127.0.0.1:{port} "
        "(Connection refused); check url and that the server is running"
    )


async def test_timeout() -> None:
    options = SandboxOptions(latency=0.4)
    async with sandbox_client(options=options, retry=ONCE, request_timeout=0.1) as (
        running,
        client,
    ):
        started = time.monotonic()
        with pytest.raises(RequestTimedOut) as caught:
            await client.current_user()
        assert time.monotonic() - started < 0.35
    port = running.url.rsplit(":", 1)[1]
    assert str(caught.value) == (
        f"sandbox: GET /__api__/v1/user: no answer from 127.0.0.1:{port} within 0.1 s; "
        "check that the server is up and not overloaded, then try again"
    )


@contextlib.asynccontextmanager
async def web_client(
    route: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[ConnectClient]:
    async with (
        serve_app(_app(route, handler)) as url,
        ConnectClient(server="web", url=url, api_key=KEY, retry=ONCE) as client,
    ):
        yield client


def _app(route: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
         ) -> web.Application:
    app = web.Application()
    app.router.add_route("*", route, handler)
    return app


async def test_html_instead_of_json() -> None:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>login</html>", content_type="text/html")

    async with web_client("/__api__/server_settings", page) as client:
        with pytest.raises(APIError) as caught:
            await client.server_settings()
    assert str(caught.value) == (
        "web: GET /__api__/server_settings: the answer is not JSON (text/html); url may not "
        "point at a Connect server: check it in the job file"
    )
    assert caught.value.status == 200


async def test_no_connect_at_this_address() -> None:
    async with (
        serve_app(web.Application()) as url,
        ConnectClient(server="web", url=url + "/wrong", api_key=KEY, retry=ONCE) as client,
    ):
        with pytest.raises(NotFound) as caught:
            await client.server_settings()
    assert str(caught.value) == (
        "web: GET /wrong/__api__/server_settings: no Connect API answers at this address "
        "(404); check url for this server: it is the address of Connect's dashboard, "
        "without /__api__"
    )


async def test_wrong_shape() -> None:
    async def user(request: web.Request) -> web.StreamResponse:
        return web.json_response([1, 2])

    async with web_client("/__api__/v1/user", user) as client:
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert str(caught.value) == (
        "web: GET /__api__/v1/user: the answer does not look like Connect's (a user is not a "
        "JSON object); check that url points at a Connect server"
    )


async def test_echoed_key_is_redacted() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "")
        return web.json_response({"code": 7, "error": f"bad header {sent}"}, status=400)

    async with web_client("/__api__/v1/user", echo) as client:
        with pytest.raises(APIError) as caught:
            await client.current_user()
    assert KEY not in str(caught.value)
    assert str(caught.value) == (
        "web: GET /__api__/v1/user: the server refused the request (400, Connect code 7: bad "
        "header Key <redacted>); check that url points at a Connect server whose version "
        "supports this call"
    )


async def test_retry_after_as_http_date() -> None:
    async def limited(request: web.Request) -> web.StreamResponse:
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": when})

    async with web_client("/__api__/v1/user", limited) as client:
        with pytest.raises(RateLimited) as caught:
            await client.current_user()
    assert caught.value.retry_after is not None
    assert 28 <= caught.value.retry_after <= 30
    assert caught.value.code is None


async def test_https_to_a_plain_server() -> None:
    async with (
        raw_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port,
        ConnectClient(
            server="plain", url=f"https://127.0.0.1:{port}", api_key=KEY, retry=ONCE
        ) as client,
    ):
        with pytest.raises(TLSFailed) as caught:
            await client.server_settings()
    assert str(caught.value) == (
        f"plain: GET /__api__/server_settings: the TLS handshake with 127.0.0.1:{port} "
        "failed (WRONG_VERSION_NUMBER); check that url says https only for a server that "
        "speaks TLS on that port"
    )


async def test_not_http_at_all() -> None:
    async with raw_server(b"\x16\x03\x01 certainly not HTTP\r\n\r\n") as port, ConnectClient(
        server="odd", url=f"http://127.0.0.1:{port}", api_key=KEY, retry=ONCE
    ) as client:
        with pytest.raises(ConnectFailed) as caught:
            await client.server_settings()
    text = str(caught.value)
    assert text.startswith(
        f"odd: GET /__api__/server_settings: the answer from 127.0.0.1:{port} is not valid HTTP ("
    )
    assert text.endswith(
        "); check that url points at a Connect server and says http or https correctly"
    )


@contextlib.asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[str]:
    async def settings(request: web.Request) -> web.StreamResponse:
        return web.json_response({"version": "2025.09.0"})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(_app("/__api__/server_settings", settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_self_signed_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    async with tls_server(cert, key) as url:
        async with ConnectClient(server="tls", url=url, api_key=KEY, retry=FAST) as client:
            with pytest.raises(TLSFailed) as caught:
                await client.server_settings()
        async with ConnectClient(server="tls", url=url, api_key=KEY, ca_bundle=cert) as trusted:
            assert (await trusted.server_settings()).version == "2025.09.0"
        async with ConnectClient(server="tls", url=url, api_key=KEY, verify_tls=False) as blind:
            assert (await blind.server_settings()).version == "2025.09.0"
    port = url.rsplit(":", 1)[1]
    assert str(caught.value) == (
        f"tls: GET /__api__/server_settings: the TLS certificate of 127.0.0.1:{port} was not "
        "accepted (self-signed certificate); set ca_bundle to the CA file that signed it, or "
        "verify_tls = false for a test server only"
    )


async def test_unreadable_ca_bundle(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TLSFailed) as caught:
        ConnectClient(server="tls", url="https://example.com", api_key=KEY, ca_bundle=missing)
    assert str(caught.value) == (
        f"tls: the CA file {str(missing)!r} cannot be loaded (No such file or directory); "
        "point ca_bundle at a readable PEM file"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://example.com",
            "bad: 'ftp://example.com' is not an http:// or https:// URL; fix url for this "
            "server in the job file",
        ),
        (
            "https://user:pw@example.com",
            "bad: the server URL may not carry a user, password, query or fragment; give the "
            "plain address (the key goes in api_key_env)",
        ),
    ],
)
def test_unusable_url(url: str, message: str) -> None:
    with pytest.raises(ConnectError) as caught:
        ConnectClient(server="bad", url=url, api_key=KEY)
    assert str(caught.value) == message


async def test_unsafe_guid_is_refused_before_sending() -> None:
    async with sandbox_client() as (_, client):
        with pytest.raises(ConnectError) as caught:
            await client.get_content("../../v1/user")
    assert str(caught.value) == (
        "sandbox: '../../v1/user' is not a valid content guid; check the content guid in the "
        "job file or state.json"
    )


async def test_use_outside_async_with() -> None:
    client = ConnectClient(server="x", url="http://127.0.0.1:1", api_key=KEY)
    with pytest.raises(RuntimeError, match="inside 'async with'"):
        await client.server_settings()
