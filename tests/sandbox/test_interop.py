"""The official clients, unchanged, against the sandbox.

rsconnect-python runs as a subprocess (its ``rsconnect`` script next to this
interpreter); posit-sdk runs in-process against a ``SandboxThread``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from posit import connect
from posit.connect.errors import ClientError

from batch_deploy.sandbox import SandboxOptions, SandboxThread

from .helpers import (
    API_KEY,
    KEYCLOAK,
    KEYCLOAK_STAGING,
    SNOWFLAKE,
    VISITOR,
    bundle_bytes,
    make_seed,
    write_content,
)

pytestmark = pytest.mark.interop

REQUESTS: list[Any] = [
    {"type": "custom", "name": "^keycloak integration$"},
    {"type": "connect", "auth_type": "Visitor API Key"},
]


def rsconnect_command() -> list[str]:
    script = Path(sys.executable).with_name("rsconnect")
    if script.exists():
        return [str(script)]
    found = shutil.which("rsconnect")
    return [found] if found else [sys.executable, "-m", "rsconnect.main"]


@pytest.fixture
def run_rsconnect(tmp_path: Path) -> Any:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RSCONNECT_DISABLE_VERSION_CHECK": "1"}
    env.pop("CONNECT_SERVER_VERSION", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*rsconnect_command(), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_rsconnect_deploys_redeploys_and_searches(tmp_path: Path, run_rsconnect: Any) -> None:
    app = tmp_path / "sales"
    manifest = write_content(app, requests=REQUESTS)
    # Sticky sessions on: rsconnect must send the deploy response's cookie with its polls.
    options = SandboxOptions(sticky_cookies=True)
    with SandboxThread(make_seed(), api_key=API_KEY, options=options) as sandbox:
        server = ["--server", sandbox.url, "--api-key", API_KEY]

        first = run_rsconnect(
            "deploy", "manifest", str(manifest), *server, "--title", "Sales dashboard"
        )
        assert first.returncode == 0, first.stdout + first.stderr
        log = first.stdout + first.stderr
        assert "Deployment completed successfully." in log
        assert "Verifying deployed content..." in log  # 2025.06.0+: draft, verify, activate
        store = sandbox.store
        (record,) = store.content.values()
        # rsconnect derives the name from the title and checks it is free (GET ?name=).
        assert (record.name, record.title) == ("sales_dashboard", "Sales dashboard")
        assert (record.app_mode, record.bundle_id) == ("python-shiny", 1)
        assert [a.integration_guid for a in store.associations[record.guid]] == [
            KEYCLOAK, VISITOR]
        assert sorted(task.activate for task in store.tasks.values()) == [False, True]

        # Redeploy into the same item by guid; --metadata makes it a multipart upload.
        second = run_rsconnect(
            "deploy", "manifest", str(manifest), *server,
            "--app-id", record.guid, "--metadata", "source_commit=abc123",
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert len(store.content) == 1
        assert record.bundle_id == 2
        assert store.bundles[2].metadata == {"source_commit": "abc123"}

        searched = run_rsconnect("content", "search", *server)
        assert searched.returncode == 0, searched.stderr
        found = json.loads(searched.stdout)
        assert [(c["guid"], c["app_mode"], c["bundle_id"]) for c in found] == [
            (record.guid, "python-shiny", "2")]


def test_rsconnect_shows_the_tasks_error(tmp_path: Path, run_rsconnect: Any) -> None:
    app = tmp_path / "broken"
    manifest = write_content(app, requests=[{"type": "databricks"}])
    seed = make_seed(version="2025.09.0", content=[{"name": "broken-app", "app_mode": "unknown"}])
    with SandboxThread(seed, api_key=API_KEY) as sandbox:
        # A numeric --app-id goes through the legacy /__api__/applications/{id}.
        result = run_rsconnect(
            "deploy", "manifest", str(manifest),
            "--server", sandbox.url, "--api-key", API_KEY, "--app-id", "1",
        )
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert (
            'Error from Connect server: integration request could not be satisfied: '
            '{"type":"databricks"}'
        ) in output
        assert "Task exited with status 1." in output
        (record,) = sandbox.store.content.values()
        assert record.bundle_id is None


def test_posit_sdk_integrations_and_associations() -> None:
    with SandboxThread(make_seed(), api_key=API_KEY) as sandbox:
        client = connect.Client(url=sandbox.url, api_key=API_KEY)
        assert client.version == "2025.11.0"
        assert client.me["username"] == "admin"

        integrations = client.oauth.integrations.find()
        assert [i["guid"] for i in integrations] == [
            SNOWFLAKE, KEYCLOAK, VISITOR, KEYCLOAK_STAGING]
        by = client.oauth.integrations.find_by
        assert by(integration_type="custom")["guid"] == KEYCLOAK  # the first in list order
        assert by(integration_type="custom", auth_type="Service Account")["guid"] == (
            KEYCLOAK_STAGING)
        assert by(name="^Snowflake")["guid"] == SNOWFLAKE
        assert by(config={"client_id": "staging"})["guid"] == KEYCLOAK_STAGING
        assert by(integration_type="databricks") is None
        assert client.oauth.integrations.get(VISITOR)["template"] == "connect"

        content = client.content.create(name="sdk-app", title="SDK app")
        assert client.content.get(content["guid"])["owner"]["username"] == "admin"
        assert [c["guid"] for c in client.content.find(name="sdk-app")] == [content["guid"]]
        associations = content.oauth.associations
        associations.update([KEYCLOAK, VISITOR])
        assert [a["oauth_integration_guid"] for a in associations.find()] == [KEYCLOAK, VISITOR]
        found = associations.find_by(integration_type="connect")
        assert found is not None
        assert found["oauth_integration_guid"] == VISITOR
        assert associations.find_by(name="^Snowflake") is None
        linked = client.oauth.integrations.get(KEYCLOAK).associations.find()
        assert [a["content_guid"] for a in linked] == [content["guid"]]
        associations.update(SNOWFLAKE)
        assert [a["oauth_integration_guid"] for a in associations.find()] == [SNOWFLAKE]
        associations.delete()
        assert associations.find() == []


def test_posit_sdk_deploys_a_bundle_with_sticky_sessions() -> None:
    options = SandboxOptions(sticky_cookies=True, task_seconds=0.2)
    with SandboxThread(make_seed(), api_key=API_KEY, options=options) as sandbox:
        client = connect.Client(url=sandbox.url, api_key=API_KEY)
        content = client.content.create(name="sdk-deploy")
        bundle = content.bundles.create(bundle_bytes(requests=REQUESTS))
        task = bundle.deploy()
        task.wait_for()
        assert (task["finished"], task["code"], task["error"]) == (True, 0, "")
        assert task["output"][-1] == f"Activated bundle {bundle['id']}."
        assert content.bundles.active()["id"] == bundle["id"]
        assert [a["oauth_integration_guid"] for a in content.oauth.associations.find()] == [
            KEYCLOAK, VISITOR]
        content.delete()
        assert sandbox.store.content == {}


def test_posit_sdk_reads_the_sandboxs_errors() -> None:
    with SandboxThread(make_seed(version="2025.06.0"), api_key=API_KEY) as sandbox:
        client = connect.Client(url=sandbox.url, api_key=API_KEY)
        content = client.content.create(name="older-server")
        with pytest.raises(ClientError) as caught:
            content.oauth.associations.update([KEYCLOAK, VISITOR])
        assert (caught.value.http_status, caught.value.error_code) == (400, 25)
        assert caught.value.error_message == (
            "This server (2025.06.0) associates at most one OAuth integration with a content "
            "item; Connect 2025.07.0 allows several. Send one element."
        )
        wrong = connect.Client(url=sandbox.url, api_key="wrong")
        with pytest.raises(ClientError) as refused:
            wrong.oauth.integrations.find()
        assert (refused.value.http_status, refused.value.error_code) == (401, 30)
