"""Building blocks for end-to-end tests: seeds, content folders, job files."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_deploy.jobs import Job, load_job
from batch_deploy.sandbox import SandboxOptions, parse_seed, serve_sandbox
from batch_deploy.sandbox.server import RunningSandbox

API_KEY = "e2e-key-Zq8rT2vX9mW4"
KEY_ENV = "E2E_CONNECT_API_KEY"

SNOWFLAKE = "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11"
KEYCLOAK = "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a"
VISITOR = "d32b3f4e-3f4a-4c5a-9f1e-8b6e2f7c9a2b"
DATABRICKS_A = "c1e9f6a2-7d3b-4a8e-b5f0-2d4c6e8a0b13"
DATABRICKS_B = "e4a8b2c6-1f5d-4e9a-8b7c-3d2e1f0a9b84"


def integration(
    guid: str, name: str, template: str, auth_type: str, **config: Any
) -> dict[str, Any]:
    return {
        "guid": guid,
        "name": name,
        "description": f"{name} for tests",
        "template": template,
        "auth_type": auth_type,
        "config": config,
    }


ALL_INTEGRATIONS = [
    integration(SNOWFLAKE, "Snowflake production", "snowflake", "Viewer", client_id="abc"),
    integration(KEYCLOAK, "keycloak integration", "custom", "Viewer", auth_mode="Confidential"),
    integration(VISITOR, "Connect Visitor API Key", "connect", "Visitor API Key"),
    integration(DATABRICKS_A, "Databricks analytics", "databricks", "Viewer"),
    integration(DATABRICKS_B, "Databricks ML", "databricks", "Service Account"),
]


def seed(version: str, *, role: str = "publisher", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": version,
        "user": {
            "guid": "7e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b",
            "username": "deployer",
            "role": role,
        },
        "integrations": ALL_INTEGRATIONS,
    }
    document.update(extra)
    return document


# Requests used across the tests, named by what they show.
ONE_SNOWFLAKE: list[dict[str, Any]] = [
    {"name": "^Snowflake", "type": "snowflake", "auth_type": "Viewer"}
]
TWO_REQUESTS: list[dict[str, Any]] = [
    {"type": "custom", "name": "keycloak", "config": {"auth_mode": "Confidential"}},
    {"type": "connect", "auth_type": "Visitor API Key"},
]
AMBIGUOUS: list[dict[str, Any]] = [{"type": "databricks"}]
UNMATCHED: list[dict[str, Any]] = [{"type": "snowflake", "auth_type": "Service Account"}]


def write_content(
    folder: Path,
    requests: Sequence[Mapping[str, Any]] | None = None,
    files: Mapping[str, bytes] | None = None,
    listed: Sequence[str] | None = None,
) -> Path:
    """A content folder with a real manifest; ``listed`` overrides the file list."""
    files = (
        files if files is not None else {"app.py": b"print('hello')\n", "requirements.txt": b"\n"}
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    names = list(listed) if listed is not None else list(files)
    manifest: dict[str, Any] = {
        "version": 1,
        "metadata": {"appmode": "python-api", "entrypoint": "app"},
        "files": {
            name: {"checksum": hashlib.md5(files.get(name, b"")).hexdigest()} for name in names
        },
    }
    if requests is not None:
        manifest["integration_requests"] = list(requests)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@dataclass
class Fleet:
    """Sandboxes started by the test (so it can look inside them) and a job folder."""

    root: Path
    servers: dict[str, RunningSandbox]

    def job_text(
        self,
        content: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any] | None = None,
        extra_servers: str = "",
    ) -> str:
        lines = ["[run]"]
        for key, value in {"report_dir": "reports", **(run or {})}.items():
            lines.append(f"{key} = {json.dumps(value)}")
        for name, running in self.servers.items():
            lines += [f"[servers.{name}]", f'url = "{running.url}"', f'api_key_env = "{KEY_ENV}"']
        lines.append(extra_servers)
        for entry in content:
            lines.append("[[content]]")
            for key, value in entry.items():
                lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    def job(
        self,
        content: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any] | None = None,
        extra_servers: str = "",
        environ: Mapping[str, str] | None = None,
    ) -> Job:
        path = self.root / "jobs.toml"
        path.write_text(self.job_text(content, run, extra_servers))
        return load_job(path, {KEY_ENV: API_KEY, **(environ or {})})


@contextlib.asynccontextmanager
async def fleet(
    root: Path,
    seeds: Mapping[str, Mapping[str, Any]],
    options: SandboxOptions = SandboxOptions(),  # noqa: B008 - frozen
) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack:
        servers = {
            name: await stack.enter_async_context(
                serve_sandbox(
                    parse_seed(json.dumps(doc), f"{name}.json"), api_key=API_KEY, options=options
                )
            )
            for name, doc in seeds.items()
        }
        yield Fleet(root, servers)
