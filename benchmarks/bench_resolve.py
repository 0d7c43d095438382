"""Resolve a fleet's integration requests on several servers: matcher against a plain loop.

Run from the repository root::

    python benchmarks/bench_resolve.py [--content 2000] [--servers 4] [--integrations 1000]

The fleet is synthetic but shaped like a real one: integrations use Connect's
known templates and auth types, names follow "<Product> <environment> <team>"
conventions, configs carry client ids, scopes and secrets; manifests draw their
requests from a shared pool with a long tail (many apps copy the same request,
a few ask for something of their own), and the servers are replicas with their
own guids, a few integrations renamed or missing. Both sides resolve every
request of every manifest on every server in the same run; their answers
(status, candidates, closest integration) are compared before times are shown.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import re2

from batch_deploy.integrations import Integration, ServerView
from batch_deploy.manifest import IntegrationRequest, parse_manifest
from batch_deploy.matching import Resolution, ServerMatcher, gate_reason
from batch_deploy.versions import parse_version

TEMPLATES = {
    "aws": "AWS",
    "azure": "Azure",
    "azure-openai": "Azure OpenAI",
    "bigquery": "BigQuery",
    "connect": "Connect",
    "custom": "Custom",
    "databricks": "Databricks",
    "drive": "Google Drive",
    "github": "GitHub",
    "msgraph": "Microsoft Graph",
    "salesforce": "Salesforce",
    "sharepoint": "SharePoint",
    "sheets": "Google Sheets",
    "snowflake": "Snowflake",
    "vertex-ai": "Vertex AI",
}
AUTH_TYPES = ("Viewer", "Service Account", "Visitor API Key")
ENVIRONMENTS = ("production", "prod", "staging", "dev", "sandbox", "qa")
TEAMS = (
    "finance", "sales", "marketing", "hr", "research", "ops", "risk", "data-science",
    "platform", "support", "legal", "growth", "supply", "pricing", "security", "analytics",
)
SCOPES = ("refresh_token", "openid email", "read:org repo", "Files.Read offline_access",
          "https://www.googleapis.com/auth/drive.readonly", "session:role:analyst")
VERSIONS = ("2025.09.0", "2025.07.0", None, "2025.10.1")

Outcome = tuple[str, tuple[str, ...], str | None]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


def new_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fleet_integrations(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """One server's integrations as API objects (the first server's layout)."""
    items: list[dict[str, Any]] = [
        {
            "guid": new_guid(rng),
            "name": "Connect Visitor API Key",
            "description": "Allows access to Connect APIs on behalf of a Connect user.",
            "template": "connect",
            "auth_type": "Visitor API Key",
            "config": {"max_role": "Viewer"},
        }
    ]
    weights = [9 if t in ("snowflake", "databricks", "custom", "aws", "azure") else 3
               for t in TEMPLATES]
    while len(items) < count:
        template = rng.choices(list(TEMPLATES), weights)[0]
        environment = rng.choice(ENVIRONMENTS)
        team = rng.choice(TEAMS)
        serial = rng.randrange(1, 40)
        auth = rng.choices(AUTH_TYPES[:2], (3, 1))[0]
        config: dict[str, Any] = {
            "client_id": f"{team}-{serial:03d}",
            "scopes": rng.choice(SCOPES),
            "client_secret": new_guid(rng),
        }
        if template in ("snowflake", "databricks"):
            config["account_url"] = f"https://{team}{serial}.{template}.example.com"
        if template == "custom":
            config["auth_mode"] = rng.choice(("Confidential", "Public"))
            config["pkce"] = rng.random() < 0.5
        if rng.random() < 0.1:
            config["max_age"] = rng.choice((3600, 3600.0, 7200))
        items.append(
            {
                "guid": new_guid(rng),
                "name": f"{TEMPLATES[template]} {environment} {team} {serial}"
                if rng.random() > 0.02 else None,
                "description": f"{TEMPLATES[template]} access for {team} ({auth.lower()})"
                if rng.random() > 0.2 else None,
                "template": template,
                "auth_type": auth if rng.random() > 0.05 else None,
                "config": config,
            }
        )
    return items


def replica(rng: random.Random, source: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Another server of the fleet: same conventions, own guids, some drift."""
    out = []
    for item in source:
        if rng.random() < 0.03:
            continue
        copy = dict(item, guid=new_guid(rng), config=dict(item["config"]))
        if copy["name"] is not None and rng.random() < 0.05:
            copy["name"] = copy["name"].replace("production", "prod")
        out.append(copy)
    rng.shuffle(out)
    return out


