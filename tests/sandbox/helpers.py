"""Shared helpers for the sandbox tests: seeds, content folders, bundles, a client."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from batch_deploy.sandbox import SandboxOptions, Seed, parse_seed, serve_sandbox
from batch_deploy.sandbox.server import RunningSandbox

API_KEY = "sandbox-test-key-4f1c"

SNOWFLAKE = "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11"
KEYCLOAK = "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a"
VISITOR = "d32b3f4e-3f4a-4c5a-9f1e-8b6e2f7c9a2b"
KEYCLOAK_STAGING = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"

INTEGRATIONS: list[dict[str, Any]] = [
    {
        "id": "3",
        "guid": SNOWFLAKE,
        "created_time": "2025-03-02T10:15:00Z",
        "updated_time": "2025-06-11T08:00:00Z",
        "name": "Snowflake production",
        "description": "Warehouse access on behalf of the viewer",
        "template": "snowflake",
        "auth_type": "Viewer",
        "config": {
            "account_url": "https://example.snowflakecomputing.com",
            "client_id": "abc123",
            "scopes": "refresh_token",
        },
        "permissions": [],
        "environment_variables": [],
    },
    {
        "id": "4",
        "guid": KEYCLOAK,
        "created_time": "2024-07-16T19:28:05Z",
        "updated_time": "2024-07-17T19:28:05Z",
        "name": "keycloak integration",
        "description": "integration description",
        "template": "custom",
        "auth_type": "Viewer",
        "config": {"auth_mode": "Confidential", "client_id": "rsconnect-oidc"},
        "permissions": [],
        "environment_variables": [],
    },
    {
        "id": "5",
        "guid": VISITOR,
        "created_time": "2025-07-15T20:35:11Z",
        "updated_time": "2025-07-15T20:35:11Z",
        "name": "Connect Visitor API Key",
        "description": "Allows access to Connect APIs on behalf of a Connect user.",
        "template": "connect",
        "auth_type": "Visitor API Key",
        "config": {"max_role": "Viewer"},
        "permissions": [],
        "environment_variables": [],
    },
    {
        "id": "6",
        "guid": KEYCLOAK_STAGING,
        "created_time": "2025-08-01T09:00:00Z",
        "updated_time": "2025-08-01T09:00:00Z",
        "name": "keycloak staging",
        "description": None,
        "template": "custom",
        "auth_type": "Service Account",
        "config": {"auth_mode": "Confidential", "client_id": "staging"},
        "permissions": [],
        "environment_variables": [],
    },
]


def seed_document_for(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"integrations": copy.deepcopy(INTEGRATIONS)}
    document.update(overrides)
    return document


def make_seed(**overrides: Any) -> Seed:
    return parse_seed(json.dumps(seed_document_for(**overrides)), "test-seed.json")


def manifest_for(
    files: Mapping[str, bytes],
    *,
    appmode: str = "python-shiny",
    requests: Sequence[Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "version": 1,
        "locale": "en_US.UTF-8",
        "metadata": {"appmode": appmode, "entrypoint": "app"},
        "python": {
            "version": "3.12.4",
            "package_manager": {"name": "pip", "package_file": "requirements.txt"},
        },
        "files": {
            name: {"checksum": hashlib.md5(data).hexdigest()} for name, data in files.items()
        },
    }
    if title is not None:
        manifest["title"] = title
    if requests is not None:
        manifest["integration_requests"] = list(requests)
    return manifest


APP_FILES: dict[str, bytes] = {
    "app.py": b"from shiny import App, ui\napp = App(ui.page_fluid('hi'), None)\n",
    "requirements.txt": b"shiny\n",
}


def write_content(
    folder: Path,
    files: Mapping[str, bytes] = APP_FILES,
    *,
    appmode: str = "python-shiny",
    requests: Sequence[Any] | None = None,
    title: str | None = None,
) -> Path:
    """A content folder with a manifest listing ``files``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = manifest_for(files, appmode=appmode, requests=requests, title=title)
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def tar_gz(entries: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle_bytes(
    files: Mapping[str, bytes] = APP_FILES,
    *,
    appmode: str = "python-shiny",
    requests: Sequence[Any] | None = None,
) -> bytes:
    """A flat bundle: manifest.json first, then the files it lists."""
    manifest = manifest_for(files, appmode=appmode, requests=requests)
    return tar_gz({"manifest.json": json.dumps(manifest).encode(), **files})


@contextlib.asynccontextmanager
async def sandbox_client(
    seed: Seed | None = None,
    options: SandboxOptions = SandboxOptions(),  # noqa: B008 - frozen
    *,
    api_key: str | None = API_KEY,
) -> AsyncIterator[tuple[RunningSandbox, aiohttp.ClientSession]]:
    """A sandbox and a session that sends the key (none when ``api_key`` is None)."""
    headers = {"Authorization": f"Key {api_key}"} if api_key is not None else {}
    async with serve_sandbox(seed or make_seed(), api_key=API_KEY, options=options) as running:
        # Cookies from a bare IP address are refused unless the jar is told otherwise.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            base_url=running.url, headers=headers, cookie_jar=jar
        ) as session:
            yield running, session


async def create_content(session: aiohttp.ClientSession, name: str = "sales-app") -> str:
    async with session.post("/__api__/v1/content", json={"name": name}) as response:
        assert response.status == 200, await response.text()
        guid = (await response.json())["guid"]
    assert isinstance(guid, str)
    return guid


async def upload(session: aiohttp.ClientSession, guid: str, data: bytes) -> str:
    async with session.post(f"/__api__/v1/content/{guid}/bundles", data=data) as response:
        assert response.status == 200, await response.text()
        bundle_id = (await response.json())["id"]
    assert isinstance(bundle_id, str)
    return bundle_id


async def wait_task(session: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    """Poll like rsconnect does until the task finishes; all output lines in order."""
    lines: list[str] = []
    first = 0
    for _ in range(200):
        async with session.get(
            f"/__api__/v1/tasks/{task_id}", params={"first": first, "wait": 1}
        ) as response:
            assert response.status == 200, await response.text()
            task: dict[str, Any] = await response.json()
        lines.extend(task["output"])
        first = task["last"]
        if task["finished"]:
            task["output"] = lines
            return task
    raise AssertionError(f"task {task_id} did not finish")


async def deploy(
    session: aiohttp.ClientSession, guid: str, body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    async with session.post(f"/__api__/v1/content/{guid}/deploy", json=body or {}) as response:
        assert response.status == 202, await response.text()
        task_id = (await response.json())["task_id"]
    return await wait_task(session, task_id)


async def deploy_bundle(
    session: aiohttp.ClientSession, data: bytes, name: str = "sales-app"
) -> tuple[str, str, dict[str, Any]]:
    guid = await create_content(session, name)
    bundle_id = await upload(session, guid, data)
    task = await deploy(session, guid, {"bundle_id": bundle_id})
    return guid, bundle_id, task


async def get_json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def error_of(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert set(body) == {"code", "error", "payload"}
    assert body["payload"] is None
    return response.status, body
