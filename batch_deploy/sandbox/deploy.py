"""What a sandbox deploy task does with a bundle, decided before it "runs".

``plan_deploy`` reads the uploaded archive (this module's only I/O), checks it
the way Connect does, resolves the manifest's ``integration_requests`` with
the same matcher the client uses for its pre-flight, and returns the log
lines the task will print and its outcome. ``app.py`` then plays the lines
out over ``task_seconds`` and applies the outcome.

Checks, in order: the archive is a readable gzip tar within ``ArchiveLimits``
(nothing is ever extracted to disk, and a decompression bomb, a flood of
members or an oversized header is refused before it costs much); it holds
``manifest.json`` (at the top, or under a single top-level folder, which
Connect collapses); the manifest is usable; every file it lists is present.
Then, where the server honours integration requests, each request must
resolve: ambiguous takes the first candidate in the server's order, while
unmatched or invalid fails the task. A manifest without requests leaves the
content's associations as they are.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from ..errors import ManifestError
from ..integrations import Integration
from ..manifest import Manifest, parse_manifest
from ..matching import resolve

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ArchiveLimits",
    "DeployPlan",
    "plan_deploy",
    "unsatisfied_error",
]

MAX_MANIFEST_BYTES = 16 << 20
_GLOBAL_PAX_RECORDS = 64


@dataclass(frozen=True)
class ArchiveLimits:
    """What reading one uploaded archive may cost before the bundle is refused.

    ``unpacked_bytes`` counts every byte gunzipped, including member data that
    is skipped and bytes unpacked again after a step back. Extended headers
    (pax, GNU long names) longer than one tar block may hold
    ``one_header_bytes`` each and ``header_bytes`` in all: Python's tarfile
    reads each one whole and parses it in time that grows with the square of
    its size.
    """

    unpacked_bytes: int = 1 << 30
    members: int = 50_000
    header_bytes: int = 1 << 20
    one_header_bytes: int = 8 << 10


@dataclass(frozen=True)
class DeployPlan:
    """``error`` is "" for a task that succeeds. ``associations`` is the set to
    install on success, or None to leave the content's associations alone."""

    lines: tuple[str, ...]
    error: str
    app_mode: str = "unknown"
    associations: tuple[str, ...] | None = None


class _Unusable(Exception):
    """The bundle fails a check; the message is the task's error."""


def unsatisfied_error(request_text: str) -> str:
    """The task error for a request that no integration satisfies."""
    return f"integration request could not be satisfied: {request_text}"


