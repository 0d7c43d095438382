"""The sandbox's HTTP face: Connect's routes on aiohttp.web.

Middleware, outermost first: JSON errors (every ``/__api__`` failure is
``{"code", "error", "payload"}``), faults (latency on everything; drops, 503s
and 429s on ``/__api__``), then the API key check (everything under
``/__api__`` except ``server_settings``). Deploy tasks run as asyncio tasks
on the server's loop; task polls long-poll on one condition variable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from .deploy import DeployPlan, plan_deploy
from .faults import NODES, Faults
from .options import SandboxOptions
from .store import BundleRecord, Store, StoreError, TaskRecord

__all__ = ["NODE_COOKIE", "STATE", "SandboxState", "make_app"]

log = logging.getLogger(__name__)

NODE_COOKIE = "connect_node"
API = "/__api__"
MAX_WAIT = 60.0
CHUNK = 1 << 16
MAX_METADATA = 1 << 20  # bytes of the multipart "metadata" field

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SandboxState:
    """Per-server state shared by the routes; the key is never shown."""

    store: Store
    faults: Faults
    options: SandboxOptions
    api_key: str = field(repr=False)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    running: set[asyncio.Task[None]] = field(default_factory=set)
    closing: bool = False

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


STATE = web.AppKey("sandbox_state", SandboxState)


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"code": code, "error": message, "payload": None}, status=status, headers=headers
    )


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE]


# Middleware ----------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = request.path.startswith(API + "/") or request.path == API
    try:
        return await handler(request)
    except StoreError as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if not api or exc.status < 400:
            raise
        if exc.status in (404, 405):
            return _error(
                404, 2, f"The requested method or endpoint is not supported: "
                f"{request.method} {request.path}."
            )
        return _error(exc.status, 1, exc.reason)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        if not api:
            raise
        log.exception("sandbox: %s %s failed", request.method, request.path)
        return _error(500, 1, "An internal failure occurred.")


@web.middleware
async def _faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = _state(request)
    latency = state.faults.latency
    if latency:
        await asyncio.sleep(latency)
    if request.path.startswith(API + "/"):
        decision = state.faults.decide()
        if decision is not None:
            if decision.kind == "drop":
                if request.transport is not None:
                    request.transport.close()
                # Nothing can be written now; aiohttp treats the response as a
                # client that went away.
                return web.Response(status=503)
            if decision.kind == "error":
                return _error(
                    503, 0, "Service Unavailable: the sandbox injected this error "
                    "(sandbox_options.error_rate); retry the request."
                )
            after = f"{decision.retry_after:g}"
            return _error(
                429,
                0,
                f"Too Many Requests: the sandbox accepts {state.options.rate_limit:g} "
                f"requests per second; retry after {after} seconds.",
                headers={"Retry-After": after},
            )
    return await handler(request)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith(API + "/") or path == f"{API}/server_settings":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme != "Key" or not key.strip():
        return _error(
            401,
            30,
            "The requested operation requires authentication: send the header "
            "\"Authorization: Key <API key>\".",
        )
    expected = _state(request).api_key.encode("utf-8")
    if not hmac.compare_digest(key.strip().encode("utf-8"), expected):
        return _error(
            401,
            30,
            "We couldn't log you in with the provided credentials: the API key is not "
            "valid for this server.",
        )
    return await handler(request)


# Helpers -------------------------------------------------------------------------


async def _json_body(request: web.Request, *, empty: Any = None) -> Any:
    raw = await request.read()
    if not raw.strip():
        if empty is not None:
            return empty
        raise StoreError(400, 121, "The request JSON is invalid: the body is empty.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(400, 121, f"The request JSON is invalid: {exc}.") from None
    except RecursionError:
        raise StoreError(
            400, 121, "The request JSON is invalid: it is nested too deeply."
        ) from None


def _integrations_gate(store: Store, request: web.Request) -> None:
    if not store.has_integrations_api:
        raise StoreError(
            404,
            2,
            f"The requested method or endpoint is not supported: {request.method} "
            f"{request.path} (OAuth integrations arrived in Connect 2024.08.0; this "
            f"server is {store.seed.version}).",
        )


# Server, user, integrations ----------------------------------------------------


async def server_settings(request: web.Request) -> web.StreamResponse:
    return web.json_response(_state(request).store.server_settings())


async def python_settings(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {
            "installations": [
                {"version": "3.11.7", "cluster_name": "Local", "image_name": "Local"},
                {"version": "3.12.4", "cluster_name": "Local", "image_name": "Local"},
            ],
            "api_enabled": True,
        }
    )


async def current_user(request: web.Request) -> web.StreamResponse:
    return web.json_response(_state(request).store.user.to_api())


async def user_by_guid(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    if request.match_info["guid"] != store.user.guid:
        raise StoreError(404, 9, "The requested user could not be found.")
    return web.json_response(store.user.to_api())


async def list_integrations(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    _integrations_gate(store, request)
    return web.json_response([store.integration_to_api(i.guid) for i in store.integrations])


async def get_integration(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    _integrations_gate(store, request)
    guid = store.integration(request.match_info["guid"]).guid
    return web.json_response(store.integration_to_api(guid))


async def integration_associations(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    _integrations_gate(store, request)
    records = store.integration_associations(request.match_info["guid"])
    return web.json_response([store.association_to_api(r) for r in records])


# Content -----------------------------------------------------------------------


def _include(request: web.Request) -> list[str]:
    return [part.strip() for part in request.query.get("include", "").split(",") if part.strip()]


async def list_content(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    filters = {key: request.query[key] for key in ("name", "owner_guid") if key in request.query}
    include = _include(request)
    return web.json_response(
        [store.content_to_api(record, include) for record in store.find_content(filters)]
    )


async def create_content(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise StoreError(
            400, 121, 'The request JSON is invalid: send an object like {"name": ...}.'
        )
    record = store.create_content(body)
    return web.json_response(store.content_to_api(record))


async def get_content(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    record = store.get_content(request.match_info["guid"])
    return web.json_response(store.content_to_api(record, _include(request)))


async def patch_content(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise StoreError(400, 121, "The request JSON is invalid: send an object of fields.")
    record = store.update_content(request.match_info["guid"], body)
    return web.json_response(store.content_to_api(record))


async def delete_content(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    store.delete_content(request.match_info["guid"])
    return web.Response(status=204)


async def legacy_application(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    record = store.content_by_id(request.match_info["ident"])
    return web.json_response(store.content_to_legacy_api(record))


async def get_environment(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    record = store.get_content(request.match_info["guid"])
    names = record.settings.get("environment", [])
    return web.json_response(sorted(names))


async def set_environment(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    record = store.get_content(request.match_info["guid"])
    store.require_change(record)
    body = await _json_body(request)
    if not isinstance(body, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in body
    ):
        raise StoreError(
            400, 121, "The request JSON is invalid: send [{\"name\": ..., \"value\": ...}]."
        )
    names = set() if request.method == "PUT" else set(record.settings.get("environment", []))
    for item in body:
        if item.get("value") is None:
            names.discard(item["name"])
        else:
            names.add(item["name"])
    record.settings["environment"] = sorted(names)
    return web.json_response(sorted(names))


async def content_associations(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    _integrations_gate(store, request)
    records = store.content_associations(request.match_info["guid"])
    return web.json_response([store.association_to_api(r) for r in records])


async def put_associations(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    _integrations_gate(store, request)
    record = store.get_content(request.match_info["guid"])
    store.require_change(record)
    body = await _json_body(request)
    shape = 'send [{"oauth_integration_guid": "..."}] (or [] to clear)'
    if not isinstance(body, list):
        raise StoreError(400, 121, f"The request JSON is invalid: {shape}.")
    guids: list[str] = []
    for item in body:
        guid = item.get("oauth_integration_guid") if isinstance(item, dict) else None
        if not isinstance(guid, str) or not guid:
            raise StoreError(400, 121, f"The request JSON is invalid: {shape}.")
        guids.append(guid)
    store.set_associations(record.guid, guids)
    return web.Response(status=204)


# Bundles -----------------------------------------------------------------------


class _Sink:
    """Writes an upload to a file while hashing it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.md5.update(chunk)
        self.sha1.update(chunk)
        self.size += len(chunk)


