"""A content folder + its manifest -> the ``.tar.gz`` bundle Connect deploys.

``bundle_members`` checks at the filesystem that every listed file may be
sent; ``build_bundle`` streams the archive to disk in constant memory and
computes its MD5 on the way; ``build_bundle_async`` runs that in a worker
thread. The same inputs always give the same bytes (and so the same MD5),
which is what lets a rerun recognise an unchanged deploy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import anyio
import anyio.to_thread

from .errors import BundleError
from .manifest import Manifest

__all__ = ["BuiltBundle", "build_bundle", "build_bundle_async", "bundle_members"]

MANIFEST_NAME = "manifest.json"
# A fixed timestamp (1980-01-01 UTC) keeps archives reproducible without the
# epoch-zero dates that some extractors warn about.
FIXED_MTIME = 315_532_800
_DRIVE = re.compile(r"^[A-Za-z]:([\\/]|$)")
COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class BuiltBundle:
    """An archive on disk: where, its MD5 (hex) and its size in bytes."""

    path: Path
    md5_hex: str
    size: int


def _problem(content_dir: Path, listed: str, what: str, fix: str) -> BundleError:
    return BundleError(f"{content_dir}: the manifest lists {listed!r}, which {what}; {fix}")


def bundle_members(content_dir: Path, manifest: Manifest) -> list[tuple[str, Path]]:
    """``(arcname, resolved path)`` for every listed file, in manifest order.

    Reads only file metadata. ``manifest.json`` itself is skipped when listed:
    the archive always carries the manifest's own bytes first.
    """
    try:
        root = content_dir.resolve(strict=True)
    except OSError as error:
        raise BundleError(
            f"{content_dir}: the content folder cannot be opened ({error.strerror}); "
            "check the dir in the job file"
        ) from error
    members: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for listed in manifest.files:
        arcname = _checked_arcname(content_dir, listed)
        if arcname == MANIFEST_NAME or arcname in seen:
            continue
        seen.add(arcname)
        members.append((arcname, _checked_file(content_dir, root, listed, arcname)))
    return members


def _checked_arcname(content_dir: Path, listed: str) -> str:
    if not listed or "\x00" in listed:
        raise _problem(
            content_dir, listed, "is not a usable path", "run write-manifest again to fix the list"
        )
    if listed.startswith(("/", "\\")) or _DRIVE.match(listed):
        raise _problem(
            content_dir,
            listed,
            "is an absolute path",
            "list paths relative to the folder that holds manifest.json",
        )
    parts = PurePosixPath(listed).parts
    if ".." in parts or ".." in listed.split("\\"):
        raise _problem(
            content_dir,
            listed,
            "leaves the content folder",
            "list only files inside the folder that holds manifest.json",
        )
    return str(PurePosixPath(*[part for part in parts if part != "."]))


def _checked_file(content_dir: Path, root: Path, listed: str, arcname: str) -> Path:
    candidate = root / arcname
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError as error:
        raise _problem(
            content_dir,
            listed,
            "does not exist",
            "restore the file or run write-manifest again to drop it from the list",
        ) from error
    except (OSError, RuntimeError) as error:
        # RuntimeError: a symlink loop on older Pythons.
        raise _problem(
            content_dir,
            listed,
            f"cannot be read ({getattr(error, 'strerror', None) or error})",
            "fix the file's permissions or links",
        ) from error
    if not resolved.is_relative_to(root):
        raise _problem(
            content_dir,
            listed,
            f"resolves to {str(resolved)!r} outside the content folder",
            "copy the file into the folder instead of linking to it",
        )
    try:
        info = resolved.stat()
    except OSError as error:
        raise _problem(
            content_dir,
            listed,
            f"cannot be read ({error.strerror})",
            "fix the file's permissions",
        ) from error
    if not stat.S_ISREG(info.st_mode):
        raise _problem(
            content_dir,
            listed,
            "is not a regular file",
            "list files only, not folders, sockets or devices",
        )
    return resolved


class _HashingWriter:
    """Passes bytes to a file while counting them and feeding an MD5."""

    mode = "wb"

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        self._sink.write(view)
        self.md5.update(view)
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self._sink.flush()


def _entry(arcname: str, size: int, executable: bool) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(arcname)
    entry.size = size
    entry.mtime = FIXED_MTIME
    entry.mode = 0o755 if executable else 0o644
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    entry.type = tarfile.REGTYPE
    return entry


def _add_file(archive: tarfile.TarFile, content_dir: Path, arcname: str, path: Path) -> None:
    # O_NOFOLLOW: the file was checked a moment ago; refuse it if it has
    # since been swapped for a link.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise _problem(
            content_dir,
            arcname,
            f"cannot be opened ({error.strerror})",
            "check that nothing changes the folder while the bundle is built",
        ) from error
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _problem(
                content_dir, arcname, "is not a regular file", "list files only"
            )
        entry = _entry(arcname, info.st_size, bool(info.st_mode & stat.S_IXUSR))
        try:
            archive.addfile(entry, handle)
        except OSError as error:
            raise _problem(
                content_dir,
                arcname,
                "changed size while the bundle was built",
                "try again once nothing is writing to the folder",
            ) from error


def _unwritable(content_dir: Path, dest_dir: Path, error: OSError) -> BundleError:
    return BundleError(
        f"{content_dir}: the bundle cannot be written to {dest_dir} "
        f"({error.strerror or error}); free disk space or make the folder writable"
    )


def build_bundle(content_dir: Path, manifest: Manifest, dest_dir: Path) -> BuiltBundle:
    """Write the bundle into ``dest_dir`` (a new uniquely named file) and describe it.

    Raises BundleError when a listed file cannot be sent; nothing is left
    behind in ``dest_dir`` then.
    """
    members = bundle_members(content_dir, manifest)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept on success
            mode="wb", dir=dest_dir, prefix="bundle-", suffix=".tar.gz", delete=False
        )
    except OSError as error:
        raise _unwritable(content_dir, dest_dir, error) from error
    path = Path(handle.name)
    try:
        with handle:
            writer = _HashingWriter(handle)
            # filename="" and mtime=0 keep the gzip header free of anything
            # that changes between builds.
            with (
                gzip.GzipFile(
                    filename="", mode="wb", fileobj=writer, compresslevel=COMPRESS_LEVEL, mtime=0
                ) as compressed,
                tarfile.open(
                    fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
                ) as archive,
            ):
                archive.addfile(
                    _entry(MANIFEST_NAME, len(manifest.raw), False), io.BytesIO(manifest.raw)
                )
                for arcname, member in members:
                    _add_file(archive, content_dir, arcname, member)
            handle.flush()
    except BaseException as error:
        path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _unwritable(content_dir, dest_dir, error) from error
        raise
    return BuiltBundle(path=path, md5_hex=writer.md5.hexdigest(), size=writer.size)


async def build_bundle_async(
    content_dir: Path,
    manifest: Manifest,
    dest_dir: Path,
    limiter: anyio.CapacityLimiter | None = None,
) -> BuiltBundle:
    """``build_bundle`` in a worker thread, so compression never blocks the loop."""
    return await anyio.to_thread.run_sync(
        build_bundle, content_dir, manifest, dest_dir, limiter=limiter
    )
