from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_deploy.errors import BatchDeployError, StateError
from batch_deploy.state import STATE_VERSION, PairState, load_state, save_state

A = PairState("guid-a", "12", "0123456789abcdef0123456789abcdef", "2025-01-02T03:04:05Z")
B = PairState("guid-b", "", "fedcba9876543210fedcba9876543210", "2025-02-03T04:05:06Z")


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_state(tmp_path / "state.json") == {}


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    states = {("sales", "prod"): A, ("sales", "staging"): B, ("hr", "prod"): A}
    save_state(path, states)
    assert load_state(path) == states


def test_file_is_versioned_sorted_and_holds_only_known_fields(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, {("z", "prod"): A, ("a", "staging"): B, ("a", "prod"): A})
    document = json.loads(path.read_text("utf-8"))
    assert document["version"] == STATE_VERSION == 1
    assert set(document) == {"version", "pairs"}
    assert [(p["content"], p["server"]) for p in document["pairs"]] == [
        ("a", "prod"),
        ("a", "staging"),
        ("z", "prod"),
    ]
    for pair in document["pairs"]:
        assert set(pair) == {
            "content",
            "server",
            "content_guid",
            "bundle_id",
            "bundle_md5",
            "finished",
        }


def test_same_states_same_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    save_state(one, {("a", "x"): A, ("b", "y"): B})
    save_state(two, {("b", "y"): B, ("a", "x"): A})
    assert one.read_bytes() == two.read_bytes()


def test_save_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "state.json"
    save_state(path, {("a", "x"): A})
    save_state(path, {("b", "y"): B})
    assert load_state(path) == {("b", "y"): B}
    assert [entry.name for entry in path.parent.iterdir()] == ["state.json"]


def test_failed_replace_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    # A folder where the file should go makes the final rename fail.
    path = tmp_path / "state.json"
    path.mkdir()
    (path / "keep").write_text("x")
    with pytest.raises(StateError) as caught:
        save_state(path, {("a", "x"): A})
    assert str(caught.value).startswith(f"{path}: the state file cannot be written (")
    assert str(caught.value).endswith(
        "); make report_dir writable or point report_dir elsewhere"
    )
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["state.json"]
    assert (path / "keep").read_text() == "x"


def test_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder")
    path = blocker / "state.json"
    with pytest.raises(StateError) as caught:
        save_state(path, {("a", "x"): A})
    assert str(caught.value) == (
        f"{path}: the state file cannot be written (File exists); make report_dir "
        "writable or point report_dir elsewhere"
    )


FIX = "delete it to start afresh (the next run then looks content up by name)"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"pairs": []}', 'no integer "version"'),
        ('{"version": true, "pairs": []}', 'no integer "version"'),
        ('{"version": 0, "pairs": []}', "unknown version 0"),
        ('{"version": 1}', 'no "pairs" list'),
        ('{"version": 1, "pairs": [7]}', "pairs[0] is not an object"),
        (
            '{"version": 1, "pairs": [{"content": "a", "server": "x", "content_guid": "g", '
            '"bundle_id": 5, "bundle_md5": "m", "finished": "t"}]}',
            "pairs[0].bundle_id is not a string",
        ),
        (
            '{"version": 1, "pairs": [{"content": "a", "server": "x", "content_guid": "g", '
            '"bundle_id": "1", "bundle_md5": "m"}]}',
            "pairs[0].finished is not a string",
        ),
    ],
)
def test_corrupt_file(tmp_path: Path, text: str, detail: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateError) as caught:
        load_state(path)
    assert str(caught.value) == (
        f"{path}: the state file of an earlier run cannot be used ({detail}); {FIX}"
    )
    assert isinstance(caught.value, BatchDeployError)


def test_repeated_pair_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, {("a", "x"): A})
    document = json.loads(path.read_text())
    document["pairs"].append(document["pairs"][0])
    path.write_text(json.dumps(document))
    with pytest.raises(StateError) as caught:
        load_state(path)
    assert str(caught.value) == (
        f"{path}: the state file of an earlier run cannot be used "
        f"(pairs[1] repeats 'a' on 'x'); {FIX}"
    )


def test_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 2, "pairs": []}')
    with pytest.raises(StateError) as caught:
        load_state(path)
    assert str(caught.value) == (
        f"{path}: the state file was written by a newer batch_deploy (version 2); "
        "upgrade batch_deploy or delete it to start afresh"
    )


TEXT = st.text(min_size=0, max_size=12)
STATES = st.dictionaries(
    st.tuples(TEXT, TEXT),
    st.builds(PairState, TEXT, TEXT, TEXT, TEXT),
    max_size=8,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(STATES)
def test_any_state_round_trips(tmp_path: Path, states: dict[tuple[str, str], PairState]) -> None:
    path = tmp_path / "prop" / "state.json"
    save_state(path, states)
    assert load_state(path) == states
