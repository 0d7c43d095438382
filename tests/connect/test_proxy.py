"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as curl reads them.

The sandbox stands in for a forward proxy: it answers the absolute-form requests a
client sends to a plain-http proxy, so a request for an unresolvable host that
still succeeds went through it.
"""

from __future__ import annotations

import pytest
from yarl import URL

from batch_deploy.connect import ConnectClient
from batch_deploy.connect.client import proxy_for
from batch_deploy.errors import ConnectFailed
from batch_deploy.sandbox import serve_sandbox

from .connect_support import FAST, KEY, dead_port, make_seed

pytestmark = pytest.mark.anyio

NOWHERE = "http://connect.invalid"


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def test_requests_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serve_sandbox(make_seed(), api_key=KEY) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with ConnectClient(server="p", url=NOWHERE, api_key=KEY, retry=FAST) as client:
            user = await client.current_user()
    assert user.username == "admin"


async def test_no_proxy_hosts_are_asked_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serve_sandbox(make_seed(), api_key=KEY) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com,connect.invalid")
        async with ConnectClient(server="p", url=NOWHERE, api_key=KEY, retry=FAST) as client:
            with pytest.raises(ConnectFailed) as caught:
                await client.current_user()
    assert str(caught.value) == (
        "p: GET /__api__/v1/user: the host name 'connect.invalid' cannot be resolved; "
        "check url for this server"
    )


async def test_loopback_servers_are_never_proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    async with (
        serve_sandbox(make_seed(), api_key=KEY) as sandbox,
        ConnectClient(server="s", url=sandbox.url, api_key=KEY, retry=FAST) as client,
    ):
        assert (await client.current_user()).username == "admin"


def test_the_proxy_follows_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_for(URL("https://connect.example.com/x")) == "http://proxy.example:3128"
    assert proxy_for(URL("http://connect.example.com/x")) is None
    assert proxy_for(URL("https://localhost:3939/")) is None
    assert proxy_for(URL("https://[::1]:3939/")) is None
