"""The one HTTP client that talks to Connect servers.

Everything that can go wrong on the wire is translated here, and only here,
into batch_deploy's exception tree, with messages naming the server, the call
and the fix. The API key travels only in the ``Authorization`` header of
requests to the server's own origin: redirects are followed by hand so that a
redirect elsewhere never receives it, and it is kept out of reprs, errors and
logs (logs carry method, path, status and duration only).
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import json
import logging
import math
import os
import re
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import anyio
from multidict import CIMultiDictProxy
from yarl import URL

from .._version import __version__
from ..errors import (
    APIError,
    AuthenticationFailed,
    BundleError,
    Conflict,
    ConnectError,
    ConnectFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimedOut,
    TaskFailed,
    TaskTimedOut,
    TLSFailed,
    TransportError,
)
from ..integrations import Integration
from ..manifest import MAX_JSON_DEPTH, JSONTooDeep, loads_json
from .models import Association, Bundle, Content, ServerSettings, ShapeError, Task, User
from .retry import (
    BackoffHook,
    RetryPolicy,
    attempts,
    call_with_retries,
    retry_idempotent,
    retry_unsent,
)

__all__ = ["ConnectClient"]

log = logging.getLogger("batch_deploy.connect")

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# 307/308 promise the same method and body; the others may turn a POST into a GET.
_BODY_KEEPING_REDIRECTS: Final = frozenset({307, 308})
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
UPLOAD_CHUNK: Final = 256 * 1024
# Uploads get the request timeout plus this much time per byte, so a large
# bundle on a slow link is not cut off while a hung server still is.
MIN_UPLOAD_BYTES_PER_S: Final = 256 * 1024
MIN_POLL_INTERVAL: Final = 0.2
TASK_OUTPUT_KEPT: Final = 50
# What wait_task keeps of a task's output for its result: a server that never
# stops printing must not grow this process without bound.
TASK_LINES_KEPT: Final = 1000
TASK_LINE_CHARS: Final = 2000
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._~-]*$")
# C0 and C1 controls left after whitespace is folded: ESC, BEL, CSI and friends.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _Redacted(str):
    """A str that never shows itself in a repr.

    The key and the ``Authorization`` value are held as this type, so the
    request headers that aiohttp keeps in its exceptions (``request_info``),
    and any dict of headers in a traceback's locals, print ``'<redacted>'``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def proxy_for(url: URL) -> str | None:
    """The proxy the environment names for ``url``, if any.

    HTTPS_PROXY / HTTP_PROXY / NO_PROXY as curl and pip read them. aiohttp's
    ``trust_env`` would do this too, but it would also read ~/.netrc and then
    refuse our own Authorization header, so the proxy is chosen here.
    """
    host = url.host or ""
    # A proxy cannot reach this machine's loopback (an embedded sandbox) for us.
    if not host or _is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL
    content_type: str
    cookies: Mapping[str, str] = field(default_factory=dict)


BodyFactory = Callable[[], Any]


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _never_sent(error: ConnectError) -> bool:
    # A connector error means no connection was opened, so nothing reached
    # the server; TLS failures are their own error type and never retried.
    cause = error.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(
        cause, aiohttp.ClientSSLError
    )


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(UPLOAD_CHUNK):
            yield chunk