async def _chunks_of_body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def _chunks_of_part(part: BodyPartReader) -> AsyncIterator[bytes]:
    while True:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return
        yield chunk


async def _receive_archive(request: web.Request, sink: _Sink) -> dict[str, Any]:
    """Stream the archive into ``sink``; returns metadata sent alongside it."""
    if not request.content_type.startswith("multipart/"):
        async for chunk in _chunks_of_body(request):
            sink.write(chunk)
        return {}
    metadata: dict[str, Any] = {}
    found = False
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "archive" and not found:
            found = True
            async for chunk in _chunks_of_part(part):
                sink.write(chunk)
        elif part.name == "metadata":
            raw = bytearray()
            async for chunk in _chunks_of_part(part):
                raw.extend(chunk)
                if len(raw) > MAX_METADATA:
                    break
            try:
                value = None if len(raw) > MAX_METADATA else json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise StoreError(
                    400, 19, "The requested metadata is invalid: the \"metadata\" field must "
                    "be a JSON object of at most 1 MiB."
                )
            metadata = {str(k): v for k, v in value.items()}
        else:
            await part.release()
    if not found:
        raise StoreError(
            400, 12, "A required parameter is missing: the multipart body has no \"archive\" "
            "field; send the .tar.gz as the field named archive."
        )
    return metadata


