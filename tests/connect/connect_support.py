"""Sandboxes, small web apps and bundles for the connect tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from batch_deploy.bundle import BuiltBundle, build_bundle
from batch_deploy.connect import ConnectClient, RetryPolicy
from batch_deploy.manifest import Manifest
from batch_deploy.sandbox import RunningSandbox, SandboxOptions, serve_sandbox
from batch_deploy.sandbox.seed import Seed, parse_seed

KEY = "sandbox-key-0123456789abcdef"
# Real retry logic with waits short enough for tests.
FAST = RetryPolicy(attempts=8, timeout=20.0, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)

SNOWFLAKE = "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11"
GITHUB = "9a1b7c55-3f2d-4b8e-a6c0-1e2f3a4b5c6d"
INTEGRATIONS: list[dict[str, Any]] = [
    {
        "guid": SNOWFLAKE,
        "name": "Snowflake production",
        "description": "Warehouse access",
        "template": "snowflake",
        "auth_type": "Viewer",
        "config": {"account_url": "https://example.snowflakecomputing.com"},
    },
    {
        "guid": GITHUB,
        "name": "GitHub",
        "description": None,
        "template": "github",
        "auth_type": "Viewer",
        "config": {"client_secret": "hunter2"},
    },
]
EXISTING = "0d3a6c52-7e2b-4f19-8a55-1c9e0b7d4a21"


def make_seed(**overrides: Any) -> Seed:
    document: dict[str, Any] = {
        "version": "2025.09.0",
        "integrations": INTEGRATIONS,
        "content": [{"guid": EXISTING, "name": "existing-app", "title": "Existing"}],
    }
    document.update(overrides)
    return parse_seed(json.dumps(document).encode(), "test")


@contextlib.asynccontextmanager
async def sandbox_client(
    seed: Seed | None = None,
    options: SandboxOptions = SandboxOptions(),  # noqa: B008
    *,
    api_key: str = KEY,
    retry: RetryPolicy = FAST,
    **client_options: Any,
) -> AsyncIterator[tuple[RunningSandbox, ConnectClient]]:
    async with (
        serve_sandbox(seed or make_seed(), api_key=KEY, options=options) as running,
        ConnectClient(
            server="sandbox", url=running.url, api_key=api_key, retry=retry, **client_options
        ) as client,
    ):
        yield running, client


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A small aiohttp.web app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def dead_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


MANIFEST: dict[str, Any] = {
    "version": 1,
    "metadata": {"appmode": "python-shiny", "entrypoint": "app"},
    "files": {"app.py": {"checksum": "0"}},
}


def built_bundle(folder: Path, manifest: dict[str, Any] | None = None) -> BuiltBundle:
    document = manifest or MANIFEST
    raw = json.dumps(document).encode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_bytes(raw)
    for name in document["files"]:
        (folder / name).write_text(f"# {name}\n")
    parsed = Manifest(
        raw=raw,
        appmode=document["metadata"]["appmode"],
        title=None,
        files=tuple(document["files"]),
        checksums={},
        requests=(),
    )
    return build_bundle(folder, parsed, folder)


@contextlib.asynccontextmanager
async def raw_server(reply: bytes, *, after_request_head: bool = False) -> AsyncIterator[int]:
    """A TCP server that answers every connection with ``reply`` as is and closes it:
    at once, or ``after_request_head`` has arrived (a TLS client sends no HTTP head).
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            if after_request_head:
                await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
