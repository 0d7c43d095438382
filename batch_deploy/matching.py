"""Which integration satisfies each request on each server, and why not.

A request matches an integration when every field it names matches (AND):

=========== ================ ==============================================
request     integration      how
=========== ================ ==============================================
guid        guid             exact
name        name             RE2 search, unanchored, case-sensitive
description description      RE2 search, unanchored, case-sensitive
type        template         exact
auth_type   auth_type        exact
config      config           every key present with an equal JSON value
=========== ================ ==============================================

An integration whose compared field is null (or absent) never matches it.
JSON equality is strict about types: ``true`` is not ``1`` and ``"1"`` is not
``1``, while ``1`` and ``1.0`` are the same JSON number; objects and arrays
compare whole, with the same rules inside.

``ServerMatcher`` is built once per server: it indexes the integrations by
guid, template and auth_type, evaluates each pattern or config value on an
integration at most once (RE2 programs are compiled once per process), and
memoises whole requests, so a fleet whose manifests repeat the same requests
pays for each distinct request once per server. ``resolve`` is the same
matching without the memory, for a one-off question (the sandbox's deploy).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .integrations import REDACTED, Integration, ServerView, is_secret_key, redact_value
from .manifest import IntegrationRequest, compile_pattern, pattern_problem
from .versions import AUTO_ASSOCIATION, INTEGRATIONS_API, MULTIPLE_ASSOCIATIONS, at_least

__all__ = [
    "AmbiguousPolicy",
    "AssociateMode",
    "Resolution",
    "ResolutionStatus",
    "ServerMatcher",
    "gate_reason",
    "json_equal",
    "passes",
    "resolve",
    "resolve_all",
]

AmbiguousPolicy = Literal["fail", "first"]
AssociateMode = Literal["auto", "server", "explicit"]
ResolutionStatus = Literal["matched", "ambiguous", "unmatched", "invalid", "unsupported"]

_SHOWN_CANDIDATES = 5
_SHOWN_CHARS = 80


@dataclass(frozen=True)
class Resolution:
    """The outcome of one request on one server.

    ``candidates`` are the matching integrations in the server's list order.
    ``closest`` is, for ``unmatched``, the integration that passed the most of
    the request's criteria (each config key counts as one), ties going to the
    earlier one in the server's list; the ``reason`` names it.
    """

    status: ResolutionStatus
    candidates: tuple[Integration, ...] = ()
    reason: str = ""  # one sentence; "" when matched
    closest: Integration | None = None

    @property
    def chosen(self) -> Integration | None:
        """The integration this request resolves to under policy "first"."""
        return self.candidates[0] if self.candidates else None


def passes(resolution: Resolution, policy: AmbiguousPolicy) -> bool:
    return resolution.status == "matched" or (
        resolution.status == "ambiguous" and policy == "first"
    )


def json_equal(left: Any, right: Any) -> bool:
    """Equality of two decoded JSON values, with JSON's types rather than Python's."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return len(left) == len(right) and all(
            key in right and json_equal(value, right[key]) for key, value in left.items()
        )
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return False


# ---------------------------------------------------------------------------
# Showing untrusted values in one-line reasons


def _escape_controls(text: str) -> str:
    return "".join(
        f"\\u{ord(char):04x}" if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 else char
        for char in text
    )


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _show(value: Any) -> str:
    """A JSON value as one short line: quotes, escapes, secrets hidden."""
    if isinstance(value, str):
        # Clip inside the quotes, so a long string still reads as a string.
        return json.dumps(_clip(value), ensure_ascii=False)
    return _clip(json.dumps(redact_value(value), ensure_ascii=False, separators=(", ", ": ")))


def _show_pattern(pattern: str) -> str:
    return f"/{_clip(_escape_controls(pattern))}/"


def _config_path(key: str) -> str:
    return f"config.{key}" if key.isidentifier() else f"config[{_show(key)}]"


def _label(integration: Integration) -> str:
    name = "(unnamed)" if integration.name is None else _show(integration.name)
    return f"{name} ({_clip(_escape_controls(integration.guid))})"


# ---------------------------------------------------------------------------
# Bit sets over positions in the server's integration list