class _Bounded:
    """The gunzipped archive as tarfile reads it, within ArchiveLimits.

    Only ``read``, ``seek`` and ``tell`` are offered: all that tarfile uses
    to list members. A header read longer than one block is an extended header.
    """

    def __init__(self, packed: gzip.GzipFile, limits: ArchiveLimits, bundle_id: int) -> None:
        self._packed = packed
        self._limits = limits
        self._bundle_id = bundle_id
        self._unpacked = 0
        self._headers = 0

    def _spend(self, size: int) -> None:
        self._unpacked += size
        if self._unpacked > self._limits.unpacked_bytes:
            raise _Unusable(
                f"bundle {self._bundle_id} unpacks to more than "
                f"{self._limits.unpacked_bytes} bytes; upload the .tar.gz built from the manifest"
            )

    def tell(self) -> int:
        return self._packed.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset < 0:
            raise _Unusable(f"bundle {self._bundle_id} is not a valid tar archive")
        here = self._packed.tell()
        # gzip steps forward by unpacking, and back by unpacking from the start.
        self._spend(offset - here if offset >= here else offset)
        return self._packed.seek(offset)

    def read(self, size: int = -1) -> bytes:
        if not 0 <= size <= tarfile.BLOCKSIZE:
            self._headers += max(size, 0)
            if size < 0 or size > self._limits.one_header_bytes:
                raise _Unusable(
                    f"bundle {self._bundle_id} holds a tar header of {size} bytes, more than "
                    f"{self._limits.one_header_bytes}; upload the .tar.gz built from the manifest"
                )
            if self._headers > self._limits.header_bytes:
                raise _Unusable(
                    f"bundle {self._bundle_id} holds more than {self._limits.header_bytes} "
                    "bytes of extended tar headers; upload the .tar.gz built from the manifest"
                )
        self._spend(size)
        return self._packed.read(size)

    def read_data(self, offset: int, size: int) -> bytes:
        """A member's bytes, which tarfile itself never reads while listing."""
        if size < 0:
            raise _Unusable(f"bundle {self._bundle_id} is not a valid tar archive")
        self.seek(offset)
        self._spend(size)
        return self._packed.read(size)


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _read_bundle(
    path: Path, bundle_id: int, limits: ArchiveLimits
) -> tuple[bytes, set[str], str]:
    """The manifest's bytes, the archive's file names, and the collapsed prefix."""
    try:
        with gzip.GzipFile(path, "rb") as packed:
            source = _Bounded(packed, limits, bundle_id)
            # Members are listed one by one and only names are kept: the archive
            # decides how many there are, so tarfile's own list is emptied as it grows.
            names: set[str] = set()
            manifests: dict[str, tuple[int, int]] = {}
            try:
                archive = tarfile.open(  # noqa: SIM115 - closed by the with below
                    fileobj=cast("IO[bytes]", source), mode="r:"
                )
            except OSError as exc:
                raise tarfile.ReadError("not a gzip file") from exc
            with archive:
                count = 0
                while (member := archive.next()) is not None:
                    archive.members.clear()  # type: ignore[attr-defined]
                    count += 1
                    if count > limits.members:
                        raise _Unusable(
                            f"bundle {bundle_id} holds more than {limits.members} members; "
                            "leave generated files and environments out of the manifest"
                        )
                    if len(archive.pax_headers) > _GLOBAL_PAX_RECORDS:
                        # tarfile copies these into every later member.
                        raise _Unusable(
                            f"bundle {bundle_id} has a global pax header of more than "
                            f"{_GLOBAL_PAX_RECORDS} records; upload the .tar.gz built from "
                            "the manifest"
                        )
                    if not member.isfile():
                        continue
                    name = _member_name(member.name)
                    names.add(name)
                    if name.rpartition("/")[2] == "manifest.json" and not member.issparse():
                        manifests[name] = (member.offset_data, member.size)
            prefix = ""
            while prefix + "manifest.json" not in manifests:
                rest = [name[len(prefix):] for name in names if name.startswith(prefix)]
                tops = {name.split("/", 1)[0] for name in rest}
                if len(tops) != 1 or next(iter(tops)) in rest:
                    raise _Unusable(
                        f"bundle {bundle_id} has no manifest.json at its top level; "
                        "put manifest.json first in the archive (rsconnect write-manifest "
                        "writes it)"
                    )
                prefix += next(iter(tops)) + "/"
            offset, size = manifests[prefix + "manifest.json"]
            if size > MAX_MANIFEST_BYTES:
                raise _Unusable(
                    f"bundle {bundle_id}: manifest.json is {size} bytes, more than "
                    f"{MAX_MANIFEST_BYTES}; a manifest lists files, it does not hold them"
                )
            raw = source.read_data(offset, size)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _Unusable(
            f"bundle {bundle_id} is not a valid gzip-compressed tar archive ({exc}); "
            "upload the .tar.gz built from the manifest"
        ) from None
    if len(raw) != size:
        raise _Unusable(
            f"bundle {bundle_id} is not a valid gzip-compressed tar archive (manifest.json "
            "is cut short); upload the .tar.gz built from the manifest"
        )
    return raw, {name[len(prefix):] for name in names if name.startswith(prefix)}, prefix


