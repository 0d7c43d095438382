"""A hand-built RunResult for the report tests.

It holds every request status and every deploy status at least once, and the
hostile values a manifest or a server could send: a spreadsheet formula, a
script tag, quotes, non-ASCII text, a ``javascript:`` dashboard URL, an
attribute-breaking URL, newlines and leading formula characters in reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime

from batch_deploy.results import Row, RunMeta, RunResult, ServerMeta

FORMULA = "=cmd|' /C calc'!A0"
SCRIPT = "<script>alert(1)</script>"
QUOTED = '"quotes"'
UNICODE = "rapport-ünïcødé-数据"
JS_URL = "javascript:alert(1)"
ATTR_BREAKER = 'https://connect.example.com/connect/#/apps/x"onmouseover="alert(1)'
SAFE_URL = "https://connect-staging.example.com/connect/#/apps/5b1e"
FAILED_URL = "https://connect-staging.example.com/connect/#/apps/77aa/"

MATCH_A = '{"integration_type":"snowflake"}'
MATCH_B = '{"auth_type":"Viewer","name":"^Keycloak"}'

STAGING = ServerMeta(
    name="staging",
    url="https://connect-staging.example.com",
    version="2025.09.0",
    integration_count=5,
    user="deployer",
    role="publisher",
)
PROD = ServerMeta(
    name="prod",
    url="https://connect.example.com/",
    version="2025.04.0",
    integration_count=3,
    user="deployer",
    role="administrator",
)
LEGACY = ServerMeta(
    name="legacy",
    url=JS_URL,
    version="",
    integration_count=None,
    error="Cannot connect to legacy (https://legacy.example.com): connection refused; "
    "check the URL and that the server is up.",
)

META = RunMeta(
    command="run",
    tool_version="0.1.0",
    job_file="jobs/<nightly> & \"prod\".toml",
    job_sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    started=datetime(2025, 9, 1, 12, 0, 0, 123456, tzinfo=UTC),
    finished=datetime(2025, 9, 1, 12, 3, 25, 500000, tzinfo=UTC),
    servers=(STAGING, PROD, LEGACY),
    interrupted=True,
)

ROWS: tuple[Row, ...] = (
    # sales-dashboard: two matched requests, deployed on staging; one ambiguous on prod.
    Row(
        content="sales-dashboard",
        server="staging",
        request_index=0,
        request=MATCH_A,
        status="matched",
        integration_guid="5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
        integration_name="Snowflake production",
        integration_type="snowflake",
        auth_type="Viewer",
        candidates=1,
        deploy="deployed",
        content_guid="5b1e0000-0000-4000-8000-000000000001",
        bundle_id="101",
        task_id="t-101",
        associated=(
            "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
            "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
        ),
        drift=False,
        dashboard_url=SAFE_URL,
        duration_s=12.3456,
    ),
    Row(
        content="sales-dashboard",
        server="staging",
        request_index=1,
        request=MATCH_B,
        status="matched",
        integration_guid="9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
        integration_name=f"keycloak {QUOTED}",
        integration_type="custom",
        auth_type="Viewer",
        candidates=1,
        deploy="deployed",
        content_guid="5b1e0000-0000-4000-8000-000000000001",
        bundle_id="101",
        task_id="t-101",
        associated=(
            "5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
            "9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
        ),
        drift=False,
        dashboard_url=SAFE_URL,
        duration_s=12.3456,
    ),
    Row(
        content="sales-dashboard",
        server="prod",
        request_index=0,
        request=MATCH_A,
        status="ambiguous",
        candidates=2,
        reason='2 integrations match: "Snowflake prod" and "Snowflake dev"; '
        "add a name pattern or set ambiguous = \"first\".",
        deploy="blocked",
    ),
    # A formula as the content name: unchanged on staging, skipped on prod.
    Row(
        content=FORMULA,
        server="staging",
        request_index=None,
        request="",
        status="none",
        deploy="unchanged",
        content_guid="c0ffee00-0000-4000-8000-000000000002",
        bundle_id="55",
        associated=(),
        drift=False,
        dashboard_url="https://connect-staging.example.com/connect/#/apps/c0ffee00",
        duration_s=0.4,
    ),
    Row(
        content=FORMULA,
        server="prod",
        request_index=None,
        request="",
        status="none",
        deploy="skipped",
        content_guid="c0ffee00-0000-4000-8000-000000000003",
        bundle_id="56",
    ),
    # A script tag as the content name: unmatched on staging, invalid pattern on prod.
    Row(
        content=SCRIPT,
        server="staging",
        request_index=0,
        request='{"name":"' + SCRIPT.replace('"', '\\"') + '"}',
        status="unmatched",
        candidates=0,
        reason="No integration matches: the closest, \"Snowflake production\", "
        "fails on name.\nExpected <script>alert(1)</script>, found Snowflake production.",
        deploy="blocked",
    ),
    Row(
        content=SCRIPT,
        server="prod",
        request_index=0,
        request='{"name":"(?<=x)"}',
        status="invalid",
        reason="-request 0 field name: RE2 rejects the pattern (?<=x) (look-behind); "
        "rewrite it without look-around.",
        deploy="blocked",
    ),
    # Non-ASCII content name: failed on staging, cancelled on prod.
    Row(
        content=UNICODE,
        server="staging",
        request_index=0,
        request='{"integration_type":"databricks","description":"Données €"}',
        status="matched",
        integration_guid="aa11bb22-cc33-4d44-8e55-ff6600778899",
        integration_name="Databricks — équipe",
        integration_type="databricks",
        auth_type="Service Account",
        candidates=1,
        deploy="failed",
        content_guid="77aa0000-0000-4000-8000-000000000004",
        bundle_id="202",
        task_id="t-202",
        dashboard_url=FAILED_URL,
        error="+Task t-202 failed with exit code 1:\nModuleNotFoundError: No module named 'pandas'"
        "; add it to requirements.txt.",
        duration_s=31.0,
    ),
    Row(
        content=UNICODE,
        server="prod",
        request_index=0,
        request='{"integration_type":"databricks","description":"Données €"}',
        status="matched",
        integration_guid="aa11bb22-cc33-4d44-8e55-ff6600778800",
        integration_name="Databricks",
        integration_type="databricks",
        auth_type="Service Account",
        candidates=1,
        deploy="cancelled",
        error="@Interrupted before the deploy finished.",
    ),
    # quarto-doc: drifted on staging behind a javascript: URL, unsupported on prod,
    # unreachable on legacy.
    Row(
        content="quarto-doc",
        server="staging",
        request_index=0,
        request=MATCH_A,
        status="matched",
        integration_guid="5f0c3f0e-8e6a-4c4f-9d7e-2b1a0c9e7d11",
        integration_name="Snowflake production",
        integration_type="snowflake",
        auth_type="Viewer",
        candidates=1,
        deploy="deployed",
        content_guid="d0c00000-0000-4000-8000-000000000005",
        bundle_id="303",
        task_id="t-303",
        associated=(),
        drift=True,
        dashboard_url=JS_URL,
        duration_s=8.0,
    ),
    Row(
        content="quarto-doc",
        server="prod",
        request_index=0,
        request=MATCH_A,
        status="unsupported",
        reason="\tprod runs Connect 2025.04.0; integration requests need 2025.07.0 or later.",
        deploy="blocked",
    ),
    Row(
        content="quarto-doc",
        server="legacy",
        request_index=0,
        request=MATCH_A,
        status="unreachable",
        reason="legacy could not be asked: connection refused.",
        deploy="blocked",
        error="Cannot connect to legacy (https://legacy.example.com): connection refused; "
        "check the URL and that the server is up.",
    ),
    # A manifest that cannot be used, and an item the plan would deploy.
    Row(
        content="broken-manifest",
        server="staging",
        request_index=None,
        request="",
        status="invalid",
        reason="content/broken-manifest/manifest.json is not valid JSON (line 3, column 5); "
        "fix the file.",
        deploy="blocked",
    ),
    Row(
        content="shiny-app",
        server="staging",
        request_index=0,
        request=MATCH_B,
        status="matched",
        integration_guid="9b2d7a44-1f0e-4e7b-a1c3-6f5e4d3c2b1a",
        integration_name="keycloak integration",
        integration_type="custom",
        auth_type="Viewer",
        candidates=1,
        deploy="planned",
        dashboard_url=ATTR_BREAKER,
    ),
)

CANNED = RunResult(meta=META, rows=ROWS)


def canned_result() -> RunResult:
    return CANNED
