"""Request matching: the rules table, statuses, reasons, version gates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_deploy.integrations import Integration, ServerView
from batch_deploy.manifest import IntegrationRequest, parse_manifest
from batch_deploy.matching import (
    Resolution,
    ServerMatcher,
    json_equal,
    passes,
    resolve,
    resolve_all,
)
from batch_deploy.versions import parse_version

EXAMPLES = Path("/work/shared/spec/examples")
SNOW = "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11"
KEYCLOAK = "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a"
VISITOR = "d32b3f4e-3f4a-4c5a-9f1e-8b6e2f7c9a2b"


def example_integrations() -> tuple[Integration, ...]:
    listing = json.loads((EXAMPLES / "integrations.json").read_text())
    return tuple(Integration.from_api(item) for item in listing)


def requests_of(*elements: Any) -> tuple[IntegrationRequest, ...]:
    document = {"metadata": {"appmode": "api"}, "files": {}, "integration_requests": elements}
    return parse_manifest(json.dumps(document).encode(), "m.json").requests


def request(**fields: Any) -> IntegrationRequest:
    (parsed,) = requests_of(fields)
    assert parsed.problem is None, parsed.problem
    return parsed


def integration(**fields: Any) -> Integration:
    fields.setdefault("guid", "g-1")
    return Integration.from_api(fields)


def matches(req: IntegrationRequest, item: Integration) -> bool:
    return resolve(req, [item]).status == "matched"


def server(
    version: str | None = "2025.09.0",
    integrations: Sequence[Integration] | None = None,
    *,
    enabled: bool = True,
    licensed: bool | None = True,
) -> ServerView:
    items = example_integrations() if integrations is None else tuple(integrations)
    return ServerView("s", parse_version(version), enabled, licensed, items)


# --- the rules table, row by row ---------------------------------------------

SNOWFLAKE: dict[str, Any] = {
    "guid": SNOW,
    "name": "Snowflake production",
    "description": "Warehouse access (viewer)",
    "template": "snowflake",
    "auth_type": "Viewer",
    "config": {"scopes": "refresh_token", "port": 443, "ssl": True, "ratio": 1.5,
               "nested": {"a": [1, {"b": None}]}, "empty": None},
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # name: unanchored RE2 search, case-sensitive
        ({"name": "Snowflake production"}, True),
        ({"name": "flake"}, True),
        ({"name": "production$"}, True),
        ({"name": "^flake"}, False),
        ({"name": "^Snowflake$"}, False),
        ({"name": "^Snowflake (prod|production)$"}, True),
        ({"name": "snowflake"}, False),
        ({"name": "(?i)snowflake"}, True),
        ({"name": "Snow.lake"}, True),
        ({"name": "Snow\\.lake"}, False),
        ({"name": ""}, True),
        # description: the same rule on the description
        ({"description": "(viewer)"}, True),
        ({"description": "\\(viewer\\)$"}, True),
        ({"description": "^Warehouse"}, True),
        ({"description": "warehouse"}, False),
        ({"description": "^access"}, False),
        # type is the template, exactly
        ({"type": "snowflake"}, True),
        ({"type": "Snowflake"}, False),
        ({"type": "snow"}, False),
        ({"type": "snowflake "}, False),
        # guid exactly
        ({"guid": SNOW}, True),
        ({"guid": SNOW[:8]}, False),
        ({"guid": SNOW.upper()}, False),
        # auth_type exactly
        ({"auth_type": "Viewer"}, True),
        ({"auth_type": "viewer"}, False),
        ({"auth_type": "Service Account"}, False),
        # config: a subset with equal JSON values
        ({"config": {}}, True),
        ({"config": {"scopes": "refresh_token"}}, True),
        ({"config": {"scopes": "refresh_token", "port": 443}}, True),
        ({"config": {"scopes": "refresh"}}, False),
        ({"config": {"absent": "x"}}, False),
        ({"config": {"port": 443.0}}, True),
        ({"config": {"port": "443"}}, False),
        ({"config": {"ssl": True}}, True),
        ({"config": {"ssl": 1}}, False),
        ({"config": {"ssl": "true"}}, False),
        ({"config": {"ratio": 1.5}}, True),
        ({"config": {"nested": {"a": [1, {"b": None}]}}}, True),
        ({"config": {"nested": {"a": [1.0, {"b": None}]}}}, True),
        ({"config": {"nested": {"a": [True, {"b": None}]}}}, False),
        ({"config": {"nested": {"a": [{"b": None}, 1]}}}, False),
        ({"config": {"nested": {"a": [1]}}}, False),
        ({"config": {"nested": {}}}, False),
        ({"config": {"empty": None}}, True),
        ({"config": {"absent": None}}, False),
        # AND across fields
        ({"name": "^Snowflake", "type": "snowflake", "auth_type": "Viewer", "guid": SNOW}, True),
        ({"name": "^Snowflake", "type": "snowflake", "auth_type": "Service Account"}, False),
        ({"type": "snowflake", "config": {"scopes": "x"}}, False),
        ({"description": "viewer", "name": "nope"}, False),
    ],
)
def test_rules_table(fields: dict[str, Any], expected: bool) -> None:
    assert matches(request(**fields), integration(**SNOWFLAKE)) is expected


@pytest.mark.parametrize("field", ["name", "description", "template", "auth_type"])
@pytest.mark.parametrize("absent", ["null", "missing"])
def test_null_or_missing_integration_field_never_matches(field: str, absent: str) -> None:
    fields = dict(SNOWFLAKE)
    if absent == "null":
        fields[field] = None
    else:
        del fields[field]
    item = integration(**fields)
    wanted = {"name": "", "description": "", "template": "snowflake", "auth_type": "Viewer"}
    key = "type" if field == "template" else field
    # "" is the loosest pattern there is, and still a null name does not match it.
    assert not matches(request(**{key: wanted[field]}), item)
    # Other fields are unaffected.
    assert matches(request(guid=SNOW), item)


def test_null_config_is_an_empty_config() -> None:
    item = integration(**{**SNOWFLAKE, "config": None})
    assert matches(request(config={}), item)
    assert not matches(request(config={"scopes": None}), item)


def test_patterns_run_on_text_that_is_not_valid_unicode() -> None:
    item = integration(name="bad \udc80 name")
    assert matches(request(name="^bad"), item)
    assert matches(request(name="name$"), item)
    # The surrogate reads as one character, as it would in the server's JSON.
    assert matches(request(name="^bad . name$"), item)
    assert not matches(request(name="^bad .. name$"), item)


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1.0, True),
        (0, -0.0, True),
        (1, True, False),
        (0, False, False),
        (True, True, True),
        ("1", 1, False),
        (None, None, True),
        (None, "", False),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1], (1,), True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": {"b": [True]}}, {"a": {"b": [1]}}, False),
        ({}, [], False),
    ],
)
def test_json_equal(left: Any, right: Any, equal: bool) -> None:
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


# --- statuses and reasons ----------------------------------------------------


def test_examples_against_the_example_integrations() -> None:
    items = example_integrations()
    expected = {
        "python-fastapi-api.manifest.json": [SNOW, SNOW],
        "python-shiny-app.manifest.json": [KEYCLOAK, VISITOR],
        "quarto-doc.manifest.json": [],
    }
    for filename, guids in expected.items():
        manifest = parse_manifest((EXAMPLES / filename).read_bytes(), filename)
        results = resolve_all(manifest.requests, server(None, items), "auto")
        assert [r.status for r in results] == ["matched"] * len(guids)
        assert [r.chosen.guid for r in results if r.chosen] == guids
        assert all(r.reason == "" for r in results)


def test_matched() -> None:
    found = resolve(request(type="custom"), example_integrations())
    assert found.status == "matched"
    assert [c.guid for c in found.candidates] == [KEYCLOAK]
    assert found.chosen is not None
    assert found.chosen.guid == KEYCLOAK
    assert found.reason == ""
    assert found.closest is None


def test_ambiguous_lists_candidates_in_server_order() -> None:
    items = example_integrations()
    found = resolve(request(auth_type="Viewer"), items)
    assert found.status == "ambiguous"
    assert [c.guid for c in found.candidates] == [SNOW, KEYCLOAK]
    assert found.chosen is not None
    assert found.chosen.guid == SNOW
    assert found.reason == (
        f'2 integrations match: "Snowflake production" ({SNOW}), "keycloak integration" '
        f'({KEYCLOAK}); add a guid or a stricter pattern, or set ambiguous = "first"'
    )
    reordered = resolve(request(auth_type="Viewer"), items[::-1])
    assert [c.guid for c in reordered.candidates] == [KEYCLOAK, SNOW]


def test_ambiguous_shows_five_then_counts_the_rest() -> None:
    items = [integration(guid=f"g{n}", name=f"db {n}" if n != 2 else None) for n in range(8)]
    found = resolve(request(guid="g", config={}), items)  # guid is exact: none
    assert found.status == "unmatched"
    found = resolve(request(config={}), items)
    assert found.status == "ambiguous"
    assert len(found.candidates) == 8
    assert found.reason == (
        '8 integrations match: "db 0" (g0), "db 1" (g1), (unnamed) (g2), "db 3" (g3), '
        '"db 4" (g4) and 3 more; add a guid or a stricter pattern, or set ambiguous = "first"'
    )


def test_unmatched_names_the_closest_and_each_failing_field() -> None:
    items = [
        integration(guid="a", name="Snowflake staging", template="snowflake",
                    auth_type="Service Account"),
        integration(guid="b", name="Other", template="bigquery", auth_type="Viewer"),
    ]
    found = resolve(
        request(name="^Snowflake (prod|production)$", type="snowflake", auth_type="Viewer"),
        items,
    )
    assert found.status == "unmatched"
    assert found.candidates == ()
    assert found.closest == items[0]
    assert found.reason == (
        'no integration matches; closest is "Snowflake staging" (a): name "Snowflake staging" '
        'does not match /^Snowflake (prod|production)$/, auth_type is "Service Account", '
        'not "Viewer"'
    )


def test_unmatched_ties_go_to_the_earlier_integration() -> None:
    items = [
        integration(guid="a", name="A", template="aws"),
        integration(guid="b", name="B", template="azure"),
    ]
    found = resolve(request(name="^B$", type="aws"), items)
    assert found.closest == items[0]
    assert found.reason == (
        'no integration matches; closest is "A" (a): name "A" does not match /^B$/'
    )
    # The earlier integration wins even when its passing field is a pattern.
    found = resolve(request(name="^B$", type="aws"), items[::-1])
    assert found.closest == items[1]
    assert found.reason == 'no integration matches; closest is "B" (b): type is "azure", not "aws"'
    found = resolve(request(name="^B$", type="azure", guid="z"), items)
    assert found.closest == items[1]
    assert found.reason == 'no integration matches; closest is "B" (b): guid is "b", not "z"'


def test_unmatched_counts_config_keys_one_by_one() -> None:
    items = [
        integration(guid="a", template="custom", config={"x": 1}),
        integration(guid="b", template="aws", config={"x": 1, "y": 2, "z": 3}),
    ]
    found = resolve(request(type="custom", config={"x": 1, "y": 2, "z": 3}), items)
    assert found.closest == items[1]
    assert found.reason == (
        'no integration matches; closest is (unnamed) (b): type is "aws", not "custom"'
    )


def test_unmatched_null_fields_are_described() -> None:
    items = [integration(guid="a")]
    found = resolve(
        request(name="x", description="y", type="t", auth_type="Viewer", config={"k": "v"}),
        items,
    )
    assert found.reason == (
        "no integration matches; closest is (unnamed) (a): name is null, so it cannot match "
        '/x/, description is null, so it cannot match /y/, type is null, not "t", '
        'auth_type is null, not "Viewer", config.k is missing'
    )


def test_unmatched_config_values_and_secrets() -> None:
    items = [
        integration(
            guid="a",
            config={
                "scopes": "a",
                "client_secret": "hunter2",
                "auth": {"token": "s3cr3t", "mode": "x"},
                "odd name": [1, {"api_key": "k3y"}],
                "port": 1,
            },
        )
    ]
    found = resolve(
        request(
            config={
                "scopes": "b",
                "client_secret": "guess",
                "auth": {"token": "other", "mode": "x"},
                "odd name": [2],
                "port": "1",
                "missing": 0,
            }
        ),
        items,
    )
    assert found.reason == (
        'no integration matches; closest is (unnamed) (a): config.scopes is "a", not "b", '
        "config.client_secret is <redacted>, not <redacted>, "
        'config.auth is {"token": "<redacted>", "mode": "x"}, '
        'not {"token": "<redacted>", "mode": "x"}, '
        'config["odd name"] is [1, {"api_key": "<redacted>"}], not [2], '
        'config.port is 1, not "1", config.missing is missing'
    )
    for secret in ("hunter2", "guess", "s3cr3t", "other", "k3y"):
        assert secret not in found.reason


def test_reasons_stay_on_one_short_line() -> None:
    long_name = "line one\nline two " + "x" * 200
    found = resolve(request(name="^nope\n$", guid="z"), [integration(guid="a\nb", name=long_name)])
    assert "\n" not in found.reason
    shown = '"line one\\nline two ' + "x" * 61 + '…"'
    assert found.reason == (
        f"no integration matches; closest is {shown} (a\\u000ab): "
        f'guid is "a\\nb", not "z", name {shown} does not match /^nope\\u000a$/'
    )


def test_unmatched_on_a_server_without_integrations() -> None:
    found = resolve(request(type="aws"), [])
    assert found == Resolution(
        "unmatched",
        reason="no integration matches because the server has no OAuth integrations; "
        "ask its administrator to add one that fits the request",
    )


def test_invalid_requests_resolve_invalid_everywhere() -> None:
    (bad,) = requests_of({"name": "(?!x)"})
    assert bad.problem is not None
    assert resolve(bad, example_integrations()) == Resolution("invalid", reason=bad.problem)
    assert resolve(bad, []) == Resolution("invalid", reason=bad.problem)
    old = server("2024.06.0")
    assert resolve_all([bad], old, "auto") == (Resolution("invalid", reason=bad.problem),)


def test_a_hand_built_request_with_a_bad_pattern_is_invalid() -> None:
    made = IntegrationRequest(index=0, text='{"name":"(?<=a)"}', name="(?<=a)")
    assert resolve(made, example_integrations()) == Resolution(
        "invalid",
        reason='name pattern "(?<=a)" is not valid RE2 syntax (invalid perl operator: (?<=); '
        "RE2 has no look-around or back-references",
    )


@pytest.mark.parametrize(
    ("status", "policy", "expected"),
    [
        ("matched", "fail", True),
        ("matched", "first", True),
        ("ambiguous", "fail", False),
        ("ambiguous", "first", True),
        ("unmatched", "first", False),
        ("invalid", "first", False),
        ("unsupported", "first", False),
    ],
)
def test_passes(status: Any, policy: Any, expected: bool) -> None:
    assert passes(Resolution(status), policy) is expected


# --- gates -------------------------------------------------------------------

NO_API = (
    "Connect 2024.06.0 has no OAuth integrations API (it needs 2024.08.0 or later); "
    "upgrade the server or leave it out of this content's servers"
)
NEEDS_0925 = (
    'associate = "server" needs Connect 2025.09.0 or later with OAuth integrations enabled '
    'and licensed, but this server runs {}; set associate = "auto" or "explicit"'
)
ONE_ONLY = (
    "Connect 2025.03.0 allows at most one integration per content item (several need "
    "2025.07.0 or later) and this manifest has 2 requests; keep one request or upgrade "
    "the server"
)


@pytest.mark.parametrize(
    ("version", "associate", "count", "expected"),
    [
        ("2024.06.0", "auto", 1, NO_API),
        ("2024.06.0", "explicit", 2, NO_API),
        ("2024.06.0", "server", 1, NO_API),
        ("2025.03.0", "auto", 1, None),
        ("2025.03.0", "explicit", 1, None),
        ("2025.03.0", "auto", 2, ONE_ONLY),
        ("2025.03.0", "explicit", 2, ONE_ONLY),
        ("2025.03.0", "server", 1, NEEDS_0925.format("2025.03.0")),
        ("2025.03.0", "server", 2, NEEDS_0925.format("2025.03.0")),
        ("2025.07.0", "auto", 2, None),
        ("2025.07.0", "explicit", 2, None),
        ("2025.07.0", "server", 2, NEEDS_0925.format("2025.07.0")),
        ("2025.09.0", "auto", 2, None),
        ("2025.09.0", "server", 2, None),
        ("2025.09.0", "explicit", 2, None),
        (None, "auto", 2, None),
        (None, "server", 2, None),
        (None, "explicit", 2, None),
    ],
)
def test_version_gates(
    version: str | None, associate: Any, count: int, expected: str | None
) -> None:
    reqs = requests_of({"guid": SNOW}, {"type": "connect"})[:count]
    view = server(version)
    results = resolve_all(reqs, view, associate)
    assert results == ServerMatcher(view).resolve_all(reqs, associate)
    if expected is None:
        assert [r.status for r in results] == ["matched"] * count
    else:
        assert results == (Resolution("unsupported", reason=expected),) * count


def test_gate_when_the_integrations_api_answered_404() -> None:
    for version in ("2025.09.0", None):
        view = ServerView("s", parse_version(version), True, True, None)
        (result,) = resolve_all([request(type="aws")], view, "auto")
        assert result == Resolution(
            "unsupported",
            reason="the server answered 404 for /__api__/v1/oauth/integrations, so it has no "
            "OAuth integrations API (it needs Connect 2024.08.0 or later); upgrade the server "
            "or leave it out of this content's servers",
        )


def test_gate_integrations_disabled() -> None:
    (result,) = resolve_all([request(type="aws")], server(enabled=False), "auto")
    assert result == Resolution(
        "unsupported",
        reason="OAuth integrations are disabled on this server (oauth_integrations_enabled "
        "is false); ask its administrator to enable them",
    )


def test_gate_licence() -> None:
    (result,) = resolve_all([request(type="connect")], server(licensed=False), "explicit")
    assert result == Resolution(
        "unsupported",
        reason="this server's licence does not include OAuth integrations; ask its "
        "administrator for a licence that does",
    )
    # A licence that does not say is no obstacle for explicit association ...
    (result,) = resolve_all([request(type="connect")], server(licensed=None), "explicit")
    assert result.status == "matched"
    # ... but Connect will not associate by itself without it.
    (result,) = resolve_all([request(type="connect")], server(licensed=None), "server")
    assert result == Resolution(
        "unsupported",
        reason='associate = "server" needs Connect 2025.09.0 or later with OAuth integrations '
        "enabled and licensed, but this server's licence does not say it includes OAuth "
        'integrations; set associate = "auto" or "explicit"',
    )


def test_gates_keep_invalid_requests_and_count_them() -> None:
    reqs = requests_of({"type": "connect"}, {"bogus": 1})
    results = resolve_all(reqs, server("2025.03.0"), "auto")
    assert results[0] == Resolution("unsupported", reason=ONE_ONLY)
    assert results[1].status == "invalid"
    assert resolve_all((), server("2024.06.0"), "server") == ()


def test_gates_apply_in_order() -> None:
    # Disabled and unlicensed and old: the API gate speaks first, then the switch.
    view = ServerView("s", parse_version("2024.06.0"), False, False, ())
    (result,) = resolve_all([request(type="aws")], view, "server")
    assert result.reason == NO_API
    view = ServerView("s", parse_version("2025.03.0"), False, False, ())
    (result,) = resolve_all([request(type="aws")], view, "server")
    assert result.reason.startswith("OAuth integrations are disabled")


# --- the matcher's memory ----------------------------------------------------


def test_identical_requests_share_one_resolution() -> None:
    matcher = ServerMatcher(server())
    first, second = requests_of({"type": "custom"}, {"type": "custom"})
    assert first.index != second.index
    assert matcher.resolve(first) is matcher.resolve(second)
    results = matcher.resolve_all([first, second], "auto")
    assert results[0] is results[1]


def test_module_resolve_all_reuses_a_matcher_per_server_object() -> None:
    view = server()
    (req,) = requests_of({"auth_type": "Viewer"})
    first = resolve_all([req], view, "auto")
    assert resolve_all([req], view, "auto")[0] is first[0]
    # An equal but distinct view is a fresh matcher with equal answers.
    other = server()
    assert resolve_all([req], other, "auto") == first


def test_config_key_order_is_part_of_the_identity() -> None:
    matcher = ServerMatcher(server(integrations=[integration(guid="a", config={"x": 1, "y": 2})]))
    xy, yx = requests_of({"config": {"x": 0, "y": 0}}, {"config": {"y": 0, "x": 0}})
    assert matcher.resolve(xy).reason.endswith("config.x is 1, not 0, config.y is 2, not 0")
    assert matcher.resolve(yx).reason.endswith("config.y is 2, not 0, config.x is 1, not 0")
    one, one_float, true = requests_of({"config": {"x": 1}}, {"config": {"x": 1.0}},
                                       {"config": {"x": True}})
    assert matcher.resolve(one).status == "matched"
    assert matcher.resolve(one_float).status == "matched"
    assert matcher.resolve(true).status == "unmatched"


# --- property tests against a plain reference loop ---------------------------

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


def _canon(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null",)
    if isinstance(value, dict):
        return ("obj", frozenset((k, _canon(v)) for k, v in value.items()))
    return ("arr", tuple(_canon(v) for v in value))


def _field_checks(req: IntegrationRequest, item: Integration) -> list[bool]:
    """One verdict per criterion, each config key its own, recompiling every time."""
    checks: list[bool] = []
    if req.guid is not None:
        checks.append(item.guid == req.guid)
    for field in ("name", "description"):
        pattern = getattr(req, field)
        if pattern is not None:
            text = getattr(item, field)
            checks.append(
                text is not None
                and re2.compile(pattern, _OPTIONS).search(text.encode("utf-8", "surrogatepass"))
                is not None
            )
    if req.type is not None:
        checks.append(item.template == req.type)
    if req.auth_type is not None:
        checks.append(item.auth_type == req.auth_type)
    for key, wanted in (req.config or {}).items():
        checks.append(key in item.config and _canon(item.config[key]) == _canon(wanted))
    return checks


def reference(req: IntegrationRequest, items: Sequence[Integration]) -> tuple[Any, ...]:
    if req.problem is not None:
        return ("invalid", (), None)
    verdicts = [_field_checks(req, item) for item in items]
    found = tuple(item for item, checks in zip(items, verdicts, strict=True) if all(checks))
    if len(found) == 1:
        return ("matched", found, None)
    if found:
        return ("ambiguous", found, None)
    closest = None
    best = -1
    for item, checks in zip(items, verdicts, strict=True):
        if sum(checks) > best:
            best, closest = sum(checks), item
    return ("unmatched", (), closest)


NAME_BITS = st.sampled_from(
    ["a", "b", "A", "db", ".", "*", "+", "?", "(", ")", "[", "]", "^", "$", "|", "\\", " ", "é"]
)
TEXT = st.lists(NAME_BITS, max_size=4).map("".join)
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 2),
    st.sampled_from([0.0, 1.0, 1.5, -0.0]),
    st.sampled_from(["", "1", "true", "x"]),
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["p", "q"]), inner, max_size=2)
    ),
    max_leaves=4,
)
CONFIG_KEYS = st.sampled_from(["scopes", "x", "token", "n"])
GUIDS = st.sampled_from(["g0", "g1", "g2", "g3", "g4"])
TEMPLATES = st.sampled_from(["aws", "custom", "snowflake", "connect"])
AUTH = st.sampled_from(["Viewer", "Service Account", "Visitor API Key"])


@st.composite
def integrations(draw: st.DrawFn) -> tuple[Integration, ...]:
    items = []
    for _ in range(draw(st.integers(0, 7))):
        obj: dict[str, Any] = {"guid": draw(GUIDS)}
        for field, values in (
            ("name", TEXT),
            ("description", TEXT),
            ("template", TEMPLATES),
            ("auth_type", AUTH),
        ):
            choice = draw(st.sampled_from(["value", "value", "null", "missing"]))
            if choice == "value":
                obj[field] = draw(values)
            elif choice == "null":
                obj[field] = None
        obj["config"] = draw(st.dictionaries(CONFIG_KEYS, JSON_VALUE, max_size=3))
        items.append(Integration.from_api(obj))
    return tuple(items)


@st.composite
def request_elements(draw: st.DrawFn, items: Sequence[Integration]) -> dict[str, Any]:
    """A request, often built from a drawn integration's values so that some match."""
    source: Integration | None = None
    from_an_integration: bool = draw(st.booleans())
    if items and from_an_integration:
        source = draw(st.sampled_from(items))
    element: dict[str, Any] = {}
    for field in ("guid", "name", "description", "type", "auth_type"):
        if not draw(st.booleans()):
            continue
        attribute = "template" if field == "type" else field
        known = getattr(source, attribute) if source is not None else None
        if known is not None and draw(st.booleans()):
            if field in ("name", "description"):
                known = draw(st.sampled_from([known, re2.escape(known), f"^{re2.escape(known)}$",
                                              known[:2]]))
            element[field] = known
        else:
            strategy = {"guid": GUIDS, "type": TEMPLATES, "auth_type": AUTH}.get(field, TEXT)
            element[field] = draw(strategy)
    if draw(st.booleans()):
        config: dict[str, Any] = {}
        base = dict(source.config) if source is not None else {}
        for key in draw(st.lists(CONFIG_KEYS, max_size=3, unique=True)):
            if key in base and draw(st.booleans()):
                config[key] = base[key]
            else:
                config[key] = draw(JSON_VALUE)
        element["config"] = config
    return element


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_matcher_agrees_with_a_plain_loop(data: st.DataObject) -> None:
    items = data.draw(integrations())
    elements = data.draw(st.lists(request_elements(items), min_size=1, max_size=6))
    reqs = requests_of(*elements)
    matcher = ServerMatcher(server(None, items))
    for req in reqs:
        got = matcher.resolve(req)
        status, candidates, closest = reference(req, items)
        assert got.status == status
        assert got.candidates == candidates
        if status == "unmatched":
            assert got.closest is closest
            if closest is not None:
                assert got.reason.startswith("no integration matches; closest is ")
                assert f"({closest.guid})" in got.reason
        if status == "invalid":
            assert got.reason == req.problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_memoised_results_equal_fresh_ones(data: st.DataObject) -> None:
    items = data.draw(integrations())
    elements = data.draw(st.lists(request_elements(items), min_size=1, max_size=6))
    # Near twins differ in one field only: the memory must tell them apart.
    twins = []
    for element in elements:
        field = data.draw(st.sampled_from(["guid", "name", "type", "config"]))
        value = data.draw(
            st.dictionaries(CONFIG_KEYS, JSON_VALUE, max_size=2) if field == "config" else TEXT
        )
        twins.append({**element, field: value})
    # Repeat the list so that later requests hit the memory of earlier ones.
    reqs = requests_of(*elements, *twins, *elements[::-1], *twins)
    matcher = ServerMatcher(server(None, items))
    first = [matcher.resolve(req) for req in reqs]
    again = [matcher.resolve(req) for req in reqs]
    fresh = [resolve(req, items) for req in reqs]
    fresh_matcher = [ServerMatcher(server(None, items)).resolve(req) for req in reqs]
    assert first == again == fresh == fresh_matcher