def _python_version(manifest: Manifest) -> str | None:
    try:
        document = json.loads(manifest.raw)
        version = document["python"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def _build_lines(manifest: Manifest, bundle_id: int, *, fail: bool) -> tuple[list[str], str]:
    """The build phase's log, and the injected failure's error ("" if none)."""
    mode = manifest.appmode
    lines: list[str] = []
    if mode.startswith("python-") or mode in ("jupyter-voila", "tensorflow-saved-model"):
        version = _python_version(manifest) or "3.11"
        lines.append("Building Python application...")
        lines.append(
            f"Bundle requested Python version {version}; "
            f"using /opt/python/{version}/bin/python3 which has version {version}"
        )
        step = "restoring the Python environment (pip install -r requirements.txt)"
        lines.append("Installing packages from requirements.txt...")
        done = "Packages installed."
    elif mode.startswith("quarto-"):
        lines.append("Building Quarto document...")
        step = "rendering the Quarto document"
        lines.append("Rendering with quarto render...")
        done = "Rendering complete."
    elif mode in ("static", "jupyter-static", "rmd-static"):
        lines.append("Building static content...")
        step = "preparing the static files"
        done = "Static content ready."
    else:
        lines.append(f"Building {mode} content...")
        step = f"building the {mode} content"
        done = "Build complete."
    if fail:
        lines.append(f"Error: {step} exited with status 1")
        return lines, f"Unable to deploy bundle {bundle_id}: {step} exited with status 1"
    lines.append(done)
    return lines, ""


def plan_deploy(
    path: Path,
    *,
    bundle_id: int,
    integrations: Sequence[Integration],
    honours_requests: bool,
    activate: bool,
    fail: bool = False,
    limits: ArchiveLimits = ArchiveLimits(),
) -> DeployPlan:
    """Check the bundle at ``path`` and decide the task's log and outcome.

    ``honours_requests``: the server associates from ``integration_requests``.
    ``fail``: a fault injected after the checks pass (a build that breaks).
    ``limits``: what reading the archive may cost before it is refused.
    """
    lines = [f"Extracting bundle {bundle_id}..."]

    def failed(error: str, app_mode: str = "unknown") -> DeployPlan:
        return DeployPlan((*lines, f"Error: {error}"), error, app_mode)

    try:
        raw, names, prefix = _read_bundle(path, bundle_id, limits)
        if prefix:
            lines.append(f"Collapsed the single top-level folder {prefix.rstrip('/')!r}")
        try:
            manifest = parse_manifest(raw, f"bundle {bundle_id}: manifest.json")
        except ManifestError as exc:
            raise _Unusable(str(exc)) from None
    except _Unusable as exc:
        return failed(str(exc))

    lines.append(f"Found manifest.json: app mode {manifest.appmode}, {len(manifest.files)} files")
    missing = [name for name in manifest.files if name != "manifest.json" and name not in names]
    if missing:
        shown = ", ".join(json.dumps(name) for name in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        return failed(
            f"bundle {bundle_id} lacks {len(missing)} file(s) listed in manifest.json: "
            f"{shown}{more}; rebuild the bundle from the manifest",
            manifest.appmode,
        )

    associations: tuple[str, ...] | None = None
    if manifest.requests and honours_requests:
        chosen: list[str] = []
        for request in manifest.requests:
            resolution = resolve(request, integrations)
            pick = resolution.chosen
            if resolution.status not in ("matched", "ambiguous") or pick is None:
                return failed(unsatisfied_error(request.text), manifest.appmode)
            note = (
                ""
                if resolution.status == "matched"
                else f" (first of {len(resolution.candidates)} candidates)"
            )
            lines.append(
                f"Integration request {request.index + 1} {request.text} "
                f"resolved to {pick.label}{note}"
            )
            if pick.guid not in chosen:
                chosen.append(pick.guid)
        associations = tuple(chosen)
        lines.append(
            f"Associating {len(chosen)} OAuth integration(s) with the content: "
            + ", ".join(chosen)
        )
    elif manifest.requests:
        lines.append(
            f"Ignoring {len(manifest.requests)} integration request(s): this server does not "
            "associate integrations from manifests"
        )

    build, error = _build_lines(manifest, bundle_id, fail=fail)
    lines.extend(build)
    if error:
        return DeployPlan(tuple(lines), error, manifest.appmode)
    if activate:
        lines.append(f"Launching {manifest.appmode} content...")
        lines.append(f"Activated bundle {bundle_id}.")
    else:
        lines.append(f"Bundle {bundle_id} is built as a draft; it is not active.")
    return DeployPlan(tuple(lines), "", manifest.appmode, associations)
