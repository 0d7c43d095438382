"""The deploy task's checks and integration resolution, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_deploy.integrations import Integration
from batch_deploy.sandbox.deploy import DeployPlan, plan_deploy, unsatisfied_error

from .helpers import (
    APP_FILES,
    INTEGRATIONS,
    KEYCLOAK,
    KEYCLOAK_STAGING,
    VISITOR,
    bundle_bytes,
    manifest_for,
    tar_gz,
)

ALL = tuple(Integration.from_api(obj) for obj in INTEGRATIONS)


def plan(
    tmp_path: Path,
    data: bytes,
    *,
    honours: bool = True,
    activate: bool = True,
    fail: bool = False,
    integrations: tuple[Integration, ...] = ALL,
) -> DeployPlan:
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    return plan_deploy(
        path,
        bundle_id=7,
        integrations=integrations,
        honours_requests=honours,
        activate=activate,
        fail=fail,
    )


def test_a_good_bundle_without_requests(tmp_path: Path) -> None:
    result = plan(tmp_path, bundle_bytes())
    assert result == DeployPlan(
        lines=(
            "Extracting bundle 7...",
            "Found manifest.json: app mode python-shiny, 2 files",
            "Building Python application...",
            "Bundle requested Python version 3.12.4; using /opt/python/3.12.4/bin/python3 "
            "which has version 3.12.4",
            "Installing packages from requirements.txt...",
            "Packages installed.",
            "Launching python-shiny content...",
            "Activated bundle 7.",
        ),
        error="",
        app_mode="python-shiny",
        associations=None,
    )


def test_requests_resolve_to_associations_in_order(tmp_path: Path) -> None:
    requests: list[Any] = [
        {"type": "connect", "auth_type": "Visitor API Key"},
        {"type": "custom", "name": "^keycloak integration$"},
        {"guid": VISITOR},
    ]
    result = plan(tmp_path, bundle_bytes(requests=requests))
    assert result.error == ""
    assert result.associations == (VISITOR, KEYCLOAK)
    assert result.lines[2:6] == (
        'Integration request 1 {"type":"connect","auth_type":"Visitor API Key"} resolved to '
        f"'Connect Visitor API Key' ({VISITOR})",
        'Integration request 2 {"type":"custom","name":"^keycloak integration$"} resolved to '
        f"'keycloak integration' ({KEYCLOAK})",
        f'Integration request 3 {{"guid":"{VISITOR}"}} resolved to '
        f"'Connect Visitor API Key' ({VISITOR})",
        f"Associating 2 OAuth integration(s) with the content: {VISITOR}, {KEYCLOAK}",
    )


def test_an_ambiguous_request_takes_the_first_candidate(tmp_path: Path) -> None:
    result = plan(tmp_path, bundle_bytes(requests=[{"type": "custom"}]))
    assert result.error == ""
    assert result.associations == (KEYCLOAK,)
    assert result.lines[2] == (
        f"Integration request 1 {{\"type\":\"custom\"}} resolved to 'keycloak integration' "
        f"({KEYCLOAK}) (first of 2 candidates)"
    )
    # The server's list order decides: reversed, the other one is first.
    reordered = plan(tmp_path, bundle_bytes(requests=[{"type": "custom"}]),
                     integrations=tuple(reversed(ALL)))
    assert reordered.associations == (KEYCLOAK_STAGING,)


@pytest.mark.parametrize(
    "request_obj",
    [
        {"type": "databricks"},
        {"name": "(?=look-ahead)"},
        {"type": "custom", "colour": "blue"},
        {"type": "custom", "config": {"auth_mode": "Public"}},
    ],
)
def test_an_unsatisfiable_request_fails_the_task(tmp_path: Path, request_obj: Any) -> None:
    requests: list[Any] = [{"type": "connect"}, request_obj]
    result = plan(tmp_path, bundle_bytes(requests=requests))
    text = json.dumps(request_obj, separators=(",", ":"))
    assert result.error == f"integration request could not be satisfied: {text}"
    assert result.error == unsatisfied_error(text)
    assert result.lines[-1] == f"Error: {result.error}"
    assert result.associations is None
    assert result.app_mode == "python-shiny"


def test_requests_are_ignored_where_the_server_does_not_honour_them(tmp_path: Path) -> None:
    result = plan(tmp_path, bundle_bytes(requests=[{"type": "databricks"}]), honours=False)
    assert result.error == ""
    assert result.associations is None
    assert result.lines[2] == (
        "Ignoring 1 integration request(s): this server does not associate integrations "
        "from manifests"
    )


def test_not_a_gzip_tar(tmp_path: Path) -> None:
    result = plan(tmp_path, b"this is not an archive")
    assert result.error == (
        "bundle 7 is not a valid gzip-compressed tar archive (not a gzip file); "
        "upload the .tar.gz built from the manifest"
    )
    assert result.lines == ("Extracting bundle 7...", f"Error: {result.error}")


def test_a_truncated_archive(tmp_path: Path) -> None:
    data = bundle_bytes()
    result = plan(tmp_path, data[: len(data) // 2])
    assert result.error.startswith("bundle 7 is not a valid gzip-compressed tar archive (")


def test_no_manifest(tmp_path: Path) -> None:
    result = plan(tmp_path, tar_gz({"app.py": b"x", "other/manifest.json": b"{}"}))
    assert result.error == (
        "bundle 7 has no manifest.json at its top level; put manifest.json first in the "
        "archive (rsconnect write-manifest writes it)"
    )


def test_a_single_top_folder_is_collapsed(tmp_path: Path) -> None:
    manifest = json.dumps(manifest_for(APP_FILES)).encode()
    entries = {"bundle/manifest.json": manifest}
    entries.update({f"bundle/{name}": data for name, data in APP_FILES.items()})
    result = plan(tmp_path, tar_gz(entries))
    assert result.error == ""
    assert result.lines[1] == "Collapsed the single top-level folder 'bundle'"


def test_an_unusable_manifest(tmp_path: Path) -> None:
    result = plan(tmp_path, tar_gz({"manifest.json": b'{"files": {}}'}))
    assert result.error == (
        "bundle 7: manifest.json: metadata is missing, not an object; "
        'add "metadata": {"appmode": "..."} (rsconnect write-manifest writes it)'
    )


def test_every_listed_file_must_be_present(tmp_path: Path) -> None:
    files = {**APP_FILES, "data/sales.csv": b"a,b\n"}
    manifest = json.dumps(manifest_for(files)).encode()
    result = plan(tmp_path, tar_gz({"manifest.json": manifest, "app.py": APP_FILES["app.py"]}))
    assert result.error == (
        'bundle 7 lacks 2 file(s) listed in manifest.json: "requirements.txt", '
        '"data/sales.csv"; rebuild the bundle from the manifest'
    )


def test_an_injected_failure_after_the_checks(tmp_path: Path) -> None:
    result = plan(tmp_path, bundle_bytes(requests=[{"type": "connect"}]), fail=True)
    step = "restoring the Python environment (pip install -r requirements.txt)"
    assert result.error == f"Unable to deploy bundle 7: {step} exited with status 1"
    assert result.lines[-1] == f"Error: {step} exited with status 1"
    assert result.associations is None


def test_other_content_types_build_their_way(tmp_path: Path) -> None:
    quarto = plan(tmp_path, bundle_bytes({"doc.qmd": b"# hi"}, appmode="quarto-static"))
    assert quarto.lines[2:5] == (
        "Building Quarto document...",
        "Rendering with quarto render...",
        "Rendering complete.",
    )
    static = plan(tmp_path, bundle_bytes({"index.html": b"<p>"}, appmode="static"))
    assert static.lines[2:4] == ("Building static content...", "Static content ready.")
    assert static.app_mode == "static"


def test_a_draft_is_built_but_not_activated(tmp_path: Path) -> None:
    result = plan(tmp_path, bundle_bytes(requests=[{"type": "connect"}]), activate=False)
    assert result.error == ""
    assert result.associations == (VISITOR,)
    assert result.lines[-1] == "Bundle 7 is built as a draft; it is not active."
