"""Integration values, secret redaction, server capabilities and versions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.integrations import (
    REDACTED,
    Integration,
    ServerView,
    is_secret_key,
    redact_config,
)
from batch_deploy.versions import ConnectVersion, parse_version


@pytest.mark.parametrize(
    "key",
    [
        "client_secret",
        "password",
        "db_passwd",
        "refresh_token",
        "api_key",
        "apiKey",
        "accessToken",
        "private_key_id",
        "AWS_CREDENTIALS",
        "pat",
    ],
)
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "client_id",
        "scopes",
        "token_uri",
        "token_endpoint_auth_method",
        "tokenUrl",
        "key_id",
        "auth_mode",
        "account_url",
        "keycloak",
    ],
)
def test_descriptive_keys_stay_visible(key: str) -> None:
    assert not is_secret_key(key)


def test_redaction_reaches_nested_objects_and_lists() -> None:
    config = {
        "client_id": "abc",
        "client_secret": "hunter2",
        "nested": {"password": "pw", "hosts": [{"api_key": "k"}, "plain"]},
    }
    assert redact_config(config) == {
        "client_id": "abc",
        "client_secret": REDACTED,
        "nested": {"password": REDACTED, "hosts": [{"api_key": REDACTED}, "plain"]},
    }
    assert config["client_secret"] == "hunter2"  # the original is untouched


@given(st.recursive(st.text(), lambda inner: st.dictionaries(st.text(), inner), max_leaves=8))
def test_no_secret_value_survives_redaction(tree: object) -> None:
    secrets = {"password": "S3CRET-VALUE"}
    shown = json.dumps(redact_config({"x": tree, **secrets}))
    assert "S3CRET-VALUE" not in shown


def test_integration_round_trips_through_the_api_shape_with_secrets_redacted() -> None:
    api = {
        "guid": "g-1",
        "name": None,
        "template": "custom",
        "config": {"client_secret": "s", "scopes": "email"},
        "created_time": "2025-01-01T00:00:00Z",
    }
    item = Integration.from_api(api)
    assert item.name is None
    assert item.auth_type is None  # older servers omit it
    assert item.to_api() == {
        "created_time": "2025-01-01T00:00:00Z",
        "guid": "g-1",
        "name": None,
        "description": None,
        "template": "custom",
        "auth_type": None,
        "config": {"client_secret": REDACTED, "scopes": "email"},
    }
    assert item.to_api(redact=False)["config"]["client_secret"] == "s"
    with pytest.raises(ValueError, match='an integration has no "guid" string'):
        Integration.from_api({"name": "x"})


@pytest.mark.parametrize(
    ("version", "enabled", "licensed", "api", "several", "honours"),
    [
        ("2024.06.0", True, True, False, False, False),
        ("2025.03.0", True, True, True, False, False),
        ("2025.07.0", True, True, True, True, False),
        ("2025.09.0", True, True, True, True, True),
        ("2025.09.0-dev+12", True, True, True, True, False),
        ("2025.09.0", False, True, True, True, False),
        ("2025.09.0", True, None, True, True, False),
        ("", True, True, True, True, True),
    ],
)
def test_server_capabilities_follow_the_version_gates(
    version: str, enabled: bool, licensed: bool | None, api: bool, several: bool, honours: bool
) -> None:
    view = ServerView("s", parse_version(version), enabled, licensed, ())
    assert view.has_integrations_api is api
    assert view.allows_multiple_associations is several
    assert view.honours_requests is honours


def test_a_404_from_the_integrations_api_means_no_api_whatever_the_version() -> None:
    assert not ServerView("s", None, True, True, None).has_integrations_api


def test_versions_parse_and_order_as_calendar_versions() -> None:
    assert parse_version("") is None
    assert parse_version("2025.9.1") == ConnectVersion(2025, 9, 1)
    assert str(parse_version("2025.09.0-dev+12")) == "2025.09.0-dev+12"
    ordered = ["2024.12.3", "2025.07.0-rc1", "2025.07.0", "2025.07.1", "2025.10.0"]
    parsed = [version for text in ordered if (version := parse_version(text)) is not None]
    assert len(parsed) == len(ordered)
    assert sorted(parsed) == parsed
    assert parsed[1] < parsed[2]  # a suffixed build sorts below its release
    with pytest.raises(ValueError, match=r"'2025\.13\.0' is not a Connect version"):
        parse_version("2025.13.0")
    with pytest.raises(ValueError, match="is not a Connect version"):
        parse_version("latest")
