"""Every sandbox endpoint over HTTP, with aiohttp's client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from typing import Any

import aiohttp
import pytest

from batch_deploy.sandbox import SandboxOptions, serve_sandbox

from .helpers import (
    API_KEY,
    INTEGRATIONS,
    KEYCLOAK,
    SNOWFLAKE,
    VISITOR,
    bundle_bytes,
    create_content,
    deploy,
    deploy_bundle,
    error_of,
    get_json,
    make_seed,
    sandbox_client,
    upload,
    wait_task,
)

pytestmark = pytest.mark.anyio

NOT_FOUND = {"code": 4, "error": "The requested object does not exist.", "payload": None}


# Authentication ------------------------------------------------------------------


async def test_server_settings_needs_no_key() -> None:
    seed = make_seed(version="2025.09.0", hostname="connect.example.com",
                     license={"oauth-integrations": False})
    async with sandbox_client(seed, api_key=None) as (_, http):
        settings = await get_json(http, "/__api__/server_settings")
    assert settings["version"] == "2025.09.0"
    assert settings["hostname"] == "connect.example.com"
    assert settings["oauth_integrations_enabled"] is True
    assert settings["license"] == {"oauth-integrations": False}


async def test_every_other_api_path_needs_the_key() -> None:
    async with sandbox_client(api_key=None) as (_, http):
        for path in ("/__api__/v1/user", "/__api__/v1/oauth/integrations", "/__api__/v1/content",
                     "/__api__/v1/tasks/x", "/__api__/applications/1", "/__api__/nowhere"):
            async with http.get(path) as response:
                assert await error_of(response) == (401, {
                    "code": 30,
                    "error": "The requested operation requires authentication: send the header "
                    "\"Authorization: Key <API key>\".",
                    "payload": None,
                })
        async with http.get("/__api__/v1/user", headers={"Authorization": "Bearer x"}) as response:
            assert (await error_of(response))[1]["code"] == 30


async def test_a_wrong_key_is_refused_with_code_30() -> None:
    async with (
        sandbox_client(api_key="not-the-key") as (_, http),
        http.get("/__api__/v1/user") as response,
    ):
        assert await error_of(response) == (401, {
            "code": 30,
            "error": "We couldn't log you in with the provided credentials: the API key is "
            "not valid for this server.",
            "payload": None,
        })
        assert API_KEY not in await response.text()


async def test_unknown_api_paths_are_json_404s() -> None:
    async with sandbox_client() as (_, http):
        async with http.get("/__api__/v1/nothing/here") as response:
            assert await error_of(response) == (404, {
                "code": 2,
                "error": "The requested method or endpoint is not supported: "
                "GET /__api__/v1/nothing/here.",
                "payload": None,
            })
        async with http.put("/__api__/v1/content") as response:
            assert (await error_of(response))[1]["code"] == 2


# Server and user -----------------------------------------------------------------


async def test_current_user_and_user_by_guid() -> None:
    seed = make_seed(user={"guid": "u-1", "username": "pat", "role": "publisher"})
    async with sandbox_client(seed) as (_, http):
        me = await get_json(http, "/__api__/v1/user")
        assert (me["guid"], me["username"], me["user_role"]) == ("u-1", "pat", "publisher")
        assert await get_json(http, "/__api__/v1/users/u-1") == me
        async with http.get("/__api__/v1/users/u-2") as response:
            assert await error_of(response) == (404, {
                "code": 9, "error": "The requested user could not be found.", "payload": None})
        python = await get_json(http, "/__api__/v1/server_settings/python")
        assert python["api_enabled"] is True
        assert [i["version"] for i in python["installations"]] == ["3.11.7", "3.12.4"]


async def test_hidden_version_is_an_empty_string() -> None:
    async with sandbox_client(make_seed(version="")) as (_, http):
        assert (await get_json(http, "/__api__/server_settings"))["version"] == ""
        # Hidden means current: the integrations API is there.
        assert len(await get_json(http, "/__api__/v1/oauth/integrations")) == len(INTEGRATIONS)


# Integrations --------------------------------------------------------------------


async def test_integrations_are_served_as_seeded_in_order() -> None:
    older = {k: v for k, v in INTEGRATIONS[0].items() if k not in ("auth_type", "permissions")}
    seed = make_seed(integrations=[older, INTEGRATIONS[2]])
    async with sandbox_client(seed) as (running, http):
        listed = await get_json(http, "/__api__/v1/oauth/integrations")
        assert [i["guid"] for i in listed] == [SNOWFLAKE, VISITOR]
        assert "auth_type" not in listed[0]
        assert listed[0]["permissions"] == []  # Connect always sends these lists
        assert listed[1] == INTEGRATIONS[2]
        one = await get_json(http, f"/__api__/v1/oauth/integrations/{VISITOR}")
        assert one == INTEGRATIONS[2]
        async with http.get("/__api__/v1/oauth/integrations/missing") as response:
            assert await error_of(response) == (404, NOT_FOUND)
        assert running.store.integrations[0].guid == SNOWFLAKE


async def test_integrations_api_is_404_before_2024_08() -> None:
    async with sandbox_client(make_seed(version="2024.07.0")) as (_, http):
        guid = await create_content(http)
        for path in ("/__api__/v1/oauth/integrations",
                     f"/__api__/v1/oauth/integrations/{VISITOR}",
                     f"/__api__/v1/content/{guid}/oauth/integrations/associations"):
            async with http.get(path) as response:
                status, body = await error_of(response)
            assert (status, body["code"]) == (404, 2)
            assert body["error"] == (
                f"The requested method or endpoint is not supported: GET {path} (OAuth "
                "integrations arrived in Connect 2024.08.0; this server is 2024.07.0)."
            )
    async with sandbox_client(make_seed(version="2024.08.0")) as (_, http):
        assert len(await get_json(http, "/__api__/v1/oauth/integrations")) == len(INTEGRATIONS)


# Content -------------------------------------------------------------------------


async def test_create_get_list_and_filter_content() -> None:
    async with sandbox_client() as (running, http):
        async with http.post("/__api__/v1/content",
                             json={"name": "sales-app", "title": "Sales"}) as response:
            assert response.status == 200
            created = await response.json()
        guid = created["guid"]
        assert created["name"] == "sales-app"
        assert created["title"] == "Sales"
        assert created["id"] == "1"
        assert created["app_mode"] == "unknown"
        assert created["bundle_id"] is None
        assert created["owner_guid"] == running.store.user.guid
        assert created["content_url"] == f"{running.url}/content/{guid}/"
        assert created["dashboard_url"] == f"{running.url}/connect/#/apps/{guid}"
        for key in ("created_time", "last_deployed_time", "access_type", "description"):
            assert key in created
        await create_content(http, "other_app")
        assert await get_json(http, f"/__api__/v1/content/{guid}") == created
        assert len(await get_json(http, "/__api__/v1/content")) == 2
        assert await get_json(http, "/__api__/v1/content?name=sales-app") == [created]
        assert await get_json(http, "/__api__/v1/content?name=absent") == []
        with_owner = await get_json(http, f"/__api__/v1/content/{guid}?include=owner,tags")
        assert with_owner["owner"]["guid"] == running.store.user.guid
        assert with_owner["tags"] == []
        async with http.get("/__api__/v1/content/no-such-guid") as response:
            assert await error_of(response) == (404, NOT_FOUND)


@pytest.mark.parametrize("name", ["ab", "a" * 65, "has space", "dots.no", "", None])
async def test_content_names_follow_the_rule(name: Any) -> None:
    async with sandbox_client() as (_, http):
        body = {} if name is None else {"name": name}
        async with http.post("/__api__/v1/content", json=body) as response:
            status, error = await error_of(response)
    shown = "missing" if name is None else repr(name)
    assert (status, error) == (400, {
        "code": 5,
        "error": f"The content name {shown} is not valid: a name must be between 3 and 64 "
        "alphanumeric characters, dashes, and underscores.",
        "payload": None,
    })


async def test_a_taken_name_is_a_conflict() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http, "sales-app")
        async with http.post("/__api__/v1/content", json={"name": "sales-app"}) as response:
            assert await error_of(response) == (409, {
                "code": 26,
                "error": f"An object with that name already exists: content 'sales-app' is "
                f"{guid}; redeploy to that guid or choose another name.",
                "payload": None,
            })


async def test_bad_json_bodies() -> None:
    async with sandbox_client() as (_, http):
        async with http.post("/__api__/v1/content", data=b"{nope") as response:
            status, error = await error_of(response)
        assert (status, error["code"]) == (400, 121)
        assert error["error"].startswith("The request JSON is invalid: Expecting property name")
        async with http.post("/__api__/v1/content", json=["sales"]) as response:
            assert (await error_of(response))[1] == {
                "code": 121,
                "error": 'The request JSON is invalid: send an object like {"name": ...}.',
                "payload": None,
            }


async def test_a_viewer_cannot_publish() -> None:
    seed = make_seed(user={"role": "viewer"}, content=[{"name": "seeded"}])
    async with sandbox_client(seed) as (running, http):
        async with http.post("/__api__/v1/content", json={"name": "sales-app"}) as response:
            assert await error_of(response) == (403, {
                "code": 22,
                "error": "You don't have permission to perform this operation: viewers cannot "
                "publish content; use a publisher's or an administrator's API key.",
                "payload": None,
            })
        guid = next(iter(running.store.content))
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=b"x") as response:
            status, error = await error_of(response)
        assert (status, error["code"]) == (403, 21)


async def test_a_publisher_changes_only_their_own_content() -> None:
    seed = make_seed(
        user={"guid": "me", "role": "publisher"},
        content=[{"guid": "theirs", "name": "theirs", "owner_guid": "someone-else"}],
    )
    async with sandbox_client(seed) as (_, http):
        mine = await create_content(http, "theirs")  # names are unique per owner
        async with http.patch(f"/__api__/v1/content/{mine}", json={"title": "Mine"}) as response:
            assert response.status == 200
        async with http.patch("/__api__/v1/content/theirs", json={"title": "x"}) as response:
            assert await error_of(response) == (403, {
                "code": 21,
                "error": "You don't have permission to change this item: content theirs "
                "belongs to another user and this key's user is a publisher.",
                "payload": None,
            })
        async with http.delete("/__api__/v1/content/theirs") as response:
            assert (await error_of(response))[1]["code"] == 20


async def test_patch_and_delete_content() -> None:
    async with sandbox_client() as (running, http):
        guid = await create_content(http)
        await create_content(http, "taken")
        body = {"title": "New title", "description": "d", "access_type": "all", "guid": "ignored"}
        async with http.patch(f"/__api__/v1/content/{guid}", json=body) as response:
            patched = await response.json()
        assert (patched["title"], patched["description"], patched["access_type"]) == (
            "New title", "d", "all")
        assert patched["guid"] == guid
        async with http.patch(f"/__api__/v1/content/{guid}", json={"name": "taken"}) as response:
            assert (await error_of(response))[0] == 409
        async with http.patch(f"/__api__/v1/content/{guid}",
                              json={"access_type": "everyone"}) as response:
            assert (await error_of(response))[1] == {
                "code": 117, "error": "Unknown access type 'everyone'.", "payload": None}
        async with http.patch(f"/__api__/v1/content/{guid}", json={"max_processes": True}) as r:
            assert (await error_of(r))[1]["error"] == (
                "The parameter is invalid: max_processes has the wrong type.")
        bundle_id = await upload(http, guid, bundle_bytes())
        async with http.delete(f"/__api__/v1/content/{guid}") as response:
            assert response.status == 204
        assert guid not in running.store.content
        assert int(bundle_id) not in running.store.bundles
        async with http.get(f"/__api__/v1/content/{guid}") as response:
            assert (await error_of(response))[0] == 404


async def test_environment_variable_names() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http)
        body = [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
        async with http.patch(f"/__api__/v1/content/{guid}/environment", json=body) as response:
            assert await response.json() == ["A", "B"]
        async with http.patch(f"/__api__/v1/content/{guid}/environment",
                              json=[{"name": "A", "value": None}]) as response:
            assert await response.json() == ["B"]
        assert await get_json(http, f"/__api__/v1/content/{guid}/environment") == ["B"]


async def test_legacy_applications_by_id_or_guid() -> None:
    async with sandbox_client() as (_, http):
        guid, bundle_id, _task = await deploy_bundle(http, bundle_bytes())
        by_id = await get_json(http, "/__api__/applications/1")
        assert by_id == await get_json(http, f"/__api__/applications/{guid}")
        assert (by_id["id"], by_id["guid"], by_id["bundle_id"]) == (1, guid, int(bundle_id))
        assert by_id["app_mode"] == 15  # rsconnect's ordinal for python-shiny
        async with http.get("/__api__/applications/99") as response:
            assert await error_of(response) == (404, NOT_FOUND)


# Bundles -------------------------------------------------------------------------


async def test_upload_raw_gzip_with_and_without_content_type() -> None:
    data = bundle_bytes()
    md5 = hashlib.md5(data).hexdigest()
    async with sandbox_client() as (running, http):
        guid = await create_content(http)
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=data,
                             headers={"Content-Type": "application/gzip"}) as response:
            first = await response.json()
        assert first["id"] == "1"
        assert first["content_guid"] == guid
        assert first["size"] == len(data)
        assert first["active"] is False
        assert first["metadata"]["archive_md5"] == md5
        assert first["metadata"]["archive_sha1"] == hashlib.sha1(data).hexdigest()
        assert "created_time" in first

        async def chunked() -> Any:
            for start in range(0, len(data), 100):
                yield data[start:start + 100]

        # No Content-Type and a chunked body, as rsconnect-python sends it.
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=chunked(),
                             headers={"Content-Type": ""}) as response:
            assert response.status == 200, await response.text()
            second = await response.json()
        assert second["size"] == len(data)
        assert running.store.bundles[2].path.read_bytes() == data
        listed = await get_json(http, f"/__api__/v1/content/{guid}/bundles")
        assert [b["id"] for b in listed] == ["2", "1"]
        assert await get_json(http, f"/__api__/v1/content/{guid}/bundles/1") == first


async def test_bundle_checksum_header() -> None:
    data = bundle_bytes()
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    async with sandbox_client() as (running, http):
        guid = await create_content(http)
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=data,
                             headers={"X-Content-Checksum": good}) as response:
            assert response.status == 200
        wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=data,
                             headers={"X-Content-Checksum": wrong}) as response:
            assert await error_of(response) == (400, {
                "code": 104,
                "error": "The content checksum header and body MD5 sum are not equal: "
                f"X-Content-Checksum is {wrong!r} but the archive's is {good!r}; send "
                "base64(MD5(archive)) or leave the header out.",
                "payload": None,
            })
        assert len(running.store.bundles) == 1
        assert len(list(running.store.bundle_dir.iterdir())) == 1  # the refused one is gone


async def test_multipart_upload_with_metadata() -> None:
    data = bundle_bytes()
    async with sandbox_client() as (running, http):
        guid = await create_content(http)
        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps({"source": "git", "source_commit": "abc"}))
        form.add_field("archive", data, filename="bundle.tar.gz",
                       content_type="application/x-tar")
        checksum = base64.b64encode(hashlib.md5(data).digest()).decode()
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=form,
                             headers={"X-Content-Checksum": checksum}) as response:
            assert response.status == 200, await response.text()
            bundle = await response.json()
        assert bundle["size"] == len(data)
        assert bundle["metadata"]["source"] == "git"
        assert bundle["metadata"]["source_commit"] == "abc"
        assert running.store.bundles[1].path.read_bytes() == data

        for metadata in ("[1, 2]", "{" + " " * (1 << 20) + "}"):
            form = aiohttp.FormData()
            form.add_field("metadata", metadata)
            form.add_field("archive", data, filename="bundle.tar.gz")
            async with http.post(f"/__api__/v1/content/{guid}/bundles", data=form) as response:
                assert await error_of(response) == (400, {
                    "code": 19,
                    "error": "The requested metadata is invalid: the \"metadata\" field must be "
                    "a JSON object of at most 1 MiB.",
                    "payload": None,
                })

        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("other", "x")
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=form) as response:
            assert await error_of(response) == (400, {
                "code": 12,
                "error": "A required parameter is missing: the multipart body has no "
                "\"archive\" field; send the .tar.gz as the field named archive.",
                "payload": None,
            })


async def test_empty_upload_is_refused() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http)
        async with http.post(f"/__api__/v1/content/{guid}/bundles", data=b"") as response:
            assert await error_of(response) == (400, {
                "code": 125,
                "error": "Content-Length cannot be 0: the upload held no archive bytes.",
                "payload": None,
            })


async def test_download_and_delete_bundles() -> None:
    data = bundle_bytes()
    async with sandbox_client() as (_, http):
        guid, active, _ = await deploy_bundle(http, data)
        spare = await upload(http, guid, data + b"")
        async with http.get(f"/__api__/v1/content/{guid}/bundles/{active}/download") as r:
            assert r.status == 200
            assert r.content_type == "application/gzip"
            assert await r.read() == data
        async with http.delete(f"/__api__/v1/content/{guid}/bundles/{active}") as response:
            assert await error_of(response) == (400, {
                "code": 75,
                "error": "You may not delete the active bundle for an application; deploy "
                "another bundle first.",
                "payload": None,
            })
        async with http.delete(f"/__api__/v1/content/{guid}/bundles/{spare}") as response:
            assert response.status == 204
        async with http.get(f"/__api__/v1/content/{guid}/bundles/{spare}") as response:
            assert await error_of(response) == (404, NOT_FOUND)


# Deploy and tasks ----------------------------------------------------------------


async def test_deploy_activates_the_bundle() -> None:
    async with sandbox_client() as (running, http):
        guid, bundle_id, task = await deploy_bundle(http, bundle_bytes())
        assert task["finished"] is True
        assert (task["code"], task["error"], task["result"]) == (0, "", None)
        assert task["output"][0] == f"Extracting bundle {bundle_id}..."
        assert task["output"][-1] == f"Activated bundle {bundle_id}."
        content = await get_json(http, f"/__api__/v1/content/{guid}")
        assert content["bundle_id"] == bundle_id
        assert content["app_mode"] == "python-shiny"
        assert content["last_deployed_time"] >= content["created_time"]
        listed = await get_json(http, f"/__api__/v1/content/{guid}/bundles")
        assert listed[0]["active"] is True
        assert running.store.content[guid].bundle_id == int(bundle_id)


async def test_deploy_without_bundle_id_takes_the_newest() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http)
        async with http.post(f"/__api__/v1/content/{guid}/deploy", json={}) as response:
            assert await error_of(response) == (404, {
                "code": 28,
                "error": f"No application bundle to deploy: content {guid} has none; upload "
                "one with POST .../bundles first.",
                "payload": None,
            })
        await upload(http, guid, bundle_bytes())
        newest = await upload(http, guid, bundle_bytes({"app.py": b"print(2)"}))
        await deploy(http, guid, {"bundle_id": None})
        assert (await get_json(http, f"/__api__/v1/content/{guid}"))["bundle_id"] == newest
        async with http.post(f"/__api__/v1/content/{guid}/deploy") as response:  # no body
            assert response.status == 202


async def test_deploy_of_another_contents_bundle() -> None:
    async with sandbox_client() as (_, http):
        one = await create_content(http, "one-app")
        two = await create_content(http, "two-app")
        bundle_id = await upload(http, one, bundle_bytes())
        async with http.post(f"/__api__/v1/content/{two}/deploy",
                             json={"bundle_id": bundle_id}) as response:
            assert await error_of(response) == (400, {
                "code": 82,
                "error": "The bundle for deployment must belong to the target application: "
                f"bundle {bundle_id} belongs to content {one}.",
                "payload": None,
            })
        async with http.post(f"/__api__/v1/content/{two}/deploy",
                             json={"bundle_id": "404"}) as response:
            assert (await error_of(response))[1]["error"] == (
                "The requested object does not exist. (bundle '404')")


async def test_a_failing_bundle_fails_its_task() -> None:
    async with sandbox_client() as (running, http):
        guid, _, task = await deploy_bundle(http, b"not gzip at all")
        assert task["finished"] is True
        assert task["code"] == 1
        assert task["error"] == (
            "bundle 1 is not a valid gzip-compressed tar archive (not a gzip file); upload "
            "the .tar.gz built from the manifest"
        )
        assert running.store.content[guid].bundle_id is None


async def test_draft_deploys_from_2025_06() -> None:
    async with sandbox_client(make_seed(version="2025.06.0")) as (running, http):
        guid = await create_content(http)
        bundle_id = await upload(http, guid, bundle_bytes())
        task = await deploy(http, guid, {"bundle_id": bundle_id, "activate": False})
        assert task["code"] == 0
        assert running.store.content[guid].bundle_id is None
        async with http.get(f"/content/{guid}/_bundle{bundle_id}/") as response:
            assert response.status == 200
            assert "(draft)" in await response.text()
        await deploy(http, guid, {"bundle_id": bundle_id, "activate": True})
        assert running.store.content[guid].bundle_id == int(bundle_id)
    async with sandbox_client(make_seed(version="2025.05.0")) as (_, http):
        guid = await create_content(http)
        bundle_id = await upload(http, guid, bundle_bytes())
        async with http.post(f"/__api__/v1/content/{guid}/deploy",
                             json={"bundle_id": bundle_id, "activate": False}) as response:
            assert await error_of(response) == (400, {
                "code": 25,
                "error": 'The parameter is invalid: "activate" is unknown to Connect 2025.05.0; '
                "deploying as a draft needs 2025.06.0. Leave the field out.",
                "payload": None,
            })


async def test_task_first_skips_lines_already_read() -> None:
    async with sandbox_client() as (_, http):
        _, _, task = await deploy_bundle(http, bundle_bytes())
        whole = await get_json(http, f"/__api__/v1/tasks/{task['id']}")
        assert whole["output"] == task["output"]
        assert whole["last"] == len(task["output"])
        tail = await get_json(http, f"/__api__/v1/tasks/{task['id']}?first=3")
        assert tail["output"] == task["output"][3:]
        assert tail["last"] == len(task["output"])
        async with http.get(f"/__api__/v1/tasks/{task['id']}?wait=soon") as response:
            assert (await error_of(response))[1]["error"] == (
                "The parameter is invalid: wait='soon'; give a number of 0 or more.")
        async with http.get("/__api__/v1/tasks/unknown") as response:
            assert await error_of(response) == (404, NOT_FOUND)


async def test_long_poll_returns_early_when_the_task_changes() -> None:
    # Eight log lines over 4 s: one line every half second.
    async with sandbox_client(options=SandboxOptions(task_seconds=4.0)) as (_, http):
        guid = await create_content(http)
        bundle_id = await upload(http, guid, bundle_bytes())
        async with http.post(f"/__api__/v1/content/{guid}/deploy",
                             json={"bundle_id": bundle_id}) as response:
            task_id = (await response.json())["task_id"]
        started = time.monotonic()
        polled = await get_json(http, f"/__api__/v1/tasks/{task_id}?first=0&wait=10")
        assert 0.3 < time.monotonic() - started < 1.5  # the first line, not the 10 s
        assert polled["output"] == [f"Extracting bundle {bundle_id}..."]
        assert (polled["last"], polled["finished"]) == (1, False)
        # The next line is half a second away: a 0.1 s wait runs out and answers empty.
        started = time.monotonic()
        held = await get_json(http, f"/__api__/v1/tasks/{task_id}?first=1&wait=0.1")
        assert 0.1 <= time.monotonic() - started < 0.4
        assert (held["output"], held["last"], held["finished"]) == ([], 1, False)


async def test_long_poll_ends_when_the_server_stops() -> None:
    options = SandboxOptions(task_seconds=30.0)
    async with aiohttp.ClientSession(headers={"Authorization": f"Key {API_KEY}"}) as http:
        async with serve_sandbox(make_seed(), api_key=API_KEY, options=options) as running:
            base = running.url
            async with http.post(f"{base}/__api__/v1/content", json={"name": "x-app"}) as r:
                guid = (await r.json())["guid"]
            async with http.post(f"{base}/__api__/v1/content/{guid}/bundles",
                                 data=bundle_bytes()) as r:
                bundle_id = (await r.json())["id"]
            async with http.post(f"{base}/__api__/v1/content/{guid}/deploy",
                                 json={"bundle_id": bundle_id}) as r:
                task_id = (await r.json())["task_id"]
            poll = asyncio.create_task(
                get_json(http, f"{base}/__api__/v1/tasks/{task_id}?first=99&wait=30"))
            await asyncio.sleep(0.2)
            started = time.monotonic()
        assert time.monotonic() - started < 1.0
        answered = await poll
    assert answered["finished"] is False


# Associations --------------------------------------------------------------------


async def test_associations_put_replaces_and_empty_clears() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http)
        path = f"/__api__/v1/content/{guid}/oauth/integrations/associations"
        assert await get_json(http, path) == []
        body = [{"oauth_integration_guid": KEYCLOAK}, {"oauth_integration_guid": VISITOR}]
        async with http.put(path, json=body) as response:
            assert response.status == 204
        listed = await get_json(http, path)
        assert [a["oauth_integration_guid"] for a in listed] == [KEYCLOAK, VISITOR]
        assert listed[0] == {
            "app_guid": guid,
            "content_guid": guid,
            "oauth_integration_guid": KEYCLOAK,
            "oauth_integration_name": "keycloak integration",
            "oauth_integration_description": "integration description",
            "oauth_integration_template": "custom",
            "oauth_integration_auth_type": "Viewer",
            "created_time": listed[0]["created_time"],
        }
        by_integration = await get_json(http, f"/__api__/v1/oauth/integrations/{VISITOR}"
                                              "/associations")
        assert [a["content_guid"] for a in by_integration] == [guid]
        async with http.put(path, json=[{"oauth_integration_guid": SNOWFLAKE}]) as response:
            assert response.status == 204
        assert [a["oauth_integration_guid"] for a in await get_json(http, path)] == [SNOWFLAKE]
        async with http.put(path, json=[]) as response:
            assert response.status == 204
        assert await get_json(http, path) == []


async def test_associations_refuse_bad_bodies_and_unknown_integrations() -> None:
    async with sandbox_client() as (_, http):
        guid = await create_content(http)
        path = f"/__api__/v1/content/{guid}/oauth/integrations/associations"
        async with http.put(path, json=[{"oauth_integration_guid": "nope"}]) as response:
            assert await error_of(response) == (400, {
                "code": 3,
                "error": "There is no OAuth integration with guid 'nope'; list the "
                "integrations with GET /__api__/v1/oauth/integrations.",
                "payload": None,
            })
        async with http.put(path, json={"oauth_integration_guid": KEYCLOAK}) as response:
            assert (await error_of(response))[1]["error"] == (
                'The request JSON is invalid: send [{"oauth_integration_guid": "..."}] '
                "(or [] to clear).")
        async with http.get("/__api__/v1/content/none/oauth/integrations/associations") as r:
            assert await error_of(r) == (404, NOT_FOUND)


async def test_one_association_at_most_before_2025_07() -> None:
    async with sandbox_client(make_seed(version="2025.06.0")) as (_, http):
        guid = await create_content(http)
        path = f"/__api__/v1/content/{guid}/oauth/integrations/associations"
        body = [{"oauth_integration_guid": KEYCLOAK}, {"oauth_integration_guid": VISITOR}]
        async with http.put(path, json=body) as response:
            assert await error_of(response) == (400, {
                "code": 25,
                "error": "This server (2025.06.0) associates at most one OAuth integration with "
                "a content item; Connect 2025.07.0 allows several. Send one element.",
                "payload": None,
            })
        async with http.put(path, json=body[:1]) as response:
            assert response.status == 204
        listed = await get_json(http, path)
        # Older servers name the content app_guid only.
        assert listed[0]["app_guid"] == guid
        assert "content_guid" not in listed[0]


async def test_seeded_associations_are_served() -> None:
    seed = make_seed(content=[{"guid": "c-1", "name": "seeded", "associations": [VISITOR]}])
    async with sandbox_client(seed) as (_, http):
        listed = await get_json(http, "/__api__/v1/content/c-1/oauth/integrations/associations")
        assert [a["oauth_integration_guid"] for a in listed] == [VISITOR]


# Auto-association at deploy ------------------------------------------------------

REQUESTS: list[Any] = [{"type": "custom", "name": "^keycloak integration$"},
                       {"type": "connect"}]


async def associated_after_deploy(seed_overrides: dict[str, Any]) -> tuple[list[str], Any]:
    async with sandbox_client(make_seed(**seed_overrides)) as (_, http):
        guid, _, task = await deploy_bundle(http, bundle_bytes(requests=REQUESTS))
        listed = await get_json(
            http, f"/__api__/v1/content/{guid}/oauth/integrations/associations")
    return [a["oauth_integration_guid"] for a in listed], task


@pytest.mark.parametrize(
    ("overrides", "honoured"),
    [
        ({"version": "2025.09.0"}, True),
        ({"version": ""}, True),
        ({"version": "2025.08.0"}, False),
        ({"version": "2025.09.0-dev+142"}, False),
        ({"version": "2025.09.0", "oauth_integrations_enabled": False}, False),
        ({"version": "2025.09.0", "license": {"oauth-integrations": False}}, False),
        ({"version": "2025.09.0", "license": {}}, False),
    ],
)
async def test_auto_association_gates(overrides: dict[str, Any], honoured: bool) -> None:
    associated, task = await associated_after_deploy(overrides)
    assert task["code"] == 0
    assert associated == ([KEYCLOAK, VISITOR] if honoured else [])


async def test_an_unsatisfiable_request_fails_the_deploy_task() -> None:
    requests: list[Any] = [
        {"type": "connect"},
        {"type": "snowflake", "auth_type": "Service Account"},
    ]
    async with sandbox_client(make_seed(version="2025.09.0")) as (running, http):
        guid = await create_content(http)
        path = f"/__api__/v1/content/{guid}/oauth/integrations/associations"
        async with http.put(path, json=[{"oauth_integration_guid": SNOWFLAKE}]) as response:
            assert response.status == 204
        bundle_id = await upload(http, guid, bundle_bytes(requests=requests))
        task = await deploy(http, guid, {"bundle_id": bundle_id})
        assert task["finished"] is True
        assert task["code"] == 1
        assert task["error"] == (
            'integration request could not be satisfied: '
            '{"type":"snowflake","auth_type":"Service Account"}'
        )
        assert task["output"][-1] == f"Error: {task['error']}"
        # Nothing changed: no active bundle, the old association stays.
        assert running.store.content[guid].bundle_id is None
        assert [a["oauth_integration_guid"] for a in await get_json(http, path)] == [SNOWFLAKE]


# Pages ---------------------------------------------------------------------------


async def test_content_pages_say_what_is_deployed() -> None:
    async with sandbox_client(api_key=None) as (running, http):
        async with aiohttp.ClientSession(
            base_url=running.url, headers={"Authorization": f"Key {API_KEY}"}
        ) as api:
            guid = await create_content(api, "pages-app")
            async with http.get(f"/content/{guid}/") as response:
                assert response.status == 404
                assert "Nothing is deployed" in await response.text()
            await api.patch(f"/__api__/v1/content/{guid}", json={"title": "<b>Sales</b>"})
            bundle_id = await upload(api, guid, bundle_bytes(requests=[{"type": "connect"}]))
            await deploy(api, guid, {"bundle_id": bundle_id})
        async with http.get(f"/content/{guid}/") as response:
            assert response.status == 200
            page = await response.text()
        assert "&lt;b&gt;Sales&lt;/b&gt;" in page
        assert "<b>Sales" not in page
        assert f"Serving bundle {bundle_id} (active)" in page
        assert "Connect Visitor API Key" in page
        async with http.get(f"/content/{guid}/_bundle{bundle_id}/") as response:
            assert response.status == 200
        async with http.get(f"/content/{guid}/_bundle999/") as response:
            assert response.status == 404
        async with http.get(f"/content/{guid}/some/page.html") as response:
            assert response.status == 200
        async with http.get(f"/content/{guid}", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == f"/content/{guid}/"
        async with http.get("/connect/") as response:
            assert "pages-app" not in await response.text()  # the title shows instead
        async with http.get("/content/unknown/") as response:
            assert response.status == 404


# Faults over HTTP ----------------------------------------------------------------


async def statuses(http: aiohttp.ClientSession, count: int) -> list[int]:
    out = []
    for _ in range(count):
        async with http.get("/__api__/server_settings") as response:
            out.append(response.status)
    return out


async def test_error_rate_is_reproducible() -> None:
    options = SandboxOptions(error_rate=0.5, random_seed=42)
    async with sandbox_client(options=options) as (_, http):
        first = await statuses(http, 16)
        async with http.get("/__api__/v1/user") as response:
            if response.status == 503:
                assert (await error_of(response))[1] == {
                    "code": 0,
                    "error": "Service Unavailable: the sandbox injected this error "
                    "(sandbox_options.error_rate); retry the request.",
                    "payload": None,
                }
    async with sandbox_client(options=options) as (_, http):
        second = await statuses(http, 16)
    assert first == second
    assert set(first) == {200, 503}


async def test_drop_rate_closes_the_connection() -> None:
    async with sandbox_client(options=SandboxOptions(drop_rate=1.0)) as (_, http):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await statuses(http, 1)
        # Pages outside the API are never dropped.
        async with http.get("/connect/") as response:
            assert response.status == 200


async def test_rate_limit_answers_429_with_retry_after() -> None:
    options = SandboxOptions(rate_limit=3, retry_after=0.5)
    async with sandbox_client(options=options) as (_, http):
        assert await statuses(http, 3) == [200, 200, 200]
        async with http.get("/__api__/v1/user") as response:
            assert response.headers["Retry-After"] == "0.5"
            assert await error_of(response) == (429, {
                "code": 0,
                "error": "Too Many Requests: the sandbox accepts 3 requests per second; retry "
                "after 0.5 seconds.",
                "payload": None,
            })


async def test_latency_delays_every_answer() -> None:
    async with sandbox_client(options=SandboxOptions(latency=0.2)) as (_, http):
        started = time.monotonic()
        await statuses(http, 2)
        async with http.get("/connect/") as response:
            assert response.status == 200
        assert time.monotonic() - started >= 0.6


async def test_task_failure_rate_fails_tasks_reproducibly() -> None:
    options = SandboxOptions(task_failure_rate=0.5, random_seed=9)

    async def codes() -> list[int]:
        async with sandbox_client(options=options) as (_, http):
            guid = await create_content(http)
            bundle_id = await upload(http, guid, bundle_bytes())
            found = []
            for _ in range(8):
                task = await deploy(http, guid, {"bundle_id": bundle_id})
                found.append(task["code"])
                if task["code"]:
                    assert task["error"] == (
                        f"Unable to deploy bundle {bundle_id}: restoring the Python environment "
                        "(pip install -r requirements.txt) exited with status 1"
                    )
            return found

    first = await codes()
    assert first == await codes()
    assert set(first) == {0, 1}


async def test_sticky_cookies_route_task_polls() -> None:
    async with sandbox_client(options=SandboxOptions(sticky_cookies=True)) as (running, http):
        guid = await create_content(http)
        bundle_id = await upload(http, guid, bundle_bytes())
        async with http.post(f"/__api__/v1/content/{guid}/deploy",
                             json={"bundle_id": bundle_id}) as response:
            node = response.cookies["connect_node"].value
            task_id = (await response.json())["task_id"]
        assert running.store.tasks[task_id].node == node
        task = await wait_task(http, task_id)  # the session sends the cookie back
        assert task["code"] == 0
        # A second deploy in the same session stays on the same node; no new cookie.
        async with http.post(f"/__api__/v1/content/{guid}/deploy",
                             json={"bundle_id": bundle_id}) as response:
            assert "connect_node" not in response.cookies
            second = (await response.json())["task_id"]
        assert running.store.tasks[second].node == node
        # A poll without the cookie misses the node that holds the task.
        async with (
            aiohttp.ClientSession(
                base_url=running.url, headers={"Authorization": f"Key {API_KEY}"}
            ) as bare,
            bare.get(f"/__api__/v1/tasks/{task_id}") as response,
        ):
            assert await error_of(response) == (404, {
                "code": 141,
                "error": "Task lookup failures can indicate that a load balancer is not "
                "using sticky sessions or a client is not including the session cookie: "
                "send back the connect_node cookie from the deploy response.",
                "payload": None,
            })
