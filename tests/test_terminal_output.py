"""Server-provided text reaches the terminal escaped, never as raw control sequences."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Ran, command, sandboxes, write_job
from hypothesis import example, given
from hypothesis import strategies as st
from jobkit import SNOWFLAKE, integration, seed, write_content

from batch_deploy.report import json_text, terminal_text

HOSTILE = integration(
    "8d1f0a3c-2b4e-4c6d-9e8f-7a6b5c4d3e2f",
    "Vault\x1b]0;owned\x07\x1b[2J \u202eenil\ud800",
    "custom\r",
    "Viewer\x9b31m",
    client_id="vault\x1b[8m",
)


def test_terminal_text_escapes_everything_but_printable_ascii() -> None:
    assert terminal_text("plain name-1") == "plain name-1"
    assert terminal_text("a\x1b[2Jb\x07\r\n\x9b\u202e\xe9") == (
        "a\\x1b[2Jb\\x07\\r\\n\\x9b\\u202e\\xe9"
    )


def test_terminal_text_can_keep_readable_letters_but_not_controls() -> None:
    assert terminal_text("Données ☃", keep_unicode=True) == "Données ☃"
    assert terminal_text("a\x1b[2J\u202e\x9bé", keep_unicode=True) == "a\\x1b[2J\\u202e\\x9bé"


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
@example({"name": "Vault\x9b31m\x7f\ud800", "e": ["\x1b[2J"]})
def test_json_text_escapes_every_control_and_reads_back(value: object) -> None:
    text = json_text(value)
    assert json.loads(text) == value
    assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F for ch in text)
    text.encode("utf-8")  # no lone surrogate left raw


def test_the_integrations_listing_escapes_server_text(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one")
    plain = integration(SNOWFLAKE, "Snow", "snowflake", "Viewer")
    hostile = seed("2025.09.0", integrations=[plain, HOSTILE])
    with sandboxes({"odd": hostile}) as servers:
        write_job(root, servers, [{"dir": "one"}])
        listed = command("integrations", "jobs.toml", cwd=root)
        url = servers["odd"].url
    assert listed == Ran(
        0,
        f"odd ({url}, Connect 2025.09.0): 2 integration(s)\n"
        f"  {SNOWFLAKE}  Snow  type=snowflake  auth_type=Viewer  config={{}}\n"
        "  8d1f0a3c-2b4e-4c6d-9e8f-7a6b5c4d3e2f  "
        "Vault\\x1b]0;owned\\x07\\x1b[2J \\u202eenil\\ud800  type=custom\\r  "
        "auth_type=Viewer\\x9b31m  "
        'config={"client_id":"vault\\u001b[8m"}\n',
        "",
    )


def test_the_integrations_seed_escapes_server_text(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write_content(root / "one")
    with sandboxes({"odd": seed("2025.09.0", integrations=[HOSTILE])}) as servers:
        write_job(root, servers, [{"dir": "one"}])
        exported = command("integrations", "jobs.toml", "--json", cwd=root)
    assert (exported.code, exported.err) == (0, "")
    assert '"name": "Vault\\u001b]0;owned\\u0007\\u001b[2J \u202eenil\\ud800"' in exported.out
    assert '"auth_type": "Viewer\\u009b31m"' in exported.out
    (integration_seen,) = json.loads(exported.out)["integrations"]
    assert integration_seen["name"] == HOSTILE["name"]