def _positions(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Lazy:
    """A criterion evaluated on demand, each integration at most once."""

    __slots__ = ("_applicable", "_evaluated", "_hits", "_test")

    def __init__(self, applicable: int, test: Callable[[int], bool]) -> None:
        self._applicable = applicable  # positions where the test can pass at all
        self._test = test
        self._evaluated = 0
        self._hits = 0

    def within(self, mask: int) -> int:
        pending = mask & self._applicable & ~self._evaluated
        if pending:
            test = self._test
            hits = 0
            for position in _positions(pending):
                if test(position):
                    hits |= 1 << position
            self._hits |= hits
            self._evaluated |= pending
        return self._hits & mask


@dataclass(frozen=True)
class _Criterion:
    field: str  # a request field
    key: str | None  # the config key, for field "config"
    wanted: Any
    check: int | _Lazy  # a ready mask, or evaluated on demand

    def within(self, mask: int) -> int:
        check = self.check
        return check & mask if isinstance(check, int) else check.within(mask)

    def failure(self, integration: Integration) -> str:
        """Why ``integration`` fails this criterion, wanted against has."""
        if self.field in ("name", "description"):
            has = getattr(integration, self.field)
            if has is None:
                return f"{self.field} is null, so it cannot match {_show_pattern(self.wanted)}"
            return f"{self.field} {_show(has)} does not match {_show_pattern(self.wanted)}"
        if self.field == "config":
            assert self.key is not None
            path = _config_path(self.key)
            if self.key not in integration.config:
                return f"{path} is missing"
            if is_secret_key(self.key):
                return f"{path} is {REDACTED}, not {REDACTED}"
            return f"{path} is {_show(integration.config[self.key])}, not {_show(self.wanted)}"
        attribute = "template" if self.field == "type" else self.field
        has = getattr(integration, attribute)
        shown = "null" if has is None else _show(has)
        return f"{self.field} is {shown}, not {_show(self.wanted)}"


def _freeze(value: Any) -> Any:
    """A hashable key that tells apart every value that could read differently."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, float):
        return ("f", repr(value))
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    if isinstance(value, Mapping):
        return ("o", tuple((str(key), _freeze(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return ("a", tuple(_freeze(item) for item in value))
    return ("?", repr(value))


def _request_key(request: IntegrationRequest) -> tuple[Any, ...]:
    config = None if request.config is None else _freeze(request.config)
    return (
        request.guid,
        request.name,
        request.description,
        request.type,
        request.auth_type,
        config,
    )


def _encoded(text: str | None) -> bytes | None:
    # Server text may hold lone surrogates (JSON escapes); encoded this way RE2 still
    # reads each as one character instead of the search raising.
    return None if text is None else text.encode("utf-8", "surrogatepass")


class _Index:
    """One integration list, indexed, with per-criterion and per-request memory."""

    def __init__(self, integrations: Sequence[Integration]) -> None:
        self.items = tuple(integrations)
        self.everything = (1 << len(self.items)) - 1
        self._exact: dict[str, dict[str, int]] = {"guid": {}, "type": {}, "auth_type": {}}
        self._texts: dict[str, list[bytes | None]] = {"name": [], "description": []}
        self._present: dict[str, int] = {"name": 0, "description": 0}
        for position, item in enumerate(self.items):
            bit = 1 << position
            for field, value in (
                ("guid", item.guid),
                ("type", item.template),
                ("auth_type", item.auth_type),
            ):
                if value is not None:
                    table = self._exact[field]
                    table[value] = table.get(value, 0) | bit
            for field, text in (("name", item.name), ("description", item.description)):
                self._texts[field].append(_encoded(text))
                if text is not None:
                    self._present[field] |= bit
        self._patterns: dict[tuple[str, str], _Lazy] = {}
        self._configs: dict[tuple[str, Any], _Lazy] = {}
        self._memo: dict[tuple[Any, ...], Resolution] = {}
        # Misses (and so every _Lazy update) happen under this lock; hits read the dict.
        self._lock = threading.Lock()

    def resolve(self, request: IntegrationRequest) -> Resolution:
        if request.problem is not None:
            return Resolution("invalid", reason=request.problem)
        key = _request_key(request)
        found = self._memo.get(key)
        if found is None:
            with self._lock:
                found = self._memo.get(key)
                if found is None:
                    found = self._resolve(request)
                    self._memo[key] = found
        return found

    def _pattern(self, field: str, pattern: str) -> _Lazy:
        lazy = self._patterns.get((field, pattern))
        if lazy is None:
            search = compile_pattern(pattern).search
            texts = self._texts[field]

            def test(position: int) -> bool:
                return search(texts[position]) is not None

            lazy = _Lazy(self._present[field], test)
            self._patterns[(field, pattern)] = lazy
        return lazy

    def _config(self, key: str, wanted: Any) -> _Lazy:
        cache_key = (key, _freeze(wanted))
        lazy = self._configs.get(cache_key)
        if lazy is None:
            items = self.items

            def test(position: int) -> bool:
                config = items[position].config
                return key in config and json_equal(config[key], wanted)

            lazy = _Lazy(self.everything, test)
            self._configs[cache_key] = lazy
        return lazy

    def _criteria(self, request: IntegrationRequest) -> list[_Criterion]:
        """The request's criteria in the order diagnostics list them."""
        criteria: list[_Criterion] = []
        for field in ("guid", "name", "description", "type", "auth_type"):
            wanted = getattr(request, field)
            if wanted is None:
                continue
            check: int | _Lazy
            if field in ("name", "description"):
                check = self._pattern(field, wanted)
            else:
                check = self._exact[field].get(wanted, 0)
            criteria.append(_Criterion(field, None, wanted, check))
        for key, wanted in (request.config or {}).items():
            criteria.append(_Criterion("config", str(key), wanted, self._config(str(key), wanted)))
        return criteria

    def _resolve(self, request: IntegrationRequest) -> Resolution:
        # A request built by hand (not by parse_manifest) may carry a pattern RE2 rejects.
        for field in ("name", "description"):
            pattern = getattr(request, field)
            problem = None if pattern is None else pattern_problem(field, pattern)
            if problem is not None:
                return Resolution("invalid", reason=problem)
        criteria = self._criteria(request)
        # Ready masks narrow for free; then config lookups; patterns last, on what is left.
        order = sorted(
            criteria,
            key=lambda c: 0 if isinstance(c.check, int) else (1 if c.field == "config" else 2),
        )
        remaining = self.everything
        for criterion in order:
            remaining = criterion.within(remaining)
            if not remaining:
                break
        if remaining:
            candidates = tuple(self.items[p] for p in _positions(remaining))
            if len(candidates) == 1:
                return Resolution("matched", candidates)
            return Resolution("ambiguous", candidates, _ambiguous_reason(candidates))
        if not self.items:
            return Resolution(
                "unmatched",
                reason="no integration matches because the server has no OAuth integrations; "
                "ask its administrator to add one that fits the request",
            )
        best = self._closest(criteria)
        closest = self.items[best]
        failures = [c.failure(closest) for c in criteria if not c.within(1 << best)]
        reason = f"no integration matches; closest is {_label(closest)}: {', '.join(failures)}"
        return Resolution("unmatched", reason=reason, closest=closest)

    def _closest(self, criteria: Sequence[_Criterion]) -> int:
        """The position passing the most criteria, the earliest among equals.

        Branch and bound: the ready masks (at most three: guid, type, auth_type)
        give each integration a free partial count; integrations are visited by
        that count, best first, and the costly criteria (patterns, config) are
        evaluated only where the total could still beat the best so far. As no
        integration passes everything, no total exceeds ``len(criteria) - 1``.
        """
        ready = [c.check for c in criteria if isinstance(c.check, int)]
        costly = [c for c in criteria if not isinstance(c.check, int)]
        ceiling = len(criteria) - 1
        # A two-bit counter per integration, kept bit-sliced across the masks.
        low = high = 0
        for mask in ready:
            carry = low & mask
            low ^= mask
            high ^= carry
        buckets = {
            3: high & low,
            2: high & ~low,
            1: low & ~high,
            0: self.everything & ~(high | low),
        }
        best, best_total = -1, -1
        for free in range(len(ready), -1, -1):
            bound = min(free + len(costly), ceiling)
            if bound < best_total:
                break
            for position in _positions(buckets[free]):
                if bound == best_total and position > best:
                    break  # the rest of this bucket can only tie, later in the list
                bit = 1 << position
                total = free + sum(1 for c in costly if c.within(bit))
                if total > best_total or (total == best_total and position < best):
                    best, best_total = position, total
                    if best_total == bound:
                        break  # nothing later in this bucket can beat or precede it
        return best


def _ambiguous_reason(candidates: Sequence[Integration]) -> str:
    shown = ", ".join(_label(item) for item in candidates[:_SHOWN_CANDIDATES])
    extra = len(candidates) - _SHOWN_CANDIDATES
    more = f" and {extra} more" if extra > 0 else ""
    return (
        f"{len(candidates)} integrations match: {shown}{more}; "
        'add a guid or a stricter pattern, or set ambiguous = "first"'
    )


def gate_reason(server: ServerView, associate: AssociateMode, request_count: int) -> str | None:
    """Why ``server`` cannot honour a manifest's requests at all, or None when it can.

    The gates apply in the contract's order: the integrations API, the switch,
    the licence, ``associate = "server"``, then several requests below 2025.07.0.
    A hidden version counts as current.
    """
    version = server.version
    if not server.has_integrations_api:
        if version is not None and not at_least(version, INTEGRATIONS_API):
            return (
                f"Connect {version} has no OAuth integrations API (it needs {INTEGRATIONS_API} "
                "or later); upgrade the server or leave it out of this content's servers"
            )
        return (
            "the server answered 404 for /__api__/v1/oauth/integrations, so it has no OAuth "
            f"integrations API (it needs Connect {INTEGRATIONS_API} or later); upgrade the "
            "server or leave it out of this content's servers"
        )
    if not server.oauth_integrations_enabled:
        return (
            "OAuth integrations are disabled on this server (oauth_integrations_enabled is "
            "false); ask its administrator to enable them"
        )
    if server.oauth_licensed is False:
        return (
            "this server's licence does not include OAuth integrations; ask its administrator "
            "for a licence that does"
        )
    if associate == "server" and not server.honours_requests:
        if version is not None and not at_least(version, AUTO_ASSOCIATION):
            why = f"this server runs {version}"
        else:
            why = "this server's licence does not say it includes OAuth integrations"
        return (
            f'associate = "server" needs Connect {AUTO_ASSOCIATION} or later with OAuth '
            f'integrations enabled and licensed, but {why}; set associate = "auto" or "explicit"'
        )
    if request_count > 1 and not server.allows_multiple_associations:
        return (
            f"Connect {version} allows at most one integration per content item (several need "
            f"{MULTIPLE_ASSOCIATIONS} or later) and this manifest has {request_count} requests; "
            "keep one request or upgrade the server"
        )
    return None


class ServerMatcher:
    """Resolves requests against one server's integrations, remembering its work.

    Build one per ``ServerView`` and reuse it for every manifest: identical
    requests (same fields, any index) are resolved once. Safe to share between
    threads.
    """

    def __init__(self, server: ServerView) -> None:
        self._server = server
        self._index = _Index(server.integrations or ())

    @property
    def server(self) -> ServerView:
        return self._server

    def resolve(self, request: IntegrationRequest) -> Resolution:
        """Match one request, without the server's gates (like ``resolve``)."""
        return self._index.resolve(request)

    def resolve_all(
        self, requests: Sequence[IntegrationRequest], associate: AssociateMode
    ) -> tuple[Resolution, ...]:
        """Every request of one manifest, in order, with the server's gates applied."""
        blocked = gate_reason(self._server, associate, len(requests))
        results: list[Resolution] = []
        for request in requests:
            if request.problem is not None:
                results.append(Resolution("invalid", reason=request.problem))
            elif blocked is not None:
                results.append(Resolution("unsupported", reason=blocked))
            else:
                results.append(self._index.resolve(request))
        return tuple(results)


def resolve(request: IntegrationRequest, integrations: Sequence[Integration]) -> Resolution:
    """Match one request against an integration list, in the list's order (no gates)."""
    return _Index(integrations).resolve(request)


# The planner calls resolve_all once per manifest; keeping the last few servers'
# matchers lets those calls share one index and one memory per server.
_MATCHERS: OrderedDict[int, tuple[ServerView, ServerMatcher]] = OrderedDict()
_MATCHERS_KEPT = 32
_MATCHERS_LOCK = threading.Lock()


def _matcher_for(server: ServerView) -> ServerMatcher:
    with _MATCHERS_LOCK:
        entry = _MATCHERS.get(id(server))
        if entry is not None and entry[0] is server:
            _MATCHERS.move_to_end(id(server))
            return entry[1]
        matcher = ServerMatcher(server)
        _MATCHERS[id(server)] = (server, matcher)
        while len(_MATCHERS) > _MATCHERS_KEPT:
            _MATCHERS.popitem(last=False)
        return matcher


def resolve_all(
    requests: Sequence[IntegrationRequest], server: ServerView, associate: AssociateMode
) -> tuple[Resolution, ...]:
    """Every request of one manifest on ``server``, gates applied.

    Reuses one ``ServerMatcher`` per ``ServerView`` object across calls.
    """
    return _matcher_for(server).resolve_all(requests, associate)
