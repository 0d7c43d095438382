from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.errors import SeedError
from batch_deploy.integrations import Integration
from batch_deploy.sandbox import load_seed, parse_seed, seed_document
from batch_deploy.sandbox.seed import CURRENT_VERSION, DEFAULT_USER_GUID, SeedContent, SeedUser

from .helpers import INTEGRATIONS, KEYCLOAK, SNOWFLAKE, VISITOR, seed_document_for


def test_only_integrations_is_required_and_the_rest_defaults() -> None:
    seed = parse_seed(b'{"integrations": []}', "min.json")
    assert seed.source == "min.json"
    assert seed.version == CURRENT_VERSION == "2025.11.0"
    assert seed.hostname == "localhost"
    assert seed.oauth_integrations_enabled is True
    assert dict(seed.license) == {"oauth-integrations": True}
    assert seed.oauth_licensed is True
    assert seed.user == SeedUser(DEFAULT_USER_GUID, "admin", "administrator")
    assert seed.integrations == ()
    assert seed.content == ()


def test_nothing_is_added_that_the_seed_does_not_list() -> None:
    # Every server since 2025.05.0 has a default Connect integration; a seed says so itself.
    seed = parse_seed('{"version": "2025.09.0", "integrations": []}', "s.json")
    assert seed.integrations == ()


def test_a_full_seed_keeps_every_value() -> None:
    without_auth_type = {k: v for k, v in INTEGRATIONS[1].items() if k != "auth_type"}
    objects = [dict(INTEGRATIONS[0]), without_auth_type]
    document = {
        "version": "",
        "hostname": "connect.example.com",
        "oauth_integrations_enabled": False,
        "license": {"oauth-integrations": False, "seats": 10},
        "user": {"guid": "u-1", "username": "pat", "role": "publisher"},
        "integrations": objects,
        "content": [
            {"name": "sales", "title": "Sales", "app_mode": "python-shiny",
             "associations": [SNOWFLAKE, KEYCLOAK, SNOWFLAKE]},
            {"guid": "c-2", "name": "other", "owner_guid": "u-9"},
        ],
    }
    seed = parse_seed(json.dumps(document), "full.json")
    assert seed.version == ""
    assert seed.parsed_version is None
    assert seed.hostname == "connect.example.com"
    assert seed.oauth_integrations_enabled is False
    assert dict(seed.license) == {"oauth-integrations": False, "seats": 10}
    assert seed.oauth_licensed is False
    assert seed.user == SeedUser("u-1", "pat", "publisher")
    assert seed.integrations == (Integration.from_api(objects[0]), Integration.from_api(objects[1]))
    # Served as written: the second stands for a server that omits auth_type.
    assert [dict(o) for o in seed.integration_objects] == objects
    assert "auth_type" not in seed.integration_objects[1]
    assert seed.content == (
        SeedContent("sales", None, "Sales", "python-shiny", (SNOWFLAKE, KEYCLOAK)),
        SeedContent("other", "c-2", None, "unknown", (), "u-9"),
    )


def test_not_json_names_the_position() -> None:
    with pytest.raises(SeedError) as caught:
        parse_seed('{"integrations": [}', "bad.json")
    assert str(caught.value) == (
        "bad.json: not valid JSON (Expecting value at line 1 column 19); fix the syntax"
    )


def test_not_utf8() -> None:
    with pytest.raises(SeedError) as caught:
        parse_seed(b'{"hostname": "\xff"}', "bin.json")
    assert str(caught.value) == (
        "bin.json: not UTF-8 text (invalid start byte); save the seed as UTF-8"
    )


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(SeedError) as caught:
        parse_seed("[]", "list.json")
    assert str(caught.value) == (
        'list.json: the top level is an array; a seed is a JSON object with at least '
        '"integrations": [...]'
    )


def test_every_problem_is_listed_with_its_key_path_and_fix() -> None:
    document = {
        "version": "25.9",
        "hostname": 7,
        "oauth_integrations_enabled": "yes",
        "license": {"oauth-integrations": 1},
        "user": {"role": "owner", "email": "x@example.com"},
        "colour": "blue",
        "content": [{"name": "no"}],
    }
    with pytest.raises(SeedError) as caught:
        parse_seed(json.dumps(document), "s.json")
    assert str(caught.value).splitlines() == [
        "s.json: colour: unknown key; remove it (allowed keys: version, hostname, "
        "oauth_integrations_enabled, license, user, integrations, content)",
        "s.json: version: '25.9' is not a Connect version; write \"2025.09.0\"",
        "s.json: hostname: is a number; write the server's host name as a string",
        "s.json: oauth_integrations_enabled: is a string; write true or false",
        "s.json: license.oauth-integrations: is a number; write true or false",
        "s.json: user.email: unknown key; remove it (allowed keys: guid, username, role)",
        "s.json: user.role: 'owner' is not a role; write one of administrator, publisher, viewer",
        "s.json: integrations: is missing; list the server's integrations (an empty array [] "
        "for none), for example from `batch-deploy integrations --json`",
        "s.json: content[0].name: 'no' is not a content name; use 3 to 64 letters, digits, "
        "'_' or '-'",
    ]