def request_pool(
    rng: random.Random, first: list[dict[str, Any]], size: int
) -> list[dict[str, Any]]:
    """Requests that manifests share, most common first."""
    named = [item for item in first if item["name"] is not None]
    pool: list[dict[str, Any]] = [{"type": "connect", "auth_type": "Visitor API Key"}]
    while len(pool) < size:
        item = rng.choice(named)
        template, name = item["template"], item["name"]
        product, environment, team, serial = name.rsplit(" ", 3)
        kind = rng.random()
        if kind < 0.30:
            pool.append({"type": template, "name": f"^{re2.escape(name)}$"})
        elif kind < 0.45:
            pool.append(
                {"type": template, "name": f"^{product} (prod|production) {team} {serial}$",
                 "auth_type": "Viewer"}
            )
        elif kind < 0.55:
            pool.append({"type": template, "name": f"{team} {serial}$",
                         "config": {"scopes": item["config"]["scopes"]}})
        elif kind < 0.65:
            pool.append({"name": f"{environment} {team}", "type": template})  # often several
        elif kind < 0.72:
            pool.append({"type": template, "description": f"for {team} \\(viewer\\)$"})
        elif kind < 0.80:
            pool.append({"type": template, "config": {"client_id": item["config"]["client_id"]}})
        elif kind < 0.88:
            pool.append({"guid": item["guid"]})  # only on the first server
        elif kind < 0.94:
            pool.append({"name": f"^{product} {environment} {team} {int(serial) + 100}$"})  # a typo
        else:
            pool.append({"type": template, "name": f"^{re2.escape(name)}$",
                         "config": {"max_age": 3600}})
    return pool


def fleet_manifests(
    rng: random.Random, pool: list[dict[str, Any]], first: list[dict[str, Any]], content: int
) -> list[tuple[IntegrationRequest, ...]]:
    weights = [1.0 / (rank + 1) for rank in range(len(pool))]
    manifests = []
    for index in range(content):
        chosen = rng.choices(pool, weights, k=2)
        if rng.random() < 0.05:  # an app with a request nobody else makes
            chosen[1] = {"guid": rng.choice(first)["guid"], "type": rng.choice(list(TEMPLATES))}
        document = {
            "version": 1,
            "metadata": {"appmode": "python-shiny", "entrypoint": "app"},
            "files": {"app.py": {"checksum": "0" * 32}},
            "integration_requests": chosen,
        }
        parsed = parse_manifest(json.dumps(document).encode(), f"content-{index}/manifest.json")
        manifests.append(parsed.requests)
    return manifests


# --- the plain loop: what resolving looks like without indexes or memory ---------


def plain_checks(
    request: IntegrationRequest, patterns: dict[str, Any], item: Integration
) -> list[bool]:
    checks = []
    if request.guid is not None:
        checks.append(item.guid == request.guid)
    for field, compiled in patterns.items():
        text = getattr(item, field)
        checks.append(text is not None and compiled.search(text) is not None)
    if request.type is not None:
        checks.append(item.template == request.type)
    if request.auth_type is not None:
        checks.append(item.auth_type == request.auth_type)
    for key, wanted in (request.config or {}).items():
        checks.append(key in item.config and plain_equal(item.config[key], wanted))
    return checks


def plain_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(plain_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(plain_equal, left, right))
    return type(left) is type(right) and left == right


