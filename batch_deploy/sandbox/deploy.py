"""What a sandbox deploy task does with a bundle, decided before it "runs".

``plan_deploy`` reads the uploaded archive (this module's only I/O), checks it
the way Connect does, resolves the manifest's ``integration_requests`` with
the same matcher the client uses for its pre-flight, and returns the log
lines the task will print and its outcome. ``app.py`` then plays the lines
out over ``task_seconds`` and applies the outcome.

Checks, in order: the archive is a readable gzip tar; it holds
``manifest.json`` (at the top, or under a single top-level folder, which
Connect collapses); the manifest is usable; every file it lists is present.
Then, where the server honours integration requests, each request must
resolve: ambiguous takes the first candidate in the server's order, while
unmatched or invalid fails the task. A manifest without requests leaves the
content's associations as they are.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ManifestError
from ..integrations import Integration
from ..manifest import Manifest, parse_manifest
from ..matching import resolve

__all__ = ["MAX_MANIFEST_BYTES", "DeployPlan", "plan_deploy", "unsatisfied_error"]

MAX_MANIFEST_BYTES = 16 << 20


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


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _read_bundle(path: Path, bundle_id: int) -> tuple[bytes, set[str], str]:
    """The manifest's bytes, the archive's file names, and the collapsed prefix."""
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            members = {
                _member_name(member.name): member for member in archive if member.isfile()
            }
            prefix = ""
            while prefix + "manifest.json" not in members:
                rest = [name[len(prefix):] for name in members if name.startswith(prefix)]
                tops = {name.split("/", 1)[0] for name in rest}
                if len(tops) != 1 or next(iter(tops)) in rest:
                    raise _Unusable(
                        f"bundle {bundle_id} has no manifest.json at its top level; "
                        "put manifest.json first in the archive (rsconnect write-manifest "
                        "writes it)"
                    )
                prefix += next(iter(tops)) + "/"
            member = members[prefix + "manifest.json"]
            if member.size > MAX_MANIFEST_BYTES:
                raise _Unusable(
                    f"bundle {bundle_id}: manifest.json is {member.size} bytes, more than "
                    f"{MAX_MANIFEST_BYTES}; a manifest lists files, it does not hold them"
                )
            handle = archive.extractfile(member)
            if handle is None:  # pragma: no cover - isfile() members always extract
                raise _Unusable(f"bundle {bundle_id}: manifest.json cannot be read")
            raw = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _Unusable(
            f"bundle {bundle_id} is not a valid gzip-compressed tar archive ({exc}); "
            "upload the .tar.gz built from the manifest"
        ) from None
    names = {name[len(prefix):] for name in members if name.startswith(prefix)}
    return raw, names, prefix


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
) -> DeployPlan:
    """Check the bundle at ``path`` and decide the task's log and outcome.

    ``honours_requests``: the server associates from ``integration_requests``.
    ``fail``: a fault injected after the checks pass (a build that breaks).
    """
    lines = [f"Extracting bundle {bundle_id}..."]

    def failed(error: str, app_mode: str = "unknown") -> DeployPlan:
        return DeployPlan((*lines, f"Error: {error}"), error, app_mode)

    try:
        raw, names, prefix = _read_bundle(path, bundle_id)
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
