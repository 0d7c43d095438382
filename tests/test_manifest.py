"""manifest.json parsing and the content folder checks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from batch_deploy.errors import ManifestError
from batch_deploy.manifest import IntegrationRequest, Manifest, load_manifest, parse_manifest

EXAMPLES = Path("/work/shared/spec/examples")
W = "content/app/manifest.json"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "metadata": {"appmode": "python-shiny", "entrypoint": "app"},
        "files": {"app.py": {"checksum": "0" * 32}},
    }
    base.update(overrides)
    return base


def parse(document: Any) -> Manifest:
    return parse_manifest(json.dumps(document).encode(), W)


def error_of(data: bytes) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, W)
    return str(caught.value)


def requests_of(*elements: Any) -> tuple[IntegrationRequest, ...]:
    return parse(doc(integration_requests=list(elements))).requests


# --- the document as a whole -------------------------------------------------


def test_example_manifests_parse() -> None:
    fastapi = parse_manifest((EXAMPLES / "python-fastapi-api.manifest.json").read_bytes(), "x")
    assert fastapi.appmode == "python-fastapi"
    assert fastapi.files == ("requirements.txt", "main.py", "settings.py")
    assert fastapi.checksums["main.py"] == "bac4cfdf89d222317d50da373182aa51"
    assert [r.text for r in fastapi.requests] == [
        '{"guid":"5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11"}',
        '{"name":"^Snowflake (prod|production)$","type":"snowflake","auth_type":"Viewer"}',
    ]
    assert fastapi.requests[1] == IntegrationRequest(
        index=1,
        text='{"name":"^Snowflake (prod|production)$","type":"snowflake","auth_type":"Viewer"}',
        name="^Snowflake (prod|production)$",
        type="snowflake",
        auth_type="Viewer",
    )
    shiny = parse_manifest((EXAMPLES / "python-shiny-app.manifest.json").read_bytes(), "x")
    assert shiny.files == ("requirements.txt", "app.py", "data/sales.csv", "www/styles.css")
    assert shiny.requests[0].config == {"auth_mode": "Confidential"}
    assert shiny.requests[0].type == "custom"
    quarto = parse_manifest((EXAMPLES / "quarto-doc.manifest.json").read_bytes(), "x")
    assert quarto.appmode == "quarto-static"
    assert quarto.requests == ()
    assert quarto.title is None
    assert quarto.notes == ()


def test_raw_bytes_are_kept_unchanged() -> None:
    data = b'{ "metadata" : {"appmode":"api"},\n "files": {} }\n'
    assert parse_manifest(data, W).raw == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\xef\xbb\xbf{}",
            "starts with a byte-order mark, which JSON does not allow; "
            "save it as UTF-8 without a BOM",
        ),
        (b'{"a": "\xff"}', "not UTF-8 text (invalid byte at offset 7); save it as UTF-8"),
        (b"  \n", "is empty; run rsconnect write-manifest to write the manifest"),
        (
            b'{"metadata": {"appmode": "api"},\n "files": {},}',
            "not valid JSON (Expecting property name enclosed in double quotes at line 2 "
            "column 14); fix the syntax or run rsconnect write-manifest again",
        ),
        (
            b'{"a": NaN}',
            "cannot be read as JSON (NaN is not a JSON value); "
            "fix the value or run rsconnect write-manifest again",
        ),
        (
            b'{"a": -Infinity}',
            "cannot be read as JSON (-Infinity is not a JSON value); "
            "fix the value or run rsconnect write-manifest again",
        ),
        (
            b'{"a": 1e999}',
            "cannot be read as JSON (the number 1e999 is too large); "
            "fix the value or run rsconnect write-manifest again",
        ),
        (
            b'{"a": ' + b"7" * 5000 + b"}",
            "cannot be read as JSON (a number with 5000 digits is too long); "
            "fix the value or run rsconnect write-manifest again",
        ),
        (b"[" * 100_000, "nested too deeply to read; a manifest needs only a few levels"),
        (
            b"[]",
            "the top level is an array, not an object; "
            "run rsconnect write-manifest to write a valid manifest",
        ),
        (
            b'"manifest"',
            "the top level is a string, not an object; "
            "run rsconnect write-manifest to write a valid manifest",
        ),
    ],
)
def test_unreadable_documents(data: bytes, message: str) -> None:
    assert error_of(data) == f"{W}: {message}"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"files": {}},
            'metadata is missing, not an object; add "metadata": {"appmode": "..."} '
            "(rsconnect write-manifest writes it)",
        ),
        (
            {"metadata": ["python-shiny"], "files": {}},
            'metadata is an array, not an object; add "metadata": {"appmode": "..."} '
            "(rsconnect write-manifest writes it)",
        ),
        (
            {"metadata": {}, "files": {}},
            "metadata.appmode is missing; set it to the content type, "
            'for example "python-shiny" or "quarto-static"',
        ),
        (
            {"metadata": {"appmode": " "}, "files": {}},
            "metadata.appmode is a blank string; set it to the content type, "
            'for example "python-shiny" or "quarto-static"',
        ),
        (
            {"metadata": {"appmode": 3}, "files": {}},
            "metadata.appmode is a number; set it to the content type, "
            'for example "python-shiny" or "quarto-static"',
        ),
        (
            {"metadata": {"appmode": None}, "files": {}},
            "metadata.appmode is null; set it to the content type, "
            'for example "python-shiny" or "quarto-static"',
        ),
        (
            {"metadata": {"appmode": "api"}},
            'files is missing, not an object; list the content\'s files as {"path": '
            '{"checksum": "<md5>"}} (rsconnect write-manifest writes it)',
        ),
        (
            {"metadata": {"appmode": "api"}, "files": ["app.py"]},
            'files is an array, not an object; list the content\'s files as {"path": '
            '{"checksum": "<md5>"}} (rsconnect write-manifest writes it)',
        ),
        (
            {"metadata": {"appmode": "api"}, "files": {}, "integration_requests": {"a": 1}},
            'integration_requests is an object, not an array; write "integration_requests": '
            '[{"type": "...", "name": "..."}]',
        ),
        (
            {"metadata": {"appmode": "api"}, "files": {}, "integration_requests": None},
            'integration_requests is null, not an array; write "integration_requests": '
            '[{"type": "...", "name": "..."}]',
        ),
    ],
)
def test_unusable_fields(document: dict[str, Any], message: str) -> None:
    assert error_of(json.dumps(document).encode()) == f"{W}: {message}"


def test_title_from_top_level_then_metadata() -> None:
    assert parse(doc(title="Top")).title == "Top"
    assert parse(doc(metadata={"appmode": "api", "title": "Meta"})).title == "Meta"
    both = doc(title="Top", metadata={"appmode": "api", "title": "Meta"})
    assert parse(both).title == "Top"
    # A title that is not a usable string falls through to the next source.
    assert parse(doc(title=7, metadata={"appmode": "api", "title": "Meta"})).title == "Meta"
    assert parse(doc(title="  ")).title is None
    assert parse(doc(title=None)).title is None
    assert parse(doc()).title is None


def test_files_order_and_checksums() -> None:
    manifest = parse(
        doc(
            files={
                "z.py": {"checksum": "aa"},
                "a/b.py": {},
                "c.txt": {"checksum": 12},
                "d.txt": None,
                "e.txt": {"checksum": "EE"},
            }
        )
    )
    assert manifest.files == ("z.py", "a/b.py", "c.txt", "d.txt", "e.txt")
    assert manifest.checksums == {"z.py": "aa", "e.txt": "EE"}
    assert parse(doc(files={})).files == ()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "../secrets.txt",
            '"../secrets.txt" leaves the content folder; '
            "list paths relative to the manifest's folder",
        ),
        (
            "a/../../b",
            "\"a/../../b\" leaves the content folder; list paths relative to the manifest's folder",
        ),
        ("a/../b.py", '"a/../b.py" has a ".." segment; list it as "b.py"'),
        ("/etc/passwd", "\"/etc/passwd\" is an absolute path; list paths relative to the "
         "manifest's folder"),
        ("C:/app.py", "\"C:/app.py\" starts with a drive letter; list paths relative to the "
         "manifest's folder"),
        ("c:app.py", "\"c:app.py\" starts with a drive letter; list paths relative to the "
         "manifest's folder"),
        ("data\\x.csv", '"data\\\\x.csv" contains a backslash; use forward slashes ("data/x.csv")'),
        ("a//b.py", '"a//b.py" has an empty segment; list it as "a/b.py"'),
        ("www/", '"www/" has an empty segment; list it as "www"'),
        ("./app.py", '"./app.py" has a "." segment; list it as "app.py"'),
        ("a/..", '"a/.." names the content folder itself; list files, not folders'),
        (".", '"." names the content folder itself; list files, not folders'),
        ("./", '"./" names the content folder itself; list files, not folders'),
        ("", '"" is an empty path; remove it'),
        ("a\x00b", '"a\\u0000b" contains a NUL character; remove it'),
        (
            "\ud800.py",
            '"\\ud800.py" is not valid Unicode (it holds a lone surrogate escape); '
            "rename the file",
        ),
    ],
)
def test_bad_paths(path: str, message: str) -> None:
    data = json.dumps(doc(files={"ok.py": {}, path: {}})).encode()
    assert error_of(data) == f"{W}: files: {message}"


@pytest.mark.parametrize("path", ["ab:c.py", "dir/C:x", "..hidden", "a/...", "se cret.txt"])
def test_unusual_but_valid_paths(path: str) -> None:
    assert parse(doc(files={path: {}})).files == (path,)


# --- integration requests ----------------------------------------------------


def test_request_text_is_compact_json_in_element_order() -> None:
    (request,) = requests_of({"type": "custom", "name": "é", "config": {"b": [1, 2], "a": None}})
    assert request.text == '{"type":"custom","name":"é","config":{"b":[1,2],"a":null}}'
    assert request.problem is None
    assert request.config == {"b": [1, 2], "a": None}
    assert request.index == 0


def test_every_field_is_taken() -> None:
    (request,) = requests_of(
        {
            "guid": "g",
            "name": "n",
            "description": "d",
            "type": "t",
            "auth_type": "Viewer",
            "config": {"k": 1},
        }
    )
    assert (request.guid, request.name, request.description) == ("g", "n", "d")
    assert (request.type, request.auth_type, request.config) == ("t", "Viewer", {"k": 1})
    assert request.problem is None


OBJECT_FIX = "guid, name, description, type, auth_type or config"
FIELDS = "guid, name, description, type, auth_type and config"


@pytest.mark.parametrize(
    ("element", "problem"),
    [
        ({}, f"the request is empty; give at least one of {OBJECT_FIX}"),
        ("snowflake", f"the request is a string, not an object with any of {OBJECT_FIX}"),
        (None, f"the request is null, not an object with any of {OBJECT_FIX}"),
        ([{"name": "x"}], f"the request is an array, not an object with any of {OBJECT_FIX}"),
        (3, f"the request is a number, not an object with any of {OBJECT_FIX}"),
        ({"nmae": "x"}, f'unknown field "nmae"; the fields are {FIELDS}'),
        (
            {"Name": "x", "template": "snowflake"},
            'unknown fields "Name", "template" (did you mean "name" for "Name", '
            f'"type" for "template"?); the fields are {FIELDS}',
        ),
        # No hint when the field the key resembles is given too.
        ({"type": "a", "template": "b"}, f'unknown field "template"; the fields are {FIELDS}'),
        ({"name": 3}, "name is a number, not a string"),
        ({"guid": ["g"]}, "guid is an array, not a string"),
        ({"description": True}, "description is a boolean, not a string"),
        ({"type": {"a": 1}}, "type is an object, not a string"),
        ({"auth_type": None}, "auth_type is null; leave it out or give a string"),
        ({"config": "scopes=a"}, "config is a string, not an object"),
        ({"config": None}, "config is null, not an object"),
        (
            {"name": "(?=prod)"},
            'name pattern "(?=prod)" is not valid RE2 syntax (invalid perl operator: (?=); '
            "RE2 has no look-around or back-references",
        ),
        (
            {"description": "(a)\\1"},
            'description pattern "(a)\\\\1" is not valid RE2 syntax (invalid escape '
            "sequence: \\1); RE2 has no look-around or back-references",
        ),
        (
            {"name": "[", "type": 1, "x": 2},
            f'unknown field "x"; the fields are {FIELDS}; type is a number, not a string; '
            'name pattern "[" is not valid RE2 syntax (missing ]: [); '
            "RE2 has no look-around or back-references",
        ),
        (
            {"name": "\ud800"},
            "name pattern is not valid Unicode (it holds a lone surrogate escape)",
        ),
        (
            {"type": "\udc00"},
            "the request holds a lone surrogate escape, which is not valid Unicode",
        ),
    ],
)
def test_malformed_requests(element: Any, problem: str) -> None:
    (request,) = requests_of(element)
    assert request.problem == problem


def test_a_malformed_request_does_not_spoil_the_others() -> None:
    good, bad, also_good = requests_of({"type": "aws"}, {"name": "(?<=x)"}, {"guid": "g"})
    assert (good.problem, also_good.problem) == (None, None)
    assert bad.problem is not None
    assert (good.index, bad.index, also_good.index) == (0, 1, 2)
    assert bad.name == "(?<=x)"  # kept for display; the problem makes it invalid


def test_surrogates_never_reach_the_text_column() -> None:
    (request,) = requests_of({"type": "\udc00"})
    assert request.text == '{"type":"\\udc00"}'
    request.text.encode("utf-8")


def test_patterns_are_re2_not_python() -> None:
    # Valid in RE2 though spelled unlike Python's re (\z, \pN, (?i)); accepted.
    (a, b, c) = requests_of({"name": "prod\\z"}, {"name": "\\pN"}, {"name": "(?i)snow"})
    assert (a.problem, b.problem, c.problem) == (None, None, None)
    (d,) = requests_of({"name": "prod\\Z"})
    assert d.problem == (
        'name pattern "prod\\\\Z" is not valid RE2 syntax (invalid escape sequence: \\Z); '
        "RE2 has no look-around or back-references"
    )


# --- the content folder ------------------------------------------------------


def write(folder: Path, document: Any, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(document))
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_load_reads_a_folder_with_current_checksums(tmp_path: Path) -> None:
    body = b"print('hi')\n"
    folder = write(
        tmp_path / "app",
        doc(files={"app.py": {"checksum": md5(body)}, "data/x.csv": {}}),
        {"app.py": body, "data/x.csv": b"a,b\n"},
    )
    manifest = load_manifest(folder)
    assert manifest.files == ("app.py", "data/x.csv")
    assert manifest.notes == ()
    assert manifest.raw == (folder / "manifest.json").read_bytes()


def test_load_notes_stale_checksums_without_failing(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "app",
        doc(files={"app.py": {"checksum": md5(b"old")}, "b.py": {"checksum": md5(b"b").upper()}}),
        {"app.py": b"new", "b.py": b"b"},
    )
    where = folder / "manifest.json"
    assert load_manifest(folder).notes == (
        f'{where}: files: "app.py" changed since the manifest was written (its MD5 differs '
        "from the listed checksum); run rsconnect write-manifest again to refresh it",
    )


def test_load_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "app")
    assert str(caught.value) == (
        f"{tmp_path}/app/manifest.json: not found; run rsconnect write-manifest for this "
        "folder or add a manifest.json"
    )


def test_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "nope")
    assert str(caught.value) == (
        f"{tmp_path}/nope/manifest.json: not found (the folder '{tmp_path}/nope' does not "
        "exist); check the content's dir in the job file"
    )


def test_load_manifest_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "app" / "manifest.json").mkdir(parents=True)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "app")
    assert str(caught.value) == (
        f"{tmp_path}/app/manifest.json: is not a file; run rsconnect write-manifest for this "
        "folder or add a manifest.json"
    )


def test_load_refuses_a_manifest_linked_from_outside(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere", doc(files={}), {})
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "manifest.json").symlink_to(tmp_path / "elsewhere" / "manifest.json")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "app")
    assert str(caught.value) == (
        f"{tmp_path}/app/manifest.json: is a symbolic link to a file outside the content "
        "folder; copy the manifest into the folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_load_unreadable_manifest(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={}), {})
    (folder / "manifest.json").chmod(0)
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f"{folder}/manifest.json: cannot be read (Permission denied); "
        "check the file's permissions"
    )


def test_load_passes_parse_errors_through_with_the_path(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={"../x": {}}), {})
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f"{folder}/manifest.json: files: \"../x\" leaves the content folder; "
        "list paths relative to the manifest's folder"
    )


def test_load_missing_listed_files(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={"app.py": {}, "gone.py": {}}), {"app.py": b""})
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f'{folder}/manifest.json: files: "gone.py" is listed but missing; '
        "restore it or run rsconnect write-manifest again"
    )
    many: dict[str, Any] = {f"{n}.py": {} for n in "abcde"}
    folder = write(tmp_path / "many", doc(files=many), {})
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f'{folder}/manifest.json: files: "a.py", "b.py", "c.py" and 2 more are listed but '
        "missing; restore them or run rsconnect write-manifest again"
    )


def test_load_listed_directory(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={"www": {}}), {"www/a.css": b""})
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f'{folder}/manifest.json: files: "www" is not a regular file; '
        "list only files, each with its own path"
    )


def test_load_refuses_links_that_leave_the_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    folder = write(tmp_path / "app", doc(files={"data/s.txt": {}}), {})
    (folder / "data").mkdir()
    (folder / "data" / "s.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f'{folder}/manifest.json: files: "data/s.txt" resolves outside the content folder '
        "through a symbolic link; replace the link with the file itself"
    )
    # A linked directory on the way out is caught the same way.
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.py").write_text("")
    folder = write(tmp_path / "app2", doc(files={"lib/x.py": {}}), {})
    (folder / "lib").symlink_to(tmp_path / "outside")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert "resolves outside the content folder" in str(caught.value)


def test_load_accepts_links_that_stay_inside(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={"alias.py": {}}), {"real.py": b"x"})
    (folder / "alias.py").symlink_to(folder / "real.py")
    assert load_manifest(folder).files == ("alias.py",)


def test_load_link_loop(tmp_path: Path) -> None:
    folder = write(tmp_path / "app", doc(files={"loop.py": {}}), {})
    (folder / "loop.py").symlink_to(folder / "loop.py")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert str(caught.value) == (
        f'{folder}/manifest.json: files: "loop.py" cannot be resolved (a symbolic link loop?); '
        "replace the link with the file itself"
    )