def plain_resolve(request: IntegrationRequest, items: Sequence[Integration]) -> Outcome:
    if request.problem is not None:
        return ("invalid", (), None)
    # Compiled once per request, then every integration is scanned.
    patterns = {
        field: re2.compile(getattr(request, field), _OPTIONS)
        for field in ("name", "description")
        if getattr(request, field) is not None
    }
    found = tuple(item.guid for item in items if all(plain_checks(request, patterns, item)))
    if found:
        return ("matched" if len(found) == 1 else "ambiguous", found, None)
    if not items:
        return ("unmatched", (), None)
    best = max(items, key=lambda item: sum(plain_checks(request, patterns, item)))
    return ("unmatched", (), best.guid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--content", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--integrations", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=400, help="shared requests to draw from")
    parser.add_argument("--seed", type=int, default=20250901)
    options = parser.parse_args(argv)

    rng = random.Random(options.seed)
    first = fleet_integrations(rng, options.integrations)
    layouts = [first] + [replica(rng, first) for _ in range(options.servers - 1)]
    servers = [
        ServerView(
            name=f"connect-{n}",
            version=parse_version(VERSIONS[n % len(VERSIONS)]),
            oauth_integrations_enabled=True,
            oauth_licensed=True,
            integrations=tuple(Integration.from_api(item) for item in layout),
        )
        for n, layout in enumerate(layouts)
    ]
    pool = request_pool(rng, first, options.pool)
    manifests = fleet_manifests(rng, pool, first, options.content)
    total = sum(len(requests) for requests in manifests)
    distinct = len({request.text for requests in manifests for request in requests})
    print(
        f"fleet: {options.content} content x {total // max(options.content, 1)} requests "
        f"({total} requests, {distinct} distinct) on {len(servers)} servers x "
        f"{min(len(s.integrations or ()) for s in servers)}-"
        f"{max(len(s.integrations or ()) for s in servers)} integrations"
    )

    started = time.perf_counter()
    fast: list[Outcome] = []
    for view in servers:
        matcher = ServerMatcher(view)
        for requests in manifests:
            for result in matcher.resolve_all(requests, "auto"):
                closest = result.closest.guid if result.closest is not None else None
                fast.append((result.status, tuple(c.guid for c in result.candidates), closest))
    fast_seconds = time.perf_counter() - started

    started = time.perf_counter()
    slow: list[Outcome] = []
    for view in servers:
        items = view.integrations or ()
        for requests in manifests:
            blocked = gate_reason(view, "auto", len(requests))
            for request in requests:
                if blocked is not None and request.problem is None:
                    slow.append(("unsupported", (), None))
                else:
                    slow.append(plain_resolve(request, items))
    slow_seconds = time.perf_counter() - started

    if fast != slow:
        wrong = sum(a != b for a, b in zip(fast, slow, strict=True))
        print(f"DISAGREEMENT: {wrong} of {len(fast)} resolutions differ", file=sys.stderr)
        return 1
    statuses = Counter(status for status, _, _ in fast)
    print("outcomes: " + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())))
    print(f"ServerMatcher: {fast_seconds:8.3f} s  ({len(fast)} resolutions)")
    print(f"plain loop:    {slow_seconds:8.3f} s")
    print(f"speed-up:      {slow_seconds / fast_seconds:8.1f}x (answers identical)")

    # The same work with every repeat removed, so the memory cannot help: what the
    # indexes and the shared pattern evaluations are worth on their own.
    unique = list({r.text: r for requests in manifests for r in requests}.values())
    started = time.perf_counter()
    fast_unique: list[Resolution] = []
    for view in servers:
        matcher = ServerMatcher(view)
        fast_unique.extend(matcher.resolve(request) for request in unique)
    fast_unique_seconds = time.perf_counter() - started
    started = time.perf_counter()
    slow_unique = [plain_resolve(r, view.integrations or ()) for view in servers for r in unique]
    slow_unique_seconds = time.perf_counter() - started
    agree = all(
        (a.status, tuple(c.guid for c in a.candidates), a.closest.guid if a.closest else None) == b
        for a, b in zip(fast_unique, slow_unique, strict=True)
    )
    if not agree:
        print("DISAGREEMENT on the distinct requests", file=sys.stderr)
        return 1
    print(
        f"distinct only: {fast_unique_seconds:8.3f} s against {slow_unique_seconds:.3f} s "
        f"({len(slow_unique)} resolutions), "
        f"{slow_unique_seconds / fast_unique_seconds:.1f}x without repeats"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