async def upload_bundle(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    record = store.get_content(request.match_info["guid"])
    store.require_change(record)
    path = store.new_bundle_path()
    sink = _Sink(path)
    keep = False
    try:
        try:
            metadata = await _receive_archive(request, sink)
        finally:
            sink.handle.close()
        if sink.size == 0:
            raise StoreError(
                400, 125, "Content-Length cannot be 0: the upload held no archive bytes."
            )
        claimed = request.headers.get("X-Content-Checksum")
        actual = base64.b64encode(sink.md5.digest()).decode("ascii")
        if claimed is not None and claimed.strip() != actual:
            raise StoreError(
                400,
                104,
                "The content checksum header and body MD5 sum are not equal: "
                f"X-Content-Checksum is {claimed.strip()!r} but the archive's is {actual!r}; "
                "send base64(MD5(archive)) or leave the header out.",
            )
        bundle = store.add_bundle(
            record.guid,
            path,
            size=sink.size,
            md5=sink.md5.hexdigest(),
            sha1=sink.sha1.hexdigest(),
            metadata=metadata,
        )
        keep = True
    finally:
        if not keep:
            path.unlink(missing_ok=True)
    return web.json_response(store.bundle_to_api(bundle))


async def list_bundles(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    bundles = store.content_bundles(request.match_info["guid"])
    return web.json_response([store.bundle_to_api(b) for b in bundles])


async def get_bundle(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    bundle = store.get_bundle(request.match_info["guid"], request.match_info["bundle_id"])
    return web.json_response(store.bundle_to_api(bundle))


async def delete_bundle(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    store.delete_bundle(request.match_info["guid"], request.match_info["bundle_id"])
    return web.Response(status=204)


async def download_bundle(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    bundle = store.get_bundle(request.match_info["guid"], request.match_info["bundle_id"])
    return web.FileResponse(
        bundle.path,
        headers={
            "Content-Type": "application/gzip",
            "Content-Disposition": f'attachment; filename="bundle-{bundle.id}.tar.gz"',
        },
    )


# Deploy and tasks ----------------------------------------------------------------


async def deploy(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    store = state.store
    record = store.get_content(request.match_info["guid"])
    store.require_change(record)
    body = await _json_body(request, empty={})
    if not isinstance(body, dict):
        raise StoreError(400, 121, 'The request JSON is invalid: send {"bundle_id": "..."}.')
    activate = body.get("activate", True)
    if "activate" in body and not store.allows_draft_deploy:
        raise StoreError(
            400,
            25,
            f"The parameter is invalid: \"activate\" is unknown to Connect {store.seed.version}"
            "; deploying as a draft needs 2025.06.0. Leave the field out.",
        )
    if not isinstance(activate, bool):
        raise StoreError(400, 25, "The parameter is invalid: activate must be true or false.")
    bundle = store.bundle_to_deploy(record.guid, body.get("bundle_id"))

    sticky = state.options.sticky_cookies
    cookie = request.cookies.get(NODE_COOKIE)
    if not sticky:
        node = NODES[0]
    elif cookie in NODES:
        node = cookie  # the balancer routes a session back to its node
    else:
        node = state.faults.pick_node()
    task = store.new_task(record.guid, bundle.id, activate=activate, node=node)
    runner = asyncio.create_task(_run_task(state, task, bundle, state.faults.task_fails()))
    state.running.add(runner)
    runner.add_done_callback(state.running.discard)

    response = web.json_response({"task_id": task.id}, status=202)
    if sticky and cookie != node:
        response.set_cookie(NODE_COOKIE, node, path="/", httponly=True)
    return response


async def _run_task(
    state: SandboxState, task: TaskRecord, bundle: BundleRecord, fail: bool
) -> None:
    store = state.store
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        plan: DeployPlan = await asyncio.to_thread(
            plan_deploy,
            bundle.path,
            bundle_id=bundle.id,
            integrations=store.integrations,
            honours_requests=store.honours_requests,
            activate=task.activate,
            fail=fail,
        )
    except Exception as exc:  # a bug, or the bundle vanished with its content
        log.exception("sandbox: deploy task %s could not check bundle %s", task.id, bundle.id)
        plan = DeployPlan((), f"Unable to deploy bundle {bundle.id}: {exc}")
    pause = max(0.0, state.options.task_seconds) / max(1, len(plan.lines))
    for index, line in enumerate(plan.lines, start=1):
        # Each line is due at a fixed time from the start, so the checks and the
        # sleeps' own overruns do not stretch the task beyond task_seconds.
        due = started + pause * index
        if pause and due > loop.time():
            await asyncio.sleep(due - loop.time())
        task.output.append(line)
        await state.notify()
    if plan.error:
        task.code = 1
        task.error = plan.error
    else:
        bundle.built = True
        if task.activate:
            store.activate(task.content_guid, bundle.id, plan.app_mode)
            if plan.associations is not None and task.content_guid in store.content:
                store.set_associations(task.content_guid, plan.associations)
    task.finished = True
    await state.notify()


def _number(request: web.Request, key: str, default: float) -> float:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise StoreError(
            400, 25, f"The parameter is invalid: {key}={text!r}; give a number of 0 or more."
        )
    return value


async def get_task(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    task = state.store.get_task(request.match_info["task_id"])
    if state.options.sticky_cookies and request.cookies.get(NODE_COOKIE) != task.node:
        raise StoreError(
            404,
            141,
            "Task lookup failures can indicate that a load balancer is not using sticky "
            "sessions or a client is not including the session cookie: send back the "
            f"{NODE_COOKIE} cookie from the deploy response.",
        )
    first = int(_number(request, "first", 0))
    wait = min(_number(request, "wait", 0), MAX_WAIT)
    if wait > 0 and not task.finished and len(task.output) <= first:

        def changed() -> bool:
            return state.closing or task.finished or len(task.output) > first

        with contextlib.suppress(TimeoutError):
            async with state.changed:
                await asyncio.wait_for(state.changed.wait_for(changed), wait)
    return web.json_response(task.to_api(first))


# Pages ---------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status)


def _content_page(store: Store, guid: str, bundle_id: str | None) -> web.Response:
    record = store.content.get(guid)
    if record is None:
        return _page("Not found", "<h1>Not found</h1><p>No content has this guid.</p>", 404)
    name = html.escape(record.title or record.name)
    if bundle_id is None:
        if record.bundle_id is None:
            return _page(
                record.name,
                f"<h1>{name}</h1><p>Nothing is deployed to this content yet.</p>",
                404,
            )
        shown, state_word = record.bundle_id, "active"
    else:
        bundle = store.bundles.get(int(bundle_id)) if len(bundle_id) <= 18 else None
        if bundle is None or bundle.content_guid != guid or not bundle.built:
            return _page("Not found", "<h1>Not found</h1><p>No built bundle has this id.</p>", 404)
        shown = bundle.id
        state_word = "active" if record.bundle_id == bundle.id else "draft"
    associated = [
        html.escape(store.integration(a.integration_guid).label)
        for a in store.associations.get(guid, [])
    ]
    items = "".join(f"<li>{text}</li>" for text in associated) or "<li>none</li>"
    body = (
        f"<h1>{name}</h1>"
        f"<p>Content <code>{html.escape(record.name)}</code> ({html.escape(record.guid)}), "
        f"app mode {html.escape(record.app_mode)}.</p>"
        f"<p>Serving bundle {shown} ({state_word}).</p>"
        f"<h2>OAuth integrations</h2><ul>{items}</ul>"
    )
    return _page(record.title or record.name, body)


async def content_page(request: web.Request) -> web.StreamResponse:
    return _content_page(_state(request).store, request.match_info["guid"], None)


async def bundle_page(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    return _content_page(_state(request).store, info["guid"], info["bundle_id"])


async def content_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/content/{request.match_info['guid']}/")


async def dashboard(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    rows = "".join(
        f"<li><a href=\"/content/{html.escape(r.guid)}/\">{html.escape(r.title or r.name)}</a>"
        f" ({html.escape(r.app_mode)}, bundle {r.bundle_id if r.bundle_id is not None else '-'})"
        "</li>"
        for r in store.content.values()
    )
    return _page(
        "Connect sandbox",
        f"<h1>Connect sandbox ({html.escape(store.seed.version or 'version hidden')})</h1>"
        f"<ul>{rows or '<li>no content</li>'}</ul>",
    )


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE]
    state.closing = True
    await state.notify()


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE]
    for task in list(state.running):
        task.cancel()
    if state.running:
        await asyncio.gather(*state.running, return_exceptions=True)


def make_app(store: Store, *, api_key: str, options: SandboxOptions) -> web.Application:
    """The aiohttp application of one sandbox server."""
    app = web.Application(middlewares=[_errors, _faults, _auth])
    app[STATE] = SandboxState(store=store, faults=Faults(options), options=options, api_key=api_key)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    r = app.router
    v1 = f"{API}/v1"
    content = f"{v1}/content/{{guid}}"
    r.add_get(f"{API}/server_settings", server_settings)
    r.add_get(f"{v1}/server_settings/python", python_settings)
    r.add_get(f"{v1}/user", current_user)
    r.add_get(f"{v1}/users/{{guid}}", user_by_guid)
    r.add_get(f"{v1}/oauth/integrations", list_integrations)
    r.add_get(f"{v1}/oauth/integrations/{{guid}}", get_integration)
    r.add_get(f"{v1}/oauth/integrations/{{guid}}/associations", integration_associations)
    r.add_get(f"{v1}/content", list_content)
    r.add_post(f"{v1}/content", create_content)
    r.add_get(content, get_content)
    r.add_patch(content, patch_content)
    r.add_delete(content, delete_content)
    r.add_get(f"{content}/environment", get_environment)
    r.add_patch(f"{content}/environment", set_environment)
    r.add_put(f"{content}/environment", set_environment)
    r.add_get(f"{content}/oauth/integrations/associations", content_associations)
    r.add_put(f"{content}/oauth/integrations/associations", put_associations)
    r.add_get(f"{content}/bundles", list_bundles)
    r.add_post(f"{content}/bundles", upload_bundle)
    r.add_get(f"{content}/bundles/{{bundle_id}}", get_bundle)
    r.add_delete(f"{content}/bundles/{{bundle_id}}", delete_bundle)
    r.add_get(f"{content}/bundles/{{bundle_id}}/download", download_bundle)
    r.add_post(f"{content}/deploy", deploy)
    r.add_get(f"{v1}/tasks/{{task_id}}", get_task)
    r.add_get(f"{API}/applications/{{ident}}", legacy_application)
    r.add_get("/content/{guid}", content_redirect)
    r.add_get(r"/content/{guid}/_bundle{bundle_id:\d+}/", bundle_page)
    r.add_get("/content/{guid}/{tail:.*}", content_page)
    r.add_get("/connect/", dashboard)
    r.add_get("/", dashboard)
    return app