class ConnectClient:
    """A session with one Connect server; use as ``async with ConnectClient(...)``.

    ``server`` names the server in messages (the job file's name); ``key_hint``
    says where the key came from (e.g. ``$PROD_CONNECT_API_KEY``) so that a
    rejected key's message can point there. ``retry`` bounds retries of every
    call; ``task_poll_wait`` is how long one task poll may be held by the server.
    """

    def __init__(
        self,
        *,
        server: str,
        url: str,
        api_key: str,
        verify_tls: bool = True,
        ca_bundle: Path | None = None,
        request_timeout: float = 30.0,
        key_hint: str = "",
        retry: RetryPolicy | None = None,
        task_poll_wait: float = 10.0,
        max_redirects: int = 5,
    ) -> None:
        self.server = server or url
        self.url = url
        self._api_key = _Redacted(api_key)
        self._key_hint = key_hint
        self._request_timeout = request_timeout
        self._retry = retry or RetryPolicy()
        self._poll_wait = task_poll_wait
        self._max_redirects = max_redirects
        base = URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConnectError(
                f"{url!r} is not an http:// or https:// URL; fix url for this server "
                "in the job file",
                server=self.server,
            )
        if base.user or base.password or base.query_string or base.fragment:
            raise ConnectError(
                "the server URL may not carry a user, password, query or fragment; "
                "give the plain address (the key goes in api_key_env)",
                server=self.server,
            )
        self._root = str(base.with_path(base.path.rstrip("/") + "/__api__/"))
        self._origin = _origin(base)
        self._ssl: ssl.SSLContext | bool = self._tls_setting(verify_tls, ca_bundle)
        self._session: aiohttp.ClientSession | None = None
        self._user: User | None = None
        self._task_cookies: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"ConnectClient(server={self.server!r}, url={self.url!r})"

    def _tls_setting(self, verify_tls: bool, ca_bundle: Path | None) -> ssl.SSLContext | bool:
        if not verify_tls:
            return False
        if ca_bundle is None:
            # aiohttp's own verifying context, built once, not one per server.
            return True
        try:
            return ssl.create_default_context(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
            raise TLSFailed(
                f"the CA file {str(ca_bundle)!r} cannot be loaded ({reason}); "
                "point ca_bundle at a readable PEM file",
                server=self.server,
            ) from error

    # -- session ---------------------------------------------------------------

    async def __aenter__(self) -> ConnectClient:
        connector = aiohttp.TCPConnector(ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # unsafe: keep cookies set by IP-address hosts (a sandbox on 127.0.0.1).
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"User-Agent": f"batch-deploy/{__version__}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self._request_timeout),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use ConnectClient inside 'async with'")
        return self._session

    # -- URLs and messages -------------------------------------------------------

    def _segment(self, value: str, what: str) -> str:
        if not _SAFE_ID.match(value):
            raise ConnectError(
                f"{value!r} is not a valid {what}; check the {what} in the job file "
                "or state.json",
                server=self.server,
            )
        return quote(value, safe="")

    def _api(self, path: str, query: Mapping[str, str | int] | None = None) -> URL:
        url = URL(self._root + path, encoded=True)
        return url.with_query(query) if query else url

    def _scrub(self, text: str, limit: int = 300) -> str:
        """Server-supplied text made fit for a message: one line, short, key-free,
        without control characters (messages reach terminals through logs)."""
        if self._api_key:
            text = text.replace(self._api_key, "<redacted>")
        text = " ".join(text.split())
        text = _CONTROLS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    # -- one HTTP exchange -------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        url: URL,
        *,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        time_limit: float | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> _Answer:
        """One request, redirects followed by hand, no retries; errors translated."""
        where = f"{method} {url.path}"
        limit = time_limit if time_limit is not None else self._request_timeout
        current = url
        for _hop in range(self._max_redirects + 1):
            send = dict(headers or {})
            own_origin = _origin(current) == self._origin
            if authenticated and own_origin:
                send["Authorization"] = _Redacted(f"Key {self._api_key}")
            started = time.monotonic()
            try:
                async with self._http().request(
                    method,
                    current,
                    data=body() if body is not None else None,
                    headers=send,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=limit),
                    # A task's cookies belong to the server's node, not to a redirect target.
                    cookies=cookies if own_origin else None,
                    proxy=proxy_for(current),
                ) as response:
                    elapsed = time.monotonic() - started
                    log.debug(
                        "%s: %s %s -> %d in %.3f s",
                        self.server,
                        method,
                        current.path,
                        response.status,
                        elapsed,
                    )
                    location = response.headers.get("Location")
                    if response.status in _REDIRECTS and location:
                        current = self._follow(method, current, location, response.status, where)
                        continue
                    data = await self._read(response, where)
                    return _Answer(
                        status=response.status,
                        headers=response.headers,
                        body=data,
                        url=current,
                        content_type=response.content_type,
                        cookies={name: morsel.value for name, morsel in response.cookies.items()},
                    )
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as error:
                raise self._transport_error(error, where, current, limit) from error
        raise APIError(
            f"more than {self._max_redirects} redirects; set url to the server's final address",
            status=0,
            server=self.server,
            where=where,
        )

    def _follow(self, method: str, current: URL, location: str, status: int, where: str) -> URL:
        try:
            target = current.join(URL(location))
        except ValueError as error:
            raise APIError(
                f"the server redirected to an unusable address ({self._scrub(location)}); "
                "set url to the server's own address",
                status=status,
                server=self.server,
                where=where,
            ) from error
        if target.scheme not in ("http", "https") or not target.host:
            raise APIError(
                f"the server redirected to {self._scrub(str(target))}, which is not http(s); "
                "set url to the server's own address",
                status=status,
                server=self.server,
                where=where,
            )
        if current.scheme == "https" and target.scheme != "https":
            raise APIError(
                f"the server redirected from https to {self._scrub(str(target.origin()))}, "
                "which is not encrypted; set url to the server's https address",
                status=status,
                server=self.server,
                where=where,
            )
        if method not in ("GET", "HEAD") and status not in _BODY_KEEPING_REDIRECTS:
            raise APIError(
                f"the server redirected this {method} to {self._scrub(str(target.origin()))} "
                f"({status}), which would drop its body; set url to the address the server "
                "redirects to",
                status=status,
                server=self.server,
                where=where,
            )
        log.debug("%s: redirected (%d) to %s", self.server, status, target.origin())
        return target

    async def _read(self, response: aiohttp.ClientResponse, where: str) -> bytes:
        declared = response.content_length
        chunks: list[bytes] = []
        total = 0
        if declared is None or declared <= MAX_ANSWER_BYTES:
            async for chunk in response.content.iter_chunked(1 << 16):
                total += len(chunk)
                if total > MAX_ANSWER_BYTES:
                    break
                chunks.append(chunk)
        if (declared or 0) > MAX_ANSWER_BYTES or total > MAX_ANSWER_BYTES:
            raise APIError(
                f"the answer is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB; "
                "check that url points at a Connect server",
                status=response.status,
                server=self.server,
                where=where,
            )
        return b"".join(chunks)

    def _transport_error(
        self, error: BaseException, where: str, url: URL, limit: float
    ) -> TransportError:
        target = f"{url.host}:{url.port}"
        context = {"server": self.server, "where": where}
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            cause = error.certificate_error
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
            return TLSFailed(
                f"the TLS certificate of {target} was not accepted "
                f"({self._scrub(str(reason or cause))}); set ca_bundle to the CA file that "
                "signed it, or verify_tls = false for a test server only",
                **context,
            )
        if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
            cause = error.os_error if isinstance(error, aiohttp.ClientSSLError) else error
            reason = getattr(cause, "reason", None) or getattr(cause, "strerror", None)
            return TLSFailed(
                f"the TLS handshake with {target} failed ({self._scrub(str(reason or cause))}); "
                "check that url says https only for a server that speaks TLS on that port",
                **context,
            )
        if isinstance(error, TimeoutError):
            return RequestTimedOut(
                f"no answer from {target} within {limit:g} s; check that the server is up "
                "and not overloaded, then try again",
                **context,
            )
        if isinstance(error, aiohttp.ClientConnectorDNSError):
            return ConnectFailed(
                f"the host name {url.host!r} cannot be resolved; check url for this server",
                **context,
            )
        if isinstance(error, aiohttp.ClientConnectorError):
            # errno's own words ("Connection refused") beat asyncio's wording.
            reason = (
                os.strerror(error.errno)
                if error.errno
                else error.strerror or type(error.os_error).__name__
            )
            return ConnectFailed(
                f"cannot connect to {target} ({self._scrub(reason)}); check url and that "
                "the server is running",
                **context,
            )
        if isinstance(error, aiohttp.ServerDisconnectedError):
            return ConnectFailed(
                f"{target} closed the connection before answering; try again, and check the "
                "server or any proxy in front of it",
                **context,
            )
        if isinstance(error, aiohttp.ClientPayloadError):
            return ConnectFailed(
                f"the answer from {target} was cut off; try again",
                **context,
            )
        if isinstance(error, aiohttp.ClientResponseError):
            return ConnectFailed(
                f"the answer from {target} is not valid HTTP ({self._scrub(error.message)}); "
                "check that url points at a Connect server and says http or https correctly",
                **context,
            )
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return ConnectFailed(
            f"the connection to {target} failed ({self._scrub(reason)}); try again, and "
            "check the network between here and the server",
            **context,
        )

    # -- statuses and JSON ---------------------------------------------------------

    def _status_error(self, answer: _Answer, where: str) -> APIError:
        message, code = _error_fields(answer.body)
        status = answer.status
        detail = str(status)
        if code is not None:
            detail += f", Connect code {code}"
        if message:
            detail += f": {self._scrub(message)}"
        context: dict[str, Any] = {
            "status": status,
            "code": code,
            "server": self.server,
            "where": where,
        }
        if status == 401:
            if _origin(answer.url) != self._origin:
                fix = (
                    f"the server redirected to {answer.url.origin()}, which is never sent the "
                    "key; set url to the address that serves the API"
                )
            elif self._key_hint:
                fix = f"check the key in {self._key_hint}"
            else:
                fix = "check the API key"
            return AuthenticationFailed(f"the API key was rejected ({detail}); {fix}", **context)
        if status == 403:
            return PermissionDenied(
                f"the key's user may not do this ({detail}); use a key of a publisher or "
                "administrator who may change this content",
                **context,
            )
        if status == 404:
            return NotFound(
                f"no such object ({detail}); check the guid, and that url points at the "
                "right Connect server",
                **context,
            )
        if status == 409:
            return Conflict(
                f"the server reports a conflict ({detail}); if the content name is taken by "
                "another owner, choose another name or give this server's guid in the job file",
                **context,
            )
        if status == 429:
            retry_after = _retry_after(answer.headers.get("Retry-After"))
            when = f"wait {retry_after:g} s" if retry_after is not None else "wait"
            return RateLimited(
                f"the server is limiting requests ({detail}); {when} and try again, or lower "
                "per_server in the job file",
                retry_after=retry_after,
                **context,
            )
        if status == 413:
            return APIError(
                f"the upload is too large for the server or a proxy in front of it ({detail}); "
                "leave large data out of the manifest's files or raise the proxy's limit",
                **context,
            )
        if status >= 500:
            return APIError(
                f"the server failed to answer ({detail}); try again later, and check the "
                "server's health if it persists",
                **context,
            )
        return APIError(
            f"the server refused the request ({detail}); check that url points at a Connect "
            "server whose version supports this call",
            **context,
        )

    def _decode(self, answer: _Answer, where: str) -> Any:
        try:
            return loads_json(answer.body)
        except JSONTooDeep:
            # Everything downstream (matching, redaction, reports) recurses.
            raise APIError(
                f"the answer nests more than {MAX_JSON_DEPTH} levels deep, which no Connect "
                "answer does; check that url points at a Connect server",
                status=answer.status,
                server=self.server,
                where=where,
            ) from None
        except (ValueError, UnicodeDecodeError) as error:
            kind = answer.content_type or "no Content-Type"
            raise APIError(
                f"the answer is not JSON ({kind}); url may not point at a Connect server: "
                "check it in the job file",
                status=answer.status,
                server=self.server,
                where=where,
            ) from error

    def _shape_error(self, error: ShapeError, where: str, status: int) -> APIError:
        return APIError(
            f"the answer does not look like Connect's ({self._scrub(str(error))}); check that "
            "url points at a Connect server",
            status=status,
            server=self.server,
            where=where,
        )

    # -- one API call, with retries ----------------------------------------------

    async def _once(
        self,
        method: str,
        url: URL,
        *,
        json_body: Any = None,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        time_limit: float | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> _Answer:
        where = f"{method} {url.path}"
        send = dict(headers or {})
        factory = body
        if json_body is not None:
            encoded = json.dumps(json_body).encode("utf-8")
            send["Content-Type"] = "application/json"

            def factory() -> Any:
                return encoded

        answer = await self._exchange(
            method,
            url,
            body=factory,
            headers=send,
            authenticated=authenticated,
            time_limit=time_limit,
            cookies=cookies,
        )
        if answer.status >= 400:
            raise self._status_error(answer, where)
        return answer

    async def _call(
        self,
        method: str,
        url: URL,
        *,
        hook: BackoffHook | None = None,
        **options: Any,
    ) -> _Answer:
        chosen = hook if hook is not None else retry_idempotent(self._retry)

        async def one() -> _Answer:
            return await self._once(method, url, **options)

        return await call_with_retries(self._retry, chosen, one)

    async def _get_json(self, url: URL, **options: Any) -> tuple[Any, str, int]:
        answer = await self._call("GET", url, **options)
        where = f"GET {url.path}"
        return self._decode(answer, where), where, answer.status

    # -- the API ----------------------------------------------------------------

    async def server_settings(self) -> ServerSettings:
        """Version, host name and OAuth feature flags.

        Asked without the key, as Connect answers it to anyone: that tells
        "no Connect here" apart from "bad key" before the key is ever sent.
        """
        url = self._api("server_settings")
        where = f"GET {url.path}"
        try:
            try:
                answer = await self._call("GET", url, authenticated=False)
            except (AuthenticationFailed, PermissionDenied):
                # Some proxies demand credentials on every path; ask again with them.
                answer = await self._call("GET", url)
        except NotFound as error:
            raise NotFound(
                f"no Connect API answers at this address ({error.status}); check url for "
                "this server: it is the address of Connect's dashboard, without /__api__",
                status=error.status,
                code=error.code,
                server=self.server,
                where=where,
            ) from error
        try:
            return ServerSettings.from_api(self._decode(answer, where))
        except ShapeError as error:
            raise self._shape_error(error, where, answer.status) from error

    async def current_user(self) -> User:
        """The owner of the API key."""
        data, where, status = await self._get_json(self._api("v1/user"))
        try:
            self._user = User.from_api(data)
        except ShapeError as error:
            raise self._shape_error(error, where, status) from error
        return self._user

    async def integrations(self) -> tuple[Integration, ...] | None:
        """Every OAuth integration; ``None`` when the server has no such API (404)."""
        try:
            data, where, status = await self._get_json(self._api("v1/oauth/integrations"))
        except NotFound:
            return None
        if not isinstance(data, list):
            raise self._shape_error(ShapeError("the integrations are not a list"), where, status)
        try:
            return tuple(Integration.from_api(item) for item in _objects(data, "integration"))
        except ValueError as error:
            raise self._shape_error(ShapeError(str(error)), where, status) from error

    async def get_content(self, guid: str) -> Content:
        """One content item by guid; NotFound when it is gone."""
        url = self._api(f"v1/content/{self._segment(guid, 'content guid')}")
        data, where, status = await self._get_json(url)
        return self._content(data, where, status)

    def _content(self, data: Any, where: str, status: int) -> Content:
        try:
            return Content.from_api(data)
        except ShapeError as error:
            raise self._shape_error(error, where, status) from error

    async def find_content(self, name: str) -> Content | None:
        """The content item called ``name`` that this key can see, if any.

        An administrator may see several owners' items of one name: the key
        owner's own item wins; otherwise several are an error asking for a guid.
        """
        return await call_with_retries(
            self._retry, retry_idempotent(self._retry), lambda: self._find_content_once(name)
        )

    async def _find_content_once(self, name: str) -> Content | None:
        url = self._api("v1/content", {"name": name})
        where = f"GET {url.path}"
        answer = await self._once("GET", url)
        data = self._decode(answer, where)
        if not isinstance(data, list):
            raise self._shape_error(ShapeError("the content list is not a list"), where, 200)
        items = [self._content(item, where, answer.status) for item in data]
        named = [item for item in items if item.name == name]
        if len(named) <= 1:
            return named[0] if named else None
        if self._user is not None:
            mine = [item for item in named if item.owner_guid == self._user.guid]
            if len(mine) == 1:
                return mine[0]
        guids = self._scrub(", ".join(item.guid for item in named))
        raise ConnectError(
            f"{len(named)} content items are named {name!r} ({guids}); give this server's "
            "guid for the content in the job file to choose one",
            server=self.server,
            where=where,
        )

    async def create_content(self, name: str, title: str | None = None) -> Content:
        """Create a content item, never a twin.

        Before any repeat of the POST the name is looked up: a create that
        landed although its answer was lost is found and returned, and a 409
        after a repeat means the same.
        """
        url = self._api("v1/content")
        where = f"POST {url.path}"
        payload: dict[str, str] = {"name": name}
        if title is not None:
            payload["title"] = title
        posts = 0
        async for attempt in attempts(self._retry, retry_idempotent(self._retry)):
            with attempt:
                if posts:
                    found = await self._find_content_once(name)
                    if found is not None:
                        return found
                posts += 1
                try:
                    answer = await self._once("POST", url, json_body=payload)
                except Conflict:
                    if posts == 1:
                        raise
                    found = await self._find_content_once(name)
                    if found is None:
                        raise
                    return found
                return self._content(self._decode(answer, where), where, answer.status)
        raise AssertionError("stamina ended without a result or an error")

    async def update_content(self, guid: str, *, title: str) -> Content:
        """Change a content item's title."""
        url = self._api(f"v1/content/{self._segment(guid, 'content guid')}")
        where = f"PATCH {url.path}"
        answer = await self._call("PATCH", url, json_body={"title": title})
        return self._content(self._decode(answer, where), where, answer.status)

    async def list_bundles(self, guid: str) -> tuple[Bundle, ...]:
        """Every bundle uploaded to a content item."""
        url = self._api(f"v1/content/{self._segment(guid, 'content guid')}/bundles")
        data, where, status = await self._get_json(url)
        if not isinstance(data, list):
            raise self._shape_error(ShapeError("the bundle list is not a list"), where, status)
        try:
            return tuple(Bundle.from_api(item) for item in data)
        except ShapeError as error:
            raise self._shape_error(error, where, status) from error

    async def active_bundle_md5(self, content: Content) -> str | None:
        """The archive MD5 of the content's active bundle; None if unknown."""
        if not content.bundle_id:
            return None
        try:
            bundle = await self.get_bundle(content.guid, content.bundle_id)
        except NotFound:
            return None
        return bundle.archive_md5

    async def get_bundle(self, guid: str, bundle_id: str) -> Bundle:
        """One bundle of a content item; NotFound when it is gone."""
        url = self._api(
            f"v1/content/{self._segment(guid, 'content guid')}"
            f"/bundles/{self._segment(bundle_id, 'bundle id')}"
        )
        data, where, status = await self._get_json(url)
        try:
            return Bundle.from_api(data)
        except ShapeError as error:
            raise self._shape_error(error, where, status) from error

    async def upload_bundle(self, guid: str, path: Path, md5_hex: str) -> Bundle:
        """Upload a built ``.tar.gz``, streamed from disk (never held in memory).

        Retried like a GET: an uploaded bundle that is never deployed is harmless.
        """
        url = self._api(f"v1/content/{self._segment(guid, 'content guid')}/bundles")
        where = f"POST {url.path}"
        try:
            size = (await anyio.Path(path).stat()).st_size
        except OSError as error:
            raise BundleError(
                f"{path}: the built bundle cannot be read ({error.strerror}); run again to "
                "rebuild it"
            ) from error
        checksum = base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")
        headers = {
            "Content-Type": "application/gzip",
            "Content-Length": str(size),
            "X-Content-Checksum": checksum,
        }
        answer = await self._call(
            "POST",
            url,
            body=lambda: _file_chunks(path),
            headers=headers,
            time_limit=self._request_timeout + size / MIN_UPLOAD_BYTES_PER_S,
        )
        try:
            return Bundle.from_api(self._decode(answer, where))
        except ShapeError as error:
            raise self._shape_error(error, where, answer.status) from error

    async def deploy(self, guid: str, bundle_id: str) -> str:
        """Start deploying a bundle; returns the task id.

        Repeated only when the server cannot have acted (429, 503, or no
        connection): a second deploy of a dropped request could run twice.
        """
        url = self._api(f"v1/content/{self._segment(guid, 'content guid')}/deploy")
        where = f"POST {url.path}"
        # Behind a load balancer the task lives on the node that answered: its
        # polls must carry the cookies this deploy went with (a balancer sets
        # none when the request already names a node) and any it was given,
        # whatever other deploys on this session set in the jar meanwhile.
        went_with = {
            name: morsel.value
            for name, morsel in self._http().cookie_jar.filter_cookies(url).items()
        }
        answer = await self._call(
            "POST",
            url,
            hook=retry_unsent(self._retry, _never_sent),
            json_body={"bundle_id": bundle_id},
            cookies=went_with or None,
        )
        data = self._decode(answer, where)
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise self._shape_error(ShapeError('no "task_id" in the answer'), where, answer.status)
        cookies = {**went_with, **answer.cookies}
        if cookies:
            self._task_cookies[task_id] = cookies
        return task_id

    async def wait_task(
        self,
        task_id: str,
        *,
        deadline_s: float,
        on_output: Callable[[str], None] | None = None,
    ) -> Task:
        """Follow a task until it finishes or ``deadline_s`` passes.

        Long-polls (the server holds each poll up to ``task_poll_wait`` s) and
        reads each output line once. Raises TaskFailed for a non-zero code and
        TaskTimedOut at the deadline, both with the last output lines. The
        result's output is the last ``TASK_LINES_KEPT`` lines, each cut to
        ``TASK_LINE_CHARS`` characters; ``on_output`` sees every line whole.
        """
        url = self._api(f"v1/tasks/{self._segment(task_id, 'task id')}")
        where = f"GET {url.path}"
        lines: deque[str] = deque(maxlen=TASK_LINES_KEPT)
        first = 0
        started = anyio.current_time()
        task: Task | None = None
        try:
            with anyio.fail_after(deadline_s):
                while True:
                    remaining = deadline_s - (anyio.current_time() - started)
                    wait = max(0, min(int(self._poll_wait), int(remaining)))
                    polled_at = anyio.current_time()
                    task = await self._poll(url, task_id, first, wait)
                    for line in task.output:
                        if on_output is not None:
                            on_output(line)
                    lines.extend(line[:TASK_LINE_CHARS] for line in task.output)
                    # `last` is where the next read starts; never step back, or
                    # lines already reported would come again.
                    first = max(first + len(task.output) if task.last < 0 else task.last, first)
                    if task.finished:
                        break
                    # A server that ignores `wait` must not turn this into a busy loop;
                    # an early answer with new output is the long poll working.
                    spent = anyio.current_time() - polled_at
                    if not task.output and spent < MIN_POLL_INTERVAL:
                        await anyio.sleep(MIN_POLL_INTERVAL - spent)
        except TimeoutError:
            self._task_cookies.pop(task_id, None)
            raise TaskTimedOut(
                f"the deploy task {task_id} was still running after {deadline_s:g} s; raise "
                "task_timeout in the job file, or check the content's logs on the server",
                task_id=task_id,
                output=list(lines)[-TASK_OUTPUT_KEPT:],
                server=self.server,
                where=where,
            ) from None
        self._task_cookies.pop(task_id, None)
        assert task is not None
        result = Task(task.id, tuple(lines), True, task.code, task.error, task.last)
        if task.code not in (0, None) or (task.code is None and task.error):
            reason = self._scrub(task.error) if task.error else "no reason given"
            raise TaskFailed(
                f"the deploy task {task_id} failed (code {task.code}): {reason}; read the "
                "task output and the content's logs on the server to fix it",
                task_id=task_id,
                output=list(lines)[-TASK_OUTPUT_KEPT:],
                server=self.server,
                where=where,
            )
        return result

    async def _poll(self, url: URL, task_id: str, first: int, wait: int) -> Task:
        poll_url = url.with_query({"first": first, "wait": wait})
        where = f"GET {url.path}"
        answer = await self._call(
            "GET",
            poll_url,
            time_limit=self._request_timeout + wait,
            cookies=self._task_cookies.get(task_id),
        )
        try:
            return Task.from_api(self._decode(answer, where), task_id)
        except ShapeError as error:
            raise self._shape_error(error, where, answer.status) from error

    async def associations(self, guid: str) -> tuple[Association, ...]:
        """The integrations the server reports as associated with a content item."""
        url = self._api(
            f"v1/content/{self._segment(guid, 'content guid')}/oauth/integrations/associations"
        )
        data, where, status = await self._get_json(url)
        if data is None:
            return ()
        if not isinstance(data, list):
            raise self._shape_error(ShapeError("the associations are not a list"), where, status)
        try:
            return tuple(Association.from_api(item) for item in data)
        except ShapeError as error:
            raise self._shape_error(error, where, status) from error

    async def set_associations(self, guid: str, integration_guids: Sequence[str]) -> None:
        """Replace the content's associated integrations (an empty list clears them)."""
        url = self._api(
            f"v1/content/{self._segment(guid, 'content guid')}/oauth/integrations/associations"
        )
        body = [{"oauth_integration_guid": integration} for integration in integration_guids]
        await self._call("PUT", url, json_body=body)


def _error_fields(body: bytes) -> tuple[str, int | None]:
    """Connect's ``{"code": ..., "error": ...}`` from an error answer, when present."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", None
    if not isinstance(data, dict):
        return "", None
    message = data.get("error")
    code = data.get("code")
    return (
        message if isinstance(message, str) else "",
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _objects(data: list[Any], what: str) -> list[Mapping[str, Any]]:
    for item in data:
        if not isinstance(item, Mapping):
            raise ShapeError(f"an {what} is not a JSON object")
    return data
