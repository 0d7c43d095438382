from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tracemalloc
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_deploy.bundle import (
    FIXED_MTIME,
    BuiltBundle,
    build_bundle,
    build_bundle_async,
    bundle_members,
)
from batch_deploy.errors import BundleError
from batch_deploy.manifest import Manifest

RAW = b'{"version": 1,\n  "metadata": {"appmode": "python-shiny"},   "files": {}}\n'


def manifest(*files: str, raw: bytes = RAW) -> Manifest:
    return Manifest(
        raw=raw,
        appmode="python-shiny",
        title=None,
        files=tuple(files),
        checksums={},
        requests=(),
    )


@pytest.fixture
def content(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    (folder / "data").mkdir(parents=True)
    (folder / "app.py").write_text("print('hi')\n")
    (folder / "data" / "x.csv").write_text("a,b\n1,2\n")
    (folder / "requirements.txt").write_text("shiny\n")
    (folder / "manifest.json").write_bytes(RAW)
    return folder


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def read_members(bundle: BuiltBundle) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(bundle.path, "r:gz") as archive:
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            assert handle is not None
            out.append((info, handle.read()))
    return out


ORDER = ("requirements.txt", "data/x.csv", "app.py")


def test_manifest_first_then_files_in_manifest_order(content: Path, dest: Path) -> None:
    bundle = build_bundle(content, manifest(*ORDER), dest)
    members = read_members(bundle)
    assert [info.name for info, _ in members] == ["manifest.json", *ORDER]
    assert members[0][1] == RAW
    assert members[1][1] == b"shiny\n"
    assert members[2][1] == b"a,b\n1,2\n"
    assert members[3][1] == b"print('hi')\n"
    assert bundle.path.parent == dest
    assert bundle.path.name.endswith(".tar.gz")


def test_md5_and_size_describe_the_file(content: Path, dest: Path) -> None:
    bundle = build_bundle(content, manifest(*ORDER), dest)
    data = bundle.path.read_bytes()
    assert bundle.size == len(data)
    assert bundle.md5_hex == hashlib.md5(data).hexdigest()


def test_entries_are_normalised(content: Path, dest: Path) -> None:
    os.chmod(content / "app.py", 0o775)
    os.chmod(content / "requirements.txt", 0o600)
    members = read_members(build_bundle(content, manifest(*ORDER), dest))
    modes = {info.name: info.mode for info, _ in members}
    assert modes == {
        "manifest.json": 0o644,
        "requirements.txt": 0o644,
        "data/x.csv": 0o644,
        "app.py": 0o755,
    }
    for info, _ in members:
        assert info.isreg()
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (
            FIXED_MTIME,
            0,
            0,
            "",
            "",
        )


def test_same_inputs_same_md5_whatever_the_times(
    content: Path, dest: Path, tmp_path: Path
) -> None:
    first = build_bundle(content, manifest(*ORDER), dest)
    os.utime(content / "app.py", (1_000_000_000, 1_000_000_000))
    os.chmod(content / "data" / "x.csv", 0o640)
    other = tmp_path / "other"
    other.mkdir()
    second = build_bundle(content, manifest(*ORDER), other)
    assert second.md5_hex == first.md5_hex
    assert second.path.read_bytes() == first.path.read_bytes()
    assert second.path != first.path


def test_gzip_header_has_no_name_or_time(content: Path, dest: Path) -> None:
    data = build_bundle(content, manifest(*ORDER), dest).path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert flags & 0x08 == 0  # no FNAME
    assert mtime == 0
    assert gzip.decompress(data)  # a valid stream


def test_changed_content_changes_md5(content: Path, dest: Path) -> None:
    first = build_bundle(content, manifest(*ORDER), dest)
    (content / "app.py").write_text("print('bye')\n")
    assert build_bundle(content, manifest(*ORDER), dest).md5_hex != first.md5_hex


def test_changed_manifest_bytes_change_md5(content: Path, dest: Path) -> None:
    first = build_bundle(content, manifest(*ORDER), dest)
    second = build_bundle(content, manifest(*ORDER, raw=RAW + b" "), dest)
    assert second.md5_hex != first.md5_hex


def test_listed_manifest_json_is_not_duplicated(content: Path, dest: Path) -> None:
    members = read_members(build_bundle(content, manifest("manifest.json", "app.py"), dest))
    assert [info.name for info, _ in members] == ["manifest.json", "app.py"]
    assert members[0][1] == RAW


def test_dot_segments_are_flattened(content: Path) -> None:
    members = bundle_members(content, manifest("./app.py", "data/./x.csv"))
    assert [name for name, _ in members] == ["app.py", "data/x.csv"]


def test_symlink_inside_the_folder_is_followed(content: Path, dest: Path) -> None:
    (content / "alias.py").symlink_to(content / "app.py")
    members = read_members(build_bundle(content, manifest("alias.py"), dest))
    assert [(info.name, info.isreg(), body) for info, body in members[1:]] == [
        ("alias.py", True, b"print('hi')\n")
    ]


def test_missing_file(content: Path, dest: Path) -> None:
    with pytest.raises(BundleError) as caught:
        build_bundle(content, manifest("app.py", "gone.txt"), dest)
    assert str(caught.value) == (
        f"{content}: the manifest lists 'gone.txt', which does not exist; restore the file "
        "or run write-manifest again to drop it from the list"
    )
    assert list(dest.iterdir()) == []


def test_parent_segment(content: Path) -> None:
    with pytest.raises(BundleError) as caught:
        bundle_members(content, manifest("data/../../secret.txt"))
    assert str(caught.value) == (
        f"{content}: the manifest lists 'data/../../secret.txt', which leaves the content "
        "folder; list only files inside the folder that holds manifest.json"
    )


@pytest.mark.parametrize("path", ["/etc/passwd", "\\server\\share", "C:/x.txt", "c:"])
def test_absolute_path(content: Path, path: str) -> None:
    with pytest.raises(BundleError) as caught:
        bundle_members(content, manifest(path))
    assert str(caught.value) == (
        f"{content}: the manifest lists {path!r}, which is an absolute path; list paths "
        "relative to the folder that holds manifest.json"
    )


def test_symlink_leaving_the_folder(content: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (content / "link.txt").symlink_to(outside)
    with pytest.raises(BundleError) as caught:
        bundle_members(content, manifest("app.py", "link.txt"))
    assert str(caught.value) == (
        f"{content}: the manifest lists 'link.txt', which resolves to "
        f"{str(outside.resolve())!r} outside the content folder; copy the file into the "
        "folder instead of linking to it"
    )


def test_linked_folder_leaving_the_folder(content: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.txt").write_text("x")
    (content / "sub").symlink_to(elsewhere)
    with pytest.raises(BundleError, match=r"'sub/a\.txt', which resolves to .* outside"):
        bundle_members(content, manifest("sub/a.txt"))


def test_folder_is_not_a_regular_file(content: Path) -> None:
    with pytest.raises(BundleError) as caught:
        bundle_members(content, manifest("data"))
    assert str(caught.value) == (
        f"{content}: the manifest lists 'data', which is not a regular file; list files "
        "only, not folders, sockets or devices"
    )


def test_missing_content_folder(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    with pytest.raises(BundleError) as caught:
        bundle_members(gone, manifest("app.py"))
    assert str(caught.value) == (
        f"{gone}: the content folder cannot be opened (No such file or directory); "
        "check the dir in the job file"
    )


SEGMENTS = st.sampled_from(["a", "b.txt", "..", ".", "data", "x y"])


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(SEGMENTS, min_size=1, max_size=5), st.booleans())
def test_path_rules_hold_for_any_path(tmp_path: Path, segments: list[str], absolute: bool) -> None:
    # No listed file exists, so every path ends in exactly one of three errors.
    folder = tmp_path / "prop"
    folder.mkdir(exist_ok=True)
    path = ("/" if absolute else "") + "/".join(segments)
    with pytest.raises(BundleError) as caught:
        bundle_members(folder, manifest(path))
    text = str(caught.value)
    if absolute:
        assert "is an absolute path" in text
    elif ".." in segments:
        assert "leaves the content folder" in text
    elif all(segment == "." for segment in segments):
        assert "is not a regular file" in text  # "." names the folder itself
    else:
        assert "does not exist" in text


def test_build_streams_in_constant_memory(tmp_path: Path, dest: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    size = 16 * 1024 * 1024
    with open(folder / "blob.bin", "wb") as handle:
        for _ in range(size // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        bundle = build_bundle(folder, manifest("blob.bin"), dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bundle.size > size  # random data does not compress
    assert peak < size // 8


@pytest.mark.anyio
async def test_async_build_runs_under_a_limiter(content: Path, dest: Path) -> None:
    limiter = anyio.CapacityLimiter(1)
    results = []

    async def one() -> None:
        results.append(await build_bundle_async(content, manifest(*ORDER), dest, limiter))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(one)
    assert len({bundle.path for bundle in results}) == 3
    assert len({bundle.md5_hex for bundle in results}) == 1
    assert limiter.borrowed_tokens == 0


@pytest.mark.anyio
async def test_async_build_raises_bundle_error(content: Path, dest: Path) -> None:
    with pytest.raises(BundleError, match="'nope', which does not exist"):
        await build_bundle_async(content, manifest("nope"), dest)



def test_unwritable_destination(content: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(BundleError) as caught:
        build_bundle(content, manifest(*ORDER), missing)
    assert str(caught.value) == (
        f"{content}: the bundle cannot be written to {missing} (No such file or directory); "
        "free disk space or make the folder writable"
    )
