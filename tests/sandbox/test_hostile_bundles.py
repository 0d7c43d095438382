"""Hostile uploads: the sandbox reads within bounds, writes nothing, and stays up."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from batch_deploy.sandbox.deploy import ArchiveLimits, DeployPlan, plan_deploy

from .helpers import bundle_bytes, error_of, manifest_for, sandbox_client

MANIFEST = json.dumps(manifest_for({})).encode()
FIX = "upload the .tar.gz built from the manifest"


def block(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """One member as raw GNU tar bytes (which allow a negative size): header, padded data."""
    return info.tobuf(tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def regular(name: str, data: bytes = b"") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return block(info, data)


END = b"\0" * (2 * tarfile.BLOCKSIZE)


DEFAULT = ArchiveLimits()


def plan(path: Path, data: bytes, limits: ArchiveLimits = DEFAULT) -> DeployPlan:
    path.write_bytes(data)
    return plan_deploy(
        path, bundle_id=7, integrations=(), honours_requests=False, activate=True, limits=limits
    )


def test_a_header_that_claims_a_huge_size_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # A pax header of 64 MiB of zeros packs into a few hundred KiB; tarfile would
    # read it whole into memory (and parse it in quadratic time).
    claimed = 64 << 20
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = claimed
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=1, mtime=0) as archive:
        archive.write(pax.tobuf(tarfile.USTAR_FORMAT))
        zeros = b"\0" * (1 << 20)
        for _ in range(claimed // len(zeros)):
            archive.write(zeros)
        archive.write(regular("manifest.json", MANIFEST) + END)
    tracemalloc.start()
    try:
        result = plan(tmp_path / "bomb.tar.gz", packed.getvalue())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == (
        f"bundle 7 holds a tar header of {claimed} bytes, more than 8192; {FIX}"
    )
    assert peak < 16 << 20


def test_a_decompression_bomb_is_cut_off(tmp_path: Path) -> None:
    data = regular("manifest.json", MANIFEST) + regular("big.bin", b"\0" * (4 << 20)) + END
    result = plan(tmp_path / "b.tar.gz", gzip.compress(data), ArchiveLimits(unpacked_bytes=1 << 20))
    assert result.error == f"bundle 7 unpacks to more than 1048576 bytes; {FIX}"
    # The same archive within a larger budget is fine.
    assert plan(tmp_path / "b.tar.gz", gzip.compress(data)).error == ""


def test_a_flood_of_members_is_refused(tmp_path: Path) -> None:
    data = regular("manifest.json", MANIFEST) + b"".join(regular(f"f{n}") for n in range(60)) + END
    result = plan(tmp_path / "f.tar.gz", gzip.compress(data), ArchiveLimits(members=50))
    assert result.error == (
        "bundle 7 holds more than 50 members; leave generated files and environments out of "
        "the manifest"
    )


@pytest.mark.timeout(20)
def test_a_member_that_steps_back_does_not_loop_forever(tmp_path: Path) -> None:
    # A negative size sends tarfile back to an earlier header, again and again
    # (Python before 3.11.14 has no guard of its own).
    back = tarfile.TarInfo("loop")
    back.size = -4 * tarfile.BLOCKSIZE  # back to the header of "a"
    data = regular("manifest.json", MANIFEST) + regular("a", b"x" * 1024) + block(back) + END
    result = plan(tmp_path / "l.tar.gz", gzip.compress(data), ArchiveLimits(members=1000))
    assert result.error == (
        "bundle 7 holds more than 1000 members; leave generated files and environments out of "
        "the manifest"
    )


def test_extended_headers_are_bounded_in_all(tmp_path: Path) -> None:
    # Names too long for a ustar header each bring a pax header of two blocks.
    names = [f"{'d' * 600}{n}.txt" for n in range(6)]
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name, data in [("manifest.json", MANIFEST), *((n, b"") for n in names)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    limits = ArchiveLimits(header_bytes=4096)
    result = plan(tmp_path / "h.tar.gz", packed.getvalue(), limits)
    assert result.error == f"bundle 7 holds more than 4096 bytes of extended tar headers; {FIX}"
    assert plan(tmp_path / "h.tar.gz", packed.getvalue()).error == ""


def test_a_global_header_of_many_records_is_refused(tmp_path: Path) -> None:
    packed = io.BytesIO()
    records = {f"k{n}": "v" for n in range(100)}
    with tarfile.open(
        fileobj=packed, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=records
    ) as archive:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(MANIFEST)
        archive.addfile(info, io.BytesIO(MANIFEST))
    result = plan(tmp_path / "g.tar.gz", packed.getvalue())
    assert result.error == f"bundle 7 has a global pax header of more than 64 records; {FIX}"


def test_a_negative_manifest_size_is_not_a_read_of_everything(tmp_path: Path) -> None:
    info = tarfile.TarInfo("manifest.json")
    info.size = -1
    data = block(info) + regular("x", b"y" * 10) + END
    result = plan(tmp_path / "n.tar.gz", gzip.compress(data))
    assert result.error == "bundle 7 is not a valid tar archive"


def test_links_and_escaping_names_are_never_followed_or_written(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    symlink = tarfile.TarInfo("manifest.json")
    symlink.type = tarfile.SYMTYPE
    symlink.linkname = "/etc/passwd"
    hardlink = tarfile.TarInfo("app/manifest.json")
    hardlink.type = tarfile.LNKTYPE
    hardlink.linkname = "/etc/passwd"
    data = (
        block(symlink)
        + block(hardlink)
        + regular("../escape.txt", b"out")
        + regular("/abs.txt", b"out")
        + END
    )
    result = plan(folder / "s.tar.gz", gzip.compress(data))
    assert result.error == (
        "bundle 7 has no manifest.json at its top level; put manifest.json first in the "
        "archive (rsconnect write-manifest writes it)"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.tar.gz", "uploads"]


@pytest.mark.anyio
async def test_the_sandbox_answers_hostile_requests_with_client_errors() -> None:
    async with sandbox_client() as (_, http):
        async with http.post("/__api__/v1/content", data="[" * 100_000) as response:
            status, body = await error_of(response)
        assert (status, body["error"]) == (
            400,
            "The request JSON is invalid: it is nested too deeply.",
        )
        async with http.post("/__api__/v1/content", json={"name": "app-one"}) as response:
            guid = (await response.json())["guid"]
        async with http.post(
            f"/__api__/v1/content/{guid}/bundles", data=bundle_bytes()
        ) as response:
            assert response.status == 200
        async with http.post(
            f"/__api__/v1/content/{guid}/deploy", json={"bundle_id": "1"}
        ) as response:
            task_id = (await response.json())["task_id"]
        async with http.get(f"/__api__/v1/tasks/{task_id}?first=1e400") as response:
            status, body = await error_of(response)
        assert (status, body["error"]) == (
            400,
            "The parameter is invalid: first='1e400'; give a number of 0 or more.",
        )
        for odd in ("\u00b2", "9" * 5000):
            async with http.get(f"/__api__/v1/content/{guid}/bundles/{odd}") as response:
                status, body = await error_of(response)
            assert (status, body["code"]) == (404, 4)
        async with http.get(f"/content/{guid}/_bundle{'9' * 5000}/") as response:
            assert response.status == 404
