"""Manifests and integration objects shaped to hurt: refused or redacted, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch_deploy.errors import ManifestError
from batch_deploy.integrations import Integration
from batch_deploy.manifest import MAX_JSON_DEPTH, json_too_deep, parse_manifest
from batch_deploy.sandbox.seed import seed_document


def nested(depth: int) -> Any:
    return json.loads("[" * depth + "]" * depth)


def manifest_with_config(value: Any) -> bytes:
    document = {
        "metadata": {"appmode": "static"},
        "files": {},
        "integration_requests": [{"type": "snowflake", "config": {"warehouse": value}}],
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("value", "deep"),
    [
        (None, False),
        ([], False),
        (nested(MAX_JSON_DEPTH), False),
        (nested(MAX_JSON_DEPTH + 1), True),
        ({"a": [{"b": nested(MAX_JSON_DEPTH - 2)}]}, True),
        ({"a": [{"b": nested(MAX_JSON_DEPTH - 3)}]}, False),
        ([1, "x", [2, [3]]], False),
    ],
)
def test_json_depth_counts_arrays_and_objects(value: Any, deep: bool) -> None:
    assert json_too_deep(value) is deep


def test_json_depth_is_measured_without_recursion() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    assert json_too_deep(value)


def test_a_request_config_nested_past_the_limit_makes_the_manifest_unusable() -> None:
    # 500 levels parse, but matching and redaction recurse and would crash the run.
    with pytest.raises(ManifestError) as caught:
        parse_manifest(manifest_with_config(nested(500)), "app/manifest.json")
    assert str(caught.value) == (
        "app/manifest.json: nested too deeply to read; a manifest needs only a few levels"
    )


def test_a_manifest_within_the_depth_limit_is_read() -> None:
    # The request's config sits four levels down: the limit leaves room for it.
    manifest = parse_manifest(manifest_with_config(nested(MAX_JSON_DEPTH - 4)), "m")
    assert manifest.requests[0].problem is None


def test_secret_fields_beside_config_are_redacted_too() -> None:
    integration = Integration.from_api(
        {
            "guid": "g1",
            "name": "Vault",
            "template": "custom",
            "auth_type": "Viewer",
            "config": {"client_id": "abc", "client_secret": "s3cr3t-in-config"},
            "client_secret": "s3cr3t-beside-config",
            "environment_variables": [{"name": "VAULT_TOKEN", "access_token": "s3cr3t-deep"}],
            "created_time": "2025-01-01T00:00:00Z",
        }
    )
    shown = integration.to_api()
    assert shown == {
        "client_secret": "<redacted>",
        "environment_variables": [{"name": "VAULT_TOKEN", "access_token": "<redacted>"}],
        "created_time": "2025-01-01T00:00:00Z",
        "guid": "g1",
        "name": "Vault",
        "description": None,
        "template": "custom",
        "auth_type": "Viewer",
        "config": {"client_id": "abc", "client_secret": "<redacted>"},
    }
    seed = seed_document(
        version="2025.09.0",
        hostname="h",
        oauth_integrations_enabled=True,
        license={},
        user=None,
        integrations=[integration],
    )
    assert "s3cr3t" not in json.dumps(seed)
    assert integration.to_api(redact=False)["client_secret"] == "s3cr3t-beside-config"
