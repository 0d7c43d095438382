"""The sandbox's in-memory Connect: users, integrations, content, bundles,
tasks and associations, and the JSON shapes Connect answers with.

Plain Python, no web framework: the routes in ``app.py`` call these methods
and the deploy task in ``deploy.py`` reads and changes the same state. All
calls happen on the server's event loop thread, so nothing here locks.
Violations of Connect's rules raise ``StoreError`` carrying the HTTP status
and Connect's error code for the route to answer with.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..integrations import Integration, ServerView
from ..versions import (
    DRAFT_DEPLOY,
    MULTIPLE_ASSOCIATIONS,
    ConnectVersion,
    at_least,
)
from .seed import NAME_PATTERN, Seed

__all__ = [
    "APP_MODE_ORDINALS",
    "NOT_FOUND",
    "AssociationRecord",
    "BundleRecord",
    "ContentRecord",
    "Store",
    "StoreError",
    "TaskRecord",
    "UserRecord",
    "utc_now",
]

NOT_FOUND = "The requested object does not exist."

# Connect's legacy (v0) API numbers app modes; rsconnect-python knows these.
APP_MODE_ORDINALS: Mapping[str, int] = {
    "unknown": 0,
    "shiny": 1,
    "rmd-shiny": 2,
    "rmd-static": 3,
    "static": 4,
    "api": 5,
    "tensorflow-saved-model": 6,
    "jupyter-static": 7,
    "python-api": 8,
    "python-dash": 9,
    "python-streamlit": 10,
    "python-bokeh": 11,
    "python-fastapi": 12,
    "quarto-shiny": 13,
    "quarto-static": 14,
    "python-shiny": 15,
    "jupyter-voila": 16,
    "python-gradio": 17,
    "python-panel": 18,
    "nodejs": 20,
}

# Content fields a PATCH may change, with the JSON types accepted for each.
_SETTABLE: Mapping[str, tuple[type, ...]] = {
    "name": (str,),
    "title": (str, type(None)),
    "description": (str,),
    "access_type": (str,),
    "connection_timeout": (int, type(None)),
    "read_timeout": (int, type(None)),
    "init_timeout": (int, type(None)),
    "idle_timeout": (int, type(None)),
    "max_processes": (int, type(None)),
    "min_processes": (int, type(None)),
    "max_conns_per_process": (int, type(None)),
    "load_factor": (int, float, type(None)),
    "memory_request": (int, float, type(None)),
    "memory_limit": (int, type(None)),
    "cpu_request": (int, float, type(None)),
    "cpu_limit": (int, float, type(None)),
    "amd_gpu_limit": (int, type(None)),
    "nvidia_gpu_limit": (int, type(None)),
    "run_as": (str, type(None)),
    "run_as_current_user": (bool,),
    "default_image_name": (str, type(None)),
    "default_r_environment_management": (bool, type(None)),
    "default_py_environment_management": (bool, type(None)),
    "service_account_name": (str, type(None)),
}
_ACCESS_TYPES = ("all", "logged_in", "acl")


def _bundle_number(text: str) -> int:
    """A bundle id from a request; -1 (no bundle) for anything but a short run of 0-9.

    ``str.isdigit`` alone lets through digits ``int`` refuses ("²") and runs
    too long to convert, which would turn a lookup into a server error.
    """
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1


def utc_now() -> str:
    """Connect's timestamp format: RFC 3339 in UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StoreError(Exception):
    """A request broke one of Connect's rules; ``status`` and ``code`` as Connect sends."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass
class UserRecord:
    guid: str
    username: str
    role: str
    created_time: str

    def to_api(self) -> dict[str, Any]:
        return {
            "email": f"{self.username}@example.com",
            "username": self.username,
            "first_name": self.username.capitalize(),
            "last_name": "",
            "user_role": self.role,
            "created_time": self.created_time,
            "updated_time": self.created_time,
            "active_time": self.created_time,
            "confirmed": True,
            "locked": False,
            "guid": self.guid,
        }


@dataclass
class BundleRecord:
    id: int
    content_guid: str
    created_time: str
    path: Path
    size: int
    md5: str
    sha1: str
    metadata: dict[str, Any] = field(default_factory=dict)
    built: bool = False  # a deploy task checked and built it


@dataclass
class TaskRecord:
    id: str
    content_guid: str
    bundle_id: int
    activate: bool
    node: str
    output: list[str] = field(default_factory=list)
    finished: bool = False
    code: int = 0
    error: str = ""

    def to_api(self, first: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "output": self.output[first:],
            "finished": self.finished,
            "code": self.code,
            "error": self.error,
            "last": len(self.output),
            "result": None,
        }


@dataclass(frozen=True)
class AssociationRecord:
    content_guid: str
    integration_guid: str
    created_time: str


@dataclass
class ContentRecord:
    guid: str
    id: int
    name: str
    title: str | None
    app_mode: str
    owner_guid: str
    created_time: str
    last_deployed_time: str | None = None
    bundle_id: int | None = None  # the active bundle
    settings: dict[str, Any] = field(default_factory=dict)


class Store:
    """Everything one sandbox server knows. Built from a ``Seed``."""

    def __init__(self, seed: Seed, bundle_dir: Path) -> None:
        self.seed = seed
        self.version: ConnectVersion | None = seed.parsed_version
        self.bundle_dir = bundle_dir
        self.base_url = "http://localhost"  # set by the server once it listens
        self.started_time = utc_now()
        self.user = UserRecord(
            guid=seed.user.guid,
            username=seed.user.username,
            role=seed.user.role,
            created_time=self.started_time,
        )
        self.integrations: tuple[Integration, ...] = seed.integrations
        self.capabilities = ServerView(
            seed.hostname,
            self.version,
            seed.oauth_integrations_enabled,
            seed.oauth_licensed,
            seed.integrations,
        )
        self._integration_objects: dict[str, Mapping[str, Any]] = {
            integration.guid: obj
            for integration, obj in zip(seed.integrations, seed.integration_objects, strict=True)
        }
        self.content: dict[str, ContentRecord] = {}
        self.bundles: dict[int, BundleRecord] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self.associations: dict[str, list[AssociationRecord]] = {}
        self._next_content_id = 1
        self._next_bundle_id = 1
        for item in seed.content:
            record = self._add_content(
                name=item.name,
                title=item.title,
                owner_guid=item.owner_guid or self.user.guid,
                guid=item.guid,
            )
            record.app_mode = item.app_mode
            self.associations[record.guid] = [
                AssociationRecord(record.guid, guid, self.started_time)
                for guid in item.associations
            ]

    # Server facts and feature gates ------------------------------------------------

    # The gates are the client's own (ServerView), so the two cannot disagree.

    @property
    def has_integrations_api(self) -> bool:
        return self.capabilities.has_integrations_api

    @property
    def allows_multiple_associations(self) -> bool:
        return self.capabilities.allows_multiple_associations

    @property
    def allows_draft_deploy(self) -> bool:
        return at_least(self.version, DRAFT_DEPLOY)

    @property
    def honours_requests(self) -> bool:
        """Whether a deploy associates integrations from ``integration_requests``."""
        return self.capabilities.honours_requests

    def server_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "hostname": self.seed.hostname,
            "version": self.seed.version,
            "oauth_integrations_enabled": self.seed.oauth_integrations_enabled,
            "license": dict(self.seed.license),
            "authentication": {"handles_credentials": True, "name": "password"},
            "python": {"enabled": True},
            "quarto": {"enabled": True},
            "git_enabled": False,
            "runtimes": ["python", "quarto"],
        }
        return settings

    # Integrations and associations ---------------------------------------------

    def integration(self, guid: str) -> Integration:
        for integration in self.integrations:
            if integration.guid == guid:
                return integration
        raise StoreError(404, 4, NOT_FOUND)

    def integration_to_api(self, guid: str) -> dict[str, Any]:
        obj = dict(self._integration_objects[guid])
        # Connect always sends these; a hand-written seed may leave them out.
        obj.setdefault("created_time", self.started_time)
        obj.setdefault("updated_time", self.started_time)
        obj.setdefault("config", {})
        obj.setdefault("permissions", [])
        obj.setdefault("environment_variables", [])
        return obj

    def association_to_api(self, record: AssociationRecord) -> dict[str, Any]:
        integration = self.integration(record.integration_guid)
        out: dict[str, Any] = {}
        # Older servers name the content "app_guid"; newer ones send both names.
        out["app_guid"] = record.content_guid
        if self.allows_multiple_associations:
            out["content_guid"] = record.content_guid
        out.update(
            oauth_integration_guid=integration.guid,
            oauth_integration_name=integration.name,
            oauth_integration_description=integration.description,
            oauth_integration_template=integration.template,
            oauth_integration_auth_type=integration.auth_type,
            created_time=record.created_time,
        )
        return out

    def content_associations(self, guid: str) -> list[AssociationRecord]:
        self.get_content(guid)
        return list(self.associations.get(guid, []))

    def integration_associations(self, integration_guid: str) -> list[AssociationRecord]:
        self.integration(integration_guid)
        return [
            record
            for records in self.associations.values()
            for record in records
            if record.integration_guid == integration_guid
        ]

    def set_associations(self, content_guid: str, integration_guids: Sequence[str]) -> None:
        """Replace the whole set; unknown guids and (before 2025.07.0) more than one
        integration are refused, as Connect does."""
        self.get_content(content_guid)
        wanted: list[str] = []
        for guid in integration_guids:
            if guid not in self._integration_objects:
                raise StoreError(
                    400,
                    3,
                    f"There is no OAuth integration with guid {guid!r}; "
                    "list the integrations with GET /__api__/v1/oauth/integrations.",
                )
            if guid not in wanted:
                wanted.append(guid)
        if len(wanted) > 1 and not self.allows_multiple_associations:
            raise StoreError(
                400,
                25,
                f"This server ({self.seed.version}) associates at most one OAuth integration "
                f"with a content item; Connect {MULTIPLE_ASSOCIATIONS} allows several. "
                "Send one element.",
            )
        previous = {r.integration_guid: r for r in self.associations.get(content_guid, [])}
        now = utc_now()
        self.associations[content_guid] = [
            previous.get(guid) or AssociationRecord(content_guid, guid, now) for guid in wanted
        ]

    # Content ---------------------------------------------------------------------

    def _add_content(
        self, *, name: str, title: str | None, owner_guid: str, guid: str | None = None
    ) -> ContentRecord:
        record = ContentRecord(
            guid=guid or str(uuid.uuid4()),
            id=self._next_content_id,
            name=name,
            title=title,
            app_mode="unknown",
            owner_guid=owner_guid,
            created_time=utc_now(),
        )
        self._next_content_id += 1
        self.content[record.guid] = record
        return record

    def _check_name(self, name: Any, owner_guid: str, exclude: str | None = None) -> str:
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            shown = repr(name) if isinstance(name, str) else "missing"
            raise StoreError(
                400,
                5,
                f"The content name {shown} is not valid: a name must be between 3 and 64 "
                "alphanumeric characters, dashes, and underscores.",
            )
        for record in self.content.values():
            if record.name == name and record.owner_guid == owner_guid and record.guid != exclude:
                raise StoreError(
                    409,
                    26,
                    f"An object with that name already exists: content {name!r} is "
                    f"{record.guid}; redeploy to that guid or choose another name.",
                )
        return name

    def create_content(self, body: Mapping[str, Any]) -> ContentRecord:
        if self.user.role == "viewer":
            raise StoreError(
                403,
                22,
                "You don't have permission to perform this operation: viewers cannot "
                "publish content; use a publisher's or an administrator's API key.",
            )
        name = self._check_name(body.get("name"), self.user.guid)
        title = body.get("title")
        if title is not None and not isinstance(title, str):
            raise StoreError(400, 25, "The parameter is invalid: title must be a string.")
        record = self._add_content(name=name, title=title, owner_guid=self.user.guid)
        try:
            self._apply_settings(record, body, creating=True)
        except StoreError:
            del self.content[record.guid]
            raise
        return record

    def _apply_settings(
        self, record: ContentRecord, body: Mapping[str, Any], *, creating: bool = False
    ) -> None:
        for key, value in body.items():
            if key in ("name", "title") and creating:
                continue
            allowed = _SETTABLE.get(key)
            if allowed is None:
                continue  # Connect ignores fields it does not let a client set
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise StoreError(400, 25, f"The parameter is invalid: {key} has the wrong type.")
            if key == "access_type" and value not in _ACCESS_TYPES:
                raise StoreError(400, 117, f"Unknown access type {value!r}.")
            if key == "name":
                record.name = self._check_name(value, record.owner_guid, exclude=record.guid)
            elif key == "title":
                record.title = value if isinstance(value, str) else None
            else:
                record.settings[key] = value

    def update_content(self, guid: str, body: Mapping[str, Any]) -> ContentRecord:
        record = self.get_content(guid)
        self.require_change(record)
        self._apply_settings(record, body)
        return record

    def delete_content(self, guid: str) -> None:
        record = self.get_content(guid)
        self.require_change(record, removing=True)
        del self.content[guid]
        self.associations.pop(guid, None)
        for bundle_id in [b.id for b in self.bundles.values() if b.content_guid == guid]:
            bundle = self.bundles.pop(bundle_id)
            bundle.path.unlink(missing_ok=True)

    def get_content(self, guid: str) -> ContentRecord:
        record = self.content.get(guid)
        if record is None:
            raise StoreError(404, 4, NOT_FOUND)
        return record

    def content_by_id(self, ident: str) -> ContentRecord:
        """The legacy API names content by its numeric id or its guid."""
        for record in self.content.values():
            if str(record.id) == ident or record.guid == ident:
                return record
        raise StoreError(404, 4, NOT_FOUND)

    def find_content(self, filters: Mapping[str, str]) -> list[ContentRecord]:
        found = list(self.content.values())
        if "name" in filters:
            found = [r for r in found if r.name == filters["name"]]
        if "owner_guid" in filters:
            found = [r for r in found if r.owner_guid == filters["owner_guid"]]
        return found

    def require_change(self, record: ContentRecord, *, removing: bool = False) -> None:
        """Only the owner (or an administrator) changes content; viewers never do."""
        if self.user.role == "administrator":
            return
        if self.user.role == "viewer" or record.owner_guid != self.user.guid:
            code, verb = (20, "remove") if removing else (21, "change")
            raise StoreError(
                403,
                code,
                f"You don't have permission to {verb} this item: content {record.guid} "
                f"belongs to another user and this key's user is a {self.user.role}.",
            )

    def content_to_api(self, record: ContentRecord, include: Iterable[str] = ()) -> dict[str, Any]:
        base = self.base_url
        settings = record.settings
        out: dict[str, Any] = {
            "guid": record.guid,
            "name": record.name,
            "title": record.title,
            "description": settings.get("description", ""),
            "access_type": settings.get("access_type", "acl"),
            "locked": False,
            "locked_message": "",
        }
        for key in _SETTABLE:
            if key not in out and key not in ("name", "title"):
                out[key] = settings.get(key)
        out["run_as_current_user"] = settings.get("run_as_current_user", False)
        bundle = self.bundles.get(record.bundle_id) if record.bundle_id is not None else None
        out.update(
            created_time=record.created_time,
            last_deployed_time=record.last_deployed_time or record.created_time,
            bundle_id=str(record.bundle_id) if record.bundle_id is not None else None,
            app_mode=record.app_mode,
            content_category="",
            parameterized=False,
            cluster_name="Local" if bundle else None,
            image_name=None,
            r_version=None,
            py_version=None,
            quarto_version=None,
            r_environment_management=None,
            py_environment_management=None,
            owner_guid=record.owner_guid,
            content_url=f"{base}/content/{record.guid}/",
            dashboard_url=f"{base}/connect/#/apps/{record.guid}",
            app_role="owner" if record.owner_guid == self.user.guid else "viewer",
            id=str(record.id),
        )
        wanted = set(include)
        if "owner" in wanted:
            out["owner"] = (
                {
                    "guid": self.user.guid,
                    "username": self.user.username,
                    "first_name": self.user.username.capitalize(),
                    "last_name": "",
                }
                if record.owner_guid == self.user.guid
                else {"guid": record.owner_guid}
            )
        if "tags" in wanted:
            out["tags"] = []
        if "vanity_url" in wanted:
            out["vanity_url"] = None
        return out

    def content_to_legacy_api(self, record: ContentRecord) -> dict[str, Any]:
        """The v0 ``/__api__/applications/{id}`` shape (numeric ids and app mode)."""
        current = self.content_to_api(record)
        return {
            "id": record.id,
            "guid": record.guid,
            "name": record.name,
            "title": record.title,
            "url": current["content_url"],
            "vanity_url": False,
            "access_type": current["access_type"],
            "bundle_id": record.bundle_id,
            "app_mode": APP_MODE_ORDINALS.get(record.app_mode, 0),
            "content_category": "",
            "has_parameters": False,
            "created_time": record.created_time,
            "last_deployed_time": current["last_deployed_time"],
            "build_status": 2 if record.bundle_id is not None else 0,
            "description": current["description"],
            "owner_guid": record.owner_guid,
            "owner_username": self.user.username if record.owner_guid == self.user.guid else "",
            "app_role": current["app_role"],
            "is_scheduled": False,
        }

    # Bundles ---------------------------------------------------------------------

    def new_bundle_path(self) -> Path:
        return self.bundle_dir / f"upload-{secrets.token_hex(8)}.tar.gz"

    def add_bundle(
        self,
        content_guid: str,
        path: Path,
        *,
        size: int,
        md5: str,
        sha1: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> BundleRecord:
        self.get_content(content_guid)
        bundle = BundleRecord(
            id=self._next_bundle_id,
            content_guid=content_guid,
            created_time=utc_now(),
            path=path,
            size=size,
            md5=md5,
            sha1=sha1,
            metadata=dict(metadata or {}),
        )
        self._next_bundle_id += 1
        self.bundles[bundle.id] = bundle
        return bundle

    def get_bundle(self, content_guid: str, bundle_id: str) -> BundleRecord:
        self.get_content(content_guid)
        bundle = self.bundles.get(_bundle_number(bundle_id))
        if bundle is None or bundle.content_guid != content_guid:
            raise StoreError(404, 4, NOT_FOUND)
        return bundle

    def content_bundles(self, content_guid: str) -> list[BundleRecord]:
        self.get_content(content_guid)
        found = [b for b in self.bundles.values() if b.content_guid == content_guid]
        return sorted(found, key=lambda b: b.id, reverse=True)

    def delete_bundle(self, content_guid: str, bundle_id: str) -> None:
        bundle = self.get_bundle(content_guid, bundle_id)
        record = self.get_content(content_guid)
        self.require_change(record, removing=True)
        if record.bundle_id == bundle.id:
            raise StoreError(
                400,
                75,
                "You may not delete the active bundle for an application; "
                "deploy another bundle first.",
            )
        del self.bundles[bundle.id]
        bundle.path.unlink(missing_ok=True)

    def bundle_to_api(self, bundle: BundleRecord) -> dict[str, Any]:
        record = self.content.get(bundle.content_guid)
        metadata: dict[str, Any] = {
            "source": None,
            "source_repo": None,
            "source_branch": None,
            "source_commit": None,
        }
        metadata.update(bundle.metadata)
        metadata["archive_md5"] = bundle.md5
        metadata["archive_sha1"] = bundle.sha1
        return {
            "id": str(bundle.id),
            "content_guid": bundle.content_guid,
            "created_time": bundle.created_time,
            "cluster_name": "Local" if bundle.built else None,
            "image_name": None,
            "r_version": None,
            "r_environment_management": None,
            "py_version": None,
            "py_environment_management": None,
            "quarto_version": None,
            "active": record is not None and record.bundle_id == bundle.id,
            "size": bundle.size,
            "metadata": metadata,
        }

    def bundle_to_deploy(self, content_guid: str, bundle_id: Any) -> BundleRecord:
        """The bundle a deploy request names; ``None`` means the newest one."""
        record = self.get_content(content_guid)
        if bundle_id is None:
            bundles = self.content_bundles(content_guid)
            if not bundles:
                raise StoreError(
                    404,
                    28,
                    f"No application bundle to deploy: content {record.guid} has "
                    "none; upload one with POST .../bundles first.",
                )
            return bundles[0]
        text = str(bundle_id)
        bundle = self.bundles.get(_bundle_number(text))
        if bundle is None:
            raise StoreError(404, 4, f"{NOT_FOUND} (bundle {text!r})")
        if bundle.content_guid != content_guid:
            raise StoreError(
                400,
                82,
                "The bundle for deployment must belong to the target application: "
                f"bundle {text} belongs to content {bundle.content_guid}.",
            )
        return bundle

    # Tasks -----------------------------------------------------------------------

    def new_task(
        self, content_guid: str, bundle_id: int, *, activate: bool, node: str
    ) -> TaskRecord:
        task = TaskRecord(
            id=secrets.token_urlsafe(12),
            content_guid=content_guid,
            bundle_id=bundle_id,
            activate=activate,
            node=node,
        )
        self.tasks[task.id] = task
        return task

    def get_task(self, task_id: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        if task is None:
            raise StoreError(404, 4, NOT_FOUND)
        return task

    def activate(self, content_guid: str, bundle_id: int, app_mode: str) -> None:
        record = self.content.get(content_guid)
        if record is None:  # deleted while its task ran
            return
        record.bundle_id = bundle_id
        record.app_mode = app_mode
        record.last_deployed_time = utc_now()
