"""Bundle uploads: streamed from disk, with the checksum Connect verifies."""

from __future__ import annotations

import base64
import hashlib
import tracemalloc
from pathlib import Path

import pytest
from aiohttp import web

from batch_deploy.bundle import BuiltBundle
from batch_deploy.connect import ConnectClient
from batch_deploy.errors import APIError, BundleError

from .connect_support import EXISTING, KEY, sandbox_client, serve_app

pytestmark = pytest.mark.anyio

SIZE = 50 * 1024 * 1024


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def test_upload_streams_from_disk(tmp_path: Path) -> None:
    big = tmp_path / "big.tar.gz"
    with big.open("wb") as handle:
        handle.truncate(SIZE)  # sparse: costs no disk, reads as zeros
    md5 = md5_of(big)
    async with sandbox_client() as (running, client):
        tracemalloc.start()
        try:
            uploaded = await client.upload_bundle(EXISTING, big, md5)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        stored = running.store.bundles[int(uploaded.id)]
    assert (uploaded.size, uploaded.archive_md5) == (SIZE, md5)
    assert stored.size == SIZE
    # Client and sandbox share this process: both together stay far below the file.
    assert peak < SIZE // 10


async def test_headers_of_an_upload(bundle: BuiltBundle) -> None:
    seen: dict[str, str] = {}
    received = bytearray()

    async def upload(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        received.extend(await request.read())
        return web.json_response({"id": "3", "content_guid": "c1", "size": len(received)})

    app = web.Application()
    app.router.add_post("/__api__/v1/content/c1/bundles", upload)
    async with (
        serve_app(app) as url,
        ConnectClient(server="s", url=url, api_key=KEY) as client,
    ):
        await client.upload_bundle("c1", bundle.path, bundle.md5_hex)
    expected = base64.b64encode(hashlib.md5(bundle.path.read_bytes()).digest()).decode()
    assert seen["X-Content-Checksum"] == expected
    assert seen["Content-Type"] == "application/gzip"
    assert seen["Content-Length"] == str(bundle.size)
    assert "Transfer-Encoding" not in seen
    assert bytes(received) == bundle.path.read_bytes()


async def test_wrong_checksum_is_refused(bundle: BuiltBundle) -> None:
    wrong = "0" * 32
    async with sandbox_client() as (_, client):
        with pytest.raises(APIError) as caught:
            await client.upload_bundle(EXISTING, bundle.path, wrong)
    actual = base64.b64encode(bytes.fromhex(bundle.md5_hex)).decode()
    sent = base64.b64encode(bytes.fromhex(wrong)).decode()
    assert str(caught.value) == (
        f"sandbox: POST /__api__/v1/content/{EXISTING}/bundles: the server refused the request "
        "(400, Connect code 104: The content checksum header and body MD5 sum are not equal: "
        f"X-Content-Checksum is {sent!r} but the archive's is {actual!r}; send "
        "base64(MD5(archive)) or leave the header out.); check that url points at a Connect "
        "server whose version supports this call"
    )


async def test_missing_bundle_file(tmp_path: Path) -> None:
    gone = tmp_path / "gone.tar.gz"
    async with sandbox_client() as (_, client):
        with pytest.raises(BundleError) as caught:
            await client.upload_bundle(EXISTING, gone, "0" * 32)
    assert str(caught.value) == (
        f"{gone}: the built bundle cannot be read (No such file or directory); run again to "
        "rebuild it"
    )