def test_integration_objects_are_checked() -> None:
    document = {
        "integrations": [
            {"name": "no guid"},
            {"guid": SNOWFLAKE, "name": 5, "config": []},
            {"guid": KEYCLOAK},
            {"guid": KEYCLOAK},
            "text",
        ]
    }
    with pytest.raises(SeedError) as caught:
        parse_seed(json.dumps(document), "i.json")
    assert str(caught.value).splitlines() == [
        "i.json: integrations[0].guid: is null; give the integration's guid string",
        "i.json: integrations[1].name: is a number; write a string or null",
        "i.json: integrations[1].config: is an array; write an object",
        f"i.json: integrations[3].guid: '{KEYCLOAK}' is listed twice; give each integration once",
        "i.json: integrations[4]: is a string; write an integration object",
    ]


def test_content_rules() -> None:
    document = seed_document_for(
        version="2025.06.0",
        content=[
            {"name": "sales", "associations": [SNOWFLAKE, KEYCLOAK]},
            {"name": "sales", "guid": "g", "colour": 1},
            {"name": "other", "guid": "g", "associations": ["nope", 3]},
            {"name": "third", "title": 3, "app_mode": ""},
        ],
    )
    with pytest.raises(SeedError) as caught:
        parse_seed(json.dumps(document), "c.json")
    assert str(caught.value).splitlines() == [
        "c.json: content[0].associations: lists 2 integrations, but Connect before 2025.07.0 "
        'associates at most one; keep one or raise "version"',
        "c.json: content[1].colour: unknown key; remove it (allowed keys: guid, name, title, "
        "app_mode, associations, owner_guid)",
        "c.json: content[1].name: 'sales' is used twice; content names are unique",
        "c.json: content[2].guid: 'g' is used twice; give each item its own",
        "c.json: content[2].associations[0]: 'nope' is not the guid of any integration in this "
        'seed; list that integration under "integrations" or remove the association',
        "c.json: content[2].associations[1]: is a number; write an integration guid",
        "c.json: content[3].title: is a number; write a string or null",
        'c.json: content[3].app_mode: is a string; write e.g. "python-shiny"',
    ]


@given(
    st.text(
        alphabet=st.sampled_from("aZ09_-. /é"),
        min_size=0,
        max_size=70,
    )
)
def test_content_names_follow_connects_rule(name: str) -> None:
    document = {"integrations": [], "content": [{"name": name}]}
    valid = re.fullmatch(r"[A-Za-z0-9_-]{3,64}", name) is not None
    if valid:
        assert parse_seed(json.dumps(document), "h.json").content[0].name == name
    else:
        with pytest.raises(SeedError) as caught:
            parse_seed(json.dumps(document), "h.json")
        assert str(caught.value) == (
            f"h.json: content[0].name: {name!r} is not a content name; use 3 to 64 letters, "
            "digits, '_' or '-'"
        )


def test_load_seed_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "staging.json"
    path.write_text(json.dumps(seed_document_for(version="2025.09.0")))
    seed = load_seed(path)
    assert seed.source == str(path)
    assert seed.version == "2025.09.0"
    assert [i.guid for i in seed.integrations] == [i["guid"] for i in INTEGRATIONS]


def test_load_seed_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(SeedError) as caught:
        load_seed(path)
    assert str(caught.value) == (
        f"{path}: cannot be read (No such file or directory); check the sandbox seed path"
    )


def test_seed_document_round_trips_with_secrets_redacted() -> None:
    secret = Integration.from_api(
        {**INTEGRATIONS[1], "config": {"client_id": "id", "client_secret": "hunter2"}}
    )
    visitor = Integration.from_api(INTEGRATIONS[2])
    document = seed_document(
        version="2025.09.0",
        hostname="connect.example.com",
        oauth_integrations_enabled=True,
        license={"oauth-integrations": True, "anonymous-servers": False},
        user={"guid": "u-7", "username": "ops", "user_role": "publisher", "email": "o@x"},
        integrations=[secret, visitor],
        content=[{"name": "sales", "associations": [VISITOR]}],
    )
    assert "hunter2" not in json.dumps(document)
    assert document["user"] == {"guid": "u-7", "username": "ops", "role": "publisher"}
    assert document["integrations"][0]["config"] == {
        "client_id": "id",
        "client_secret": "<redacted>",
    }
    seed = parse_seed(json.dumps(document), "written.json")
    assert seed.version == "2025.09.0"
    assert seed.user == SeedUser("u-7", "ops", "publisher")
    assert [i.guid for i in seed.integrations] == [KEYCLOAK, VISITOR]
    assert seed.integrations[1] == visitor
    assert seed.content == (SeedContent("sales", associations=(VISITOR,)),)


def test_seed_document_without_user_or_content() -> None:
    document = seed_document(
        version="",
        hostname="h",
        oauth_integrations_enabled=False,
        license={},
        user=None,
        integrations=[],
    )
    assert document == {
        "version": "",
        "hostname": "h",
        "oauth_integrations_enabled": False,
        "license": {},
        "integrations": [],
    }
    seed = parse_seed(json.dumps(document), "d.json")
    assert seed.user == SeedUser()
    # A licence that does not name the flag is not read as licensed.
    assert dict(seed.license) == {}
    assert seed.oauth_licensed is False


def test_seed_document_refuses_what_would_not_load() -> None:
    with pytest.raises(SeedError) as caught:
        seed_document(
            version="latest",
            hostname="h",
            oauth_integrations_enabled=True,
            license={},
            user=None,
            integrations=[],
        )
    assert str(caught.value) == (
        "seed_document: version: 'latest' is not a Connect version; write \"2025.09.0\""
    )
