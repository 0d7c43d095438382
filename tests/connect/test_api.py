"""Every client method against the sandbox."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import pytest

from batch_deploy.bundle import BuiltBundle
from batch_deploy.connect import Association, Bundle, ServerSettings, User
from batch_deploy.errors import ConnectError
from batch_deploy.sandbox.seed import DEFAULT_USER_GUID

from .connect_support import EXISTING, GITHUB, INTEGRATIONS, SNOWFLAKE, make_seed, sandbox_client

pytestmark = pytest.mark.anyio


def listed_one(bundles: Sequence[Bundle]) -> Bundle:
    assert len(bundles) == 1
    return bundles[0]


async def test_server_settings() -> None:
    async with sandbox_client() as (_, client):
        settings = await client.server_settings()
    assert settings == ServerSettings(
        version="2025.09.0",
        hostname=settings.hostname,
        oauth_integrations_enabled=True,
        oauth_licensed=True,
    )
    assert settings.hostname


async def test_server_settings_hidden_version_and_flags_off() -> None:
    seed = make_seed(
        version="", oauth_integrations_enabled=False, license={"oauth-integrations": False}
    )
    async with sandbox_client(seed) as (_, client):
        settings = await client.server_settings()
    assert (settings.version, settings.oauth_integrations_enabled, settings.oauth_licensed) == (
        "",
        False,
        False,
    )


async def test_current_user() -> None:
    seed = make_seed(user={"guid": DEFAULT_USER_GUID, "username": "pat", "role": "publisher"})
    async with sandbox_client(seed) as (_, client):
        assert await client.current_user() == User(DEFAULT_USER_GUID, "pat", "publisher")


async def test_integrations() -> None:
    async with sandbox_client() as (_, client):
        found = await client.integrations()
    assert found is not None
    assert [i.guid for i in found] == [SNOWFLAKE, GITHUB]
    assert found[0].template == "snowflake"
    assert found[1].description is None
    assert dict(found[1].config) == INTEGRATIONS[1]["config"]


async def test_integrations_absent_on_old_servers() -> None:
    async with sandbox_client(make_seed(version="2024.03.0")) as (_, client):
        assert await client.integrations() is None


async def test_content_lifecycle() -> None:
    async with sandbox_client() as (running, client):
        assert await client.find_content("new-app") is None
        created = await client.create_content("new-app", "New app")
        assert (created.name, created.title, created.bundle_id) == ("new-app", "New app", None)
        assert created.dashboard_url.startswith(running.url)
        assert await client.find_content("new-app") == created
        assert await client.get_content(created.guid) == created
        renamed = await client.update_content(created.guid, title="Renamed")
        assert renamed.title == "Renamed"
        assert (await client.get_content(created.guid)).title == "Renamed"
        existing = await client.find_content("existing-app")
        assert existing is not None
        assert existing.guid == EXISTING


async def test_create_without_title() -> None:
    async with sandbox_client() as (_, client):
        created = await client.create_content("untitled")
    assert created.title is None


async def test_find_prefers_the_key_owners_item() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    seed = make_seed(
        content=[
            {"guid": EXISTING, "name": "shared", "owner_guid": other},
            {"guid": "22222222-3333-4444-8555-666666666666", "name": "shared"},
        ]
    )
    async with sandbox_client(seed) as (_, client):
        with pytest.raises(ConnectError) as caught:
            await client.find_content("shared")
        assert str(caught.value) == (
            "sandbox: GET /__api__/v1/content: 2 content items are named 'shared' "
            f"({EXISTING}, 22222222-3333-4444-8555-666666666666); give this server's guid "
            "for the content in the job file to choose one"
        )
        await client.current_user()
        found = await client.find_content("shared")
    assert found is not None
    assert found.guid == "22222222-3333-4444-8555-666666666666"


async def test_upload_deploy_and_active_md5(bundle: BuiltBundle) -> None:
    async with sandbox_client() as (running, client):
        content = await client.create_content("deployed", "Deployed")
        assert await client.active_bundle_md5(content) is None
        uploaded = await client.upload_bundle(content.guid, bundle.path, bundle.md5_hex)
        assert uploaded == Bundle(
            id=uploaded.id,
            content_guid=content.guid,
            size=bundle.size,
            active=False,
            archive_md5=bundle.md5_hex,
            created_time=uploaded.created_time,
        )
        stored = running.store.bundles[int(uploaded.id)]
        assert stored.path.read_bytes() == bundle.path.read_bytes()
        lines: list[str] = []
        task_id = await client.deploy(content.guid, uploaded.id)
        task = await client.wait_task(task_id, deadline_s=10, on_output=lines.append)
        assert task.finished
        assert task.code == 0
        assert task.id == task_id
        assert list(task.output) == lines
        assert lines[0] == f"Extracting bundle {uploaded.id}..."
        assert lines[-1] == f"Activated bundle {uploaded.id}."
        deployed = await client.get_content(content.guid)
        assert deployed.bundle_id == uploaded.id
        assert await client.active_bundle_md5(deployed) == bundle.md5_hex
        assert await client.get_bundle(content.guid, uploaded.id) == listed_one(
            await client.list_bundles(content.guid)
        )
        gone = replace(deployed, bundle_id="999")
        assert await client.active_bundle_md5(gone) is None
        listed = await client.list_bundles(content.guid)
        assert [(b.id, b.active, b.archive_md5) for b in listed] == [
            (uploaded.id, True, hashlib.md5(bundle.path.read_bytes()).hexdigest())
        ]


async def test_associations_round_trip() -> None:
    async with sandbox_client() as (_, client):
        assert await client.associations(EXISTING) == ()
        await client.set_associations(EXISTING, [GITHUB, SNOWFLAKE])
        found = await client.associations(EXISTING)
        assert found == (
            Association(EXISTING, GITHUB, "GitHub", "github", "Viewer"),
            Association(
                EXISTING, SNOWFLAKE, "Snowflake production", "snowflake", "Viewer"
            ),
        )
        await client.set_associations(EXISTING, [])
        assert await client.associations(EXISTING) == ()


async def test_seeded_associations_are_read() -> None:
    seed = make_seed(content=[{"guid": EXISTING, "name": "linked", "associations": [SNOWFLAKE]}])
    async with sandbox_client(seed) as (_, client):
        found = await client.associations(EXISTING)
    assert [a.integration_guid for a in found] == [SNOWFLAKE]

