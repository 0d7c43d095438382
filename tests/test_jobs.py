"""The job file: parsing, every error message, loading from disk, narrowing."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.errors import JobError
from batch_deploy.jobs import (
    ContentSpec,
    Job,
    RunSettings,
    ServerSpec,
    content_name_from_dir,
    is_valid_content_name,
    load_job,
    narrow_job,
    parse_job,
)
from batch_deploy.sandbox.options import SandboxOptions

SOURCE = Path("jobs.toml")
KEY = "Zq9sEcretKeyValue0123456789abcd"  # must never show up anywhere
ENV = {"PROD_KEY": KEY, "STAGING_KEY": "another-secret-value"}
GUID = "8c3f1e2a-0b4d-4c6e-9f10-123456789abc"
GUID2 = "11111111-2222-4333-8444-555555555555"

PROD = '[servers.prod]\nurl = "https://connect.example.com"\napi_key_env = "PROD_KEY"\n'
STAGING = '[servers.staging]\nurl = "https://staging.example.com"\napi_key_env = "STAGING_KEY"\n'
APP = '[[content]]\ndir = "content/app"\n'

Glob = Callable[[str], list[str]]


def folder() -> Path:
    return SOURCE.parent.absolute()


def parse(text: str, env: Mapping[str, str] = ENV, glob: Glob | None = None) -> Job:
    return parse_job(text, SOURCE, env, glob)


def problems(text: str, env: Mapping[str, str] = ENV, glob: Glob | None = None) -> list[str]:
    with pytest.raises(JobError) as info:
        parse_job(text, SOURCE, env, glob)
    found = list(info.value.problems)
    assert str(info.value) == "\n".join(found)
    for message in found:
        assert "\n" not in message
        assert KEY not in message
    return found


# ---------------------------------------------------------------------------
# Valid files


def test_defaults_for_a_minimal_file() -> None:
    text = PROD + "\n" + APP
    job = parse(text)
    assert job.source == SOURCE
    assert job.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert job.run == RunSettings(
        report_dir=folder() / "reports",
        concurrency=16,
        per_server=4,
        task_timeout=900.0,
        ambiguous="fail",
        associate="auto",
        skip_unchanged=True,
    )
    assert job.servers == {
        "prod": ServerSpec(
            name="prod",
            url="https://connect.example.com",
            api_key_env="PROD_KEY",
            api_key=KEY,
            ca_bundle=None,
            verify_tls=True,
            version=None,
            sandbox=None,
            sandbox_options=SandboxOptions(),
        )
    }
    assert job.content == (
        ContentSpec(
            dir=folder() / "content" / "app",
            name="app",
            title=None,
            servers=("prod",),
            guids={},
            relative_dir="content/app",
        ),
    )


def test_every_key() -> None:
    text = f"""
[run]
report_dir = "out/reports"
concurrency = 8
per_server = 2
task_timeout = 120.5
ambiguous = "first"
associate = "explicit"
skip_unchanged = false

[servers.prod]
url = "https://connect.example.com/rsconnect/"
api_key_env = "PROD_KEY"
ca_bundle = "certs/corp.pem"
verify_tls = true
version = "2025.09.0"

[servers.staging]
url = "http://staging.example.com:3939"
api_key_env = "STAGING_KEY"
verify_tls = false

[servers.sandbox]
sandbox = "servers/seed.json"
version = "2024.08.0"
sandbox_options = {{ latency = 0.02, task_seconds = 1, error_rate = 0.1, drop_rate = 0.0, \
rate_limit = 50, retry_after = 2, task_failure_rate = 1, sticky_cookies = true, random_seed = 7 }}

[[content]]
dir = "content/sales dashboard"
name = "sales_dashboard"
title = "Sales dashboard"
servers = ["staging", "prod"]
guid = {{ prod = "{GUID.upper()}" }}

[[content]]
glob = "apps/*"
title = "An app"
servers = ["sandbox"]
"""
    seen: list[str] = []

    def fake_glob(pattern: str) -> list[str]:
        seen.append(pattern)
        return [str(folder() / "apps" / "b"), str(folder() / "apps" / "a")]

    job = parse(text, glob=fake_glob)
    assert seen == [str(folder() / "apps" / "*")]
    assert job.run == RunSettings(
        report_dir=folder() / "out" / "reports",
        concurrency=8,
        per_server=2,
        task_timeout=120.5,
        ambiguous="first",
        associate="explicit",
        skip_unchanged=False,
    )
    assert list(job.servers) == ["prod", "staging", "sandbox"]
    assert job.servers["prod"] == ServerSpec(
        name="prod",
        url="https://connect.example.com/rsconnect",
        api_key_env="PROD_KEY",
        api_key=KEY,
        ca_bundle=folder() / "certs" / "corp.pem",
        verify_tls=True,
        version="2025.09.0",
    )
    assert job.servers["staging"] == ServerSpec(
        name="staging",
        url="http://staging.example.com:3939",
        api_key_env="STAGING_KEY",
        api_key="another-secret-value",
        verify_tls=False,
    )
    sandbox = job.servers["sandbox"]
    assert sandbox == ServerSpec(
        name="sandbox",
        version="2024.08.0",
        sandbox=folder() / "servers" / "seed.json",
        sandbox_options=SandboxOptions(
            latency=0.02,
            task_seconds=1.0,
            error_rate=0.1,
            drop_rate=0.0,
            rate_limit=50.0,
            retry_after=2.0,
            task_failure_rate=1.0,
            sticky_cookies=True,
            random_seed=7,
        ),
    )
    assert isinstance(sandbox.sandbox_options.task_seconds, float)
    assert job.content == (
        ContentSpec(
            dir=folder() / "content" / "sales dashboard",
            name="sales_dashboard",
            title="Sales dashboard",
            servers=("staging", "prod"),
            guids={"prod": GUID},
            relative_dir="content/sales dashboard",
        ),
        ContentSpec(
            dir=folder() / "apps" / "a",
            name="a-content",
            title="An app",
            servers=("sandbox",),
            relative_dir="apps/a",
        ),
        ContentSpec(
            dir=folder() / "apps" / "b",
            name="b-content",
            title="An app",
            servers=("sandbox",),
            relative_dir="apps/b",
        ),
    )


def test_paths_resolve_against_the_job_files_folder() -> None:
    text = (
        '[run]\nreport_dir = "../out"\n'
        '[servers.sb]\nsandbox = "./seeds/../seeds/s.json"\n'
        '[[content]]\ndir = "/srv/apps/app/"\n'
        '[[content]]\ndir = "../shared/./tool"\n'
    )
    source = Path("/jobs/nightly/jobs.toml")
    job = parse_job(text, source, {})
    assert job.source == source
    assert job.run.report_dir == Path("/jobs/out")
    assert job.servers["sb"].sandbox == Path("/jobs/nightly/seeds/s.json")
    assert [c.dir for c in job.content] == [Path("/srv/apps/app"), Path("/jobs/shared/tool")]
    assert [c.relative_dir for c in job.content] == ["../../srv/apps/app", "../shared/tool"]
    assert [c.name for c in job.content] == ["app", "tool"]


def test_a_relative_source_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = parse_job(PROD + APP, Path("jobs") / "nightly.toml", ENV)
    assert job.run.report_dir == tmp_path / "jobs" / "reports"
    assert job.content[0].dir == tmp_path / "jobs" / "content" / "app"


def test_content_servers_default_to_every_server_in_file_order() -> None:
    job = parse(STAGING + PROD + '[servers.sb]\nsandbox = "s.json"\n' + APP)
    assert job.content[0].servers == ("staging", "prod", "sb")


def test_url_and_key_values_are_trimmed() -> None:
    text = PROD.replace('"https://connect.example.com"', '"  https://h.example//  "') + APP
    job = parse(text, {"PROD_KEY": f"  {KEY}\n"})
    assert job.servers["prod"].url == "https://h.example"
    assert job.servers["prod"].api_key == KEY


def test_a_sandbox_server_may_name_a_key_variable() -> None:
    job = parse('[servers.sb]\nsandbox = "s.json"\napi_key_env = "PROD_KEY"\n' + APP)
    assert job.servers["sb"].api_key == KEY
    assert job.servers["sb"].url is None


def test_glob_matches_become_sorted_deduplicated_entries() -> None:
    def fake_glob(pattern: str) -> list[str]:
        assert pattern == str(folder() / "apps" / "*")
        return [
            str(folder() / "apps" / "zeta"),
            str(folder() / "apps" / "alpha"),
            str(folder() / "apps" / "alpha") + "/",
            "apps/mid",  # a relative answer still resolves against the job folder
        ]

    job = parse(PROD + '[[content]]\nglob = "apps/*"\n', glob=fake_glob)
    assert [c.name for c in job.content] == ["alpha", "mid", "zeta"]
    assert [c.relative_dir for c in job.content] == ["apps/alpha", "apps/mid", "apps/zeta"]
    assert all(c.servers == ("prod",) and c.title is None for c in job.content)


def test_glob_pattern_escapes_the_job_folder_and_keeps_absolute_patterns() -> None:
    seen: list[str] = []

    def fake_glob(pattern: str) -> list[str]:
        seen.append(pattern)
        return ["/data/x"]

    text = '[servers.sb]\nsandbox = "s.json"\n[[content]]\nglob = "a*"\n'
    parse_job(text, Path("/jobs/[weird]/jobs.toml"), {}, fake_glob)
    parse_job(text.replace('"a*"', '"/data/*"'), Path("/jobs/jobs.toml"), {}, fake_glob)
    assert seen == ["/jobs/[[]weird]/a*", "/data/*"]


def test_a_byte_order_mark_is_accepted_and_hashed() -> None:
    text = "\ufeff" + PROD + APP
    job = parse(text)
    assert job.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_api_key_never_shows_in_a_repr() -> None:
    job = parse(PROD + APP)
    assert job.servers["prod"].api_key == KEY
    assert KEY not in repr(job)
    assert KEY not in str(job)
    assert KEY not in repr(job.servers["prod"])


# ---------------------------------------------------------------------------
# Errors: [run]

RUN_ALLOWED = (
    "report_dir, concurrency, per_server, task_timeout, ambiguous, associate, skip_unchanged"
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("report_dir = 5", 'run.report_dir: expected a folder path like "reports", got 5'),
        ('report_dir = ""', 'run.report_dir: expected a folder path like "reports", got ""'),
        ("concurrency = true", "run.concurrency: expected a positive integer like 16, got true"),
        ("concurrency = 0", "run.concurrency: expected a positive integer like 16, got 0"),
        ("concurrency = 1.5", "run.concurrency: expected a positive integer like 16, got 1.5"),
        ('per_server = "4"', 'run.per_server: expected a positive integer like 4, got "4"'),
        ("per_server = -1", "run.per_server: expected a positive integer like 4, got -1"),
        ("per_server = [4]", "run.per_server: expected a positive integer like 4, got an array"),
        (
            "task_timeout = false",
            "run.task_timeout: expected a positive number of seconds like 900, got false",
        ),
        (
            "task_timeout = 0",
            "run.task_timeout: expected a positive number of seconds like 900, got 0",
        ),
        (
            "task_timeout = inf",
            "run.task_timeout: expected a positive number of seconds like 900, got inf",
        ),
        (
            "task_timeout = nan",
            "run.task_timeout: expected a positive number of seconds like 900, got nan",
        ),
        (
            "task_timeout = 1979-05-27",
            "run.task_timeout: expected a positive number of seconds like 900, got a date/time",
        ),
        ('ambiguous = "all"', 'run.ambiguous: expected "fail" or "first", got "all"'),
        ("associate = 1", 'run.associate: expected "auto", "server" or "explicit", got 1'),
        ('skip_unchanged = "yes"', 'run.skip_unchanged: expected true or false, got "yes"'),
        (
            "concurency = 4",
            f'run.concurency: unknown key; did you mean "concurrency"? (allowed: {RUN_ALLOWED})',
        ),
        ('colour = "red"', f"run.colour: unknown key; remove it or use one of: {RUN_ALLOWED}"),
    ],
)
def test_run_errors(line: str, message: str) -> None:
    assert problems(f"[run]\n{line}\n\n{PROD}\n{APP}") == [f"jobs.toml:2: {message}"]


def test_run_must_be_a_table() -> None:
    assert problems(f"run = 3\n{PROD}{APP}") == [
        "jobs.toml:1: run: expected a table like [run], got 3"
    ]


def test_unknown_top_level_keys_with_and_without_a_suggestion() -> None:
    assert problems(f"sever = 1\nzzz = 2\n{PROD}{APP}") == [
        'jobs.toml:1: sever: unknown key; did you mean "servers"? (allowed: run, servers, content)',
        "jobs.toml:2: zzz: unknown key; remove it or use one of: run, servers, content",
    ]


# ---------------------------------------------------------------------------
# Errors: [servers.NAME]

SERVER_ALLOWED = "url, api_key_env, ca_bundle, verify_tls, version, sandbox, sandbox_options"
URL_WANTED = 'expected an http or https URL with a host like "https://connect.example.com"'
OPTIONS_ALLOWED = (
    "latency, task_seconds, error_rate, drop_rate, rate_limit, retry_after, "
    "task_failure_rate, sticky_cookies, random_seed"
)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            'url = 42\napi_key_env = "PROD_KEY"',
            'jobs.toml:2: servers.prod.url: expected a string like "https://connect.example.com", '
            "got 42",
        ),
        (
            'url = "connect.example.com"\napi_key_env = "PROD_KEY"',
            f'jobs.toml:2: servers.prod.url: {URL_WANTED}, got "connect.example.com"',
        ),
        (
            'url = "ftp://connect.example.com"\napi_key_env = "PROD_KEY"',
            f'jobs.toml:2: servers.prod.url: {URL_WANTED}, got "ftp://connect.example.com"',
        ),
        (
            'url = "https://"\napi_key_env = "PROD_KEY"',
            f'jobs.toml:2: servers.prod.url: {URL_WANTED}, got "https://"',
        ),
        (
            'url = "https://h.example:99999"\napi_key_env = "PROD_KEY"',
            f'jobs.toml:2: servers.prod.url: {URL_WANTED}, got "https://h.example:99999"',
        ),
        (
            'url = "https://admin:hunter2@h.example"\napi_key_env = "PROD_KEY"',
            "jobs.toml:2: servers.prod.url: must not contain a user name or password; "
            "put the API key in the variable named by api_key_env",
        ),
        (
            'url = "https://h.example/?token=hunter2"\napi_key_env = "PROD_KEY"',
            'jobs.toml:2: servers.prod.url: must not have a "?" query or "#" fragment; '
            'use an address like "https://connect.example.com"',
        ),
        (
            'url = "https://h.example"\nsandbox = "s.json"\napi_key_env = "PROD_KEY"',
            "jobs.toml:1: servers.prod: has both url and sandbox; keep url for a real Connect "
            "server or sandbox for an embedded one",
        ),
        (
            "verify_tls = true",
            "jobs.toml:1: servers.prod: has neither url nor sandbox; add url = "
            '"https://connect.example.com" with api_key_env, or sandbox = "seed.json"',
        ),
        (
            'url = "https://h.example"',
            'jobs.toml:1: servers.prod: missing api_key_env; add api_key_env = '
            '"PROD_CONNECT_API_KEY" and export that variable with the server\'s API key',
        ),
        (
            'url = "https://h.example"\napi_key_env = 5',
            'jobs.toml:3: servers.prod.api_key_env: expected an environment variable name like '
            '"PROD_CONNECT_API_KEY", got 5',
        ),
        (
            'url = "https://h.example"\napi_key_env = "1 hunter2"',
            'jobs.toml:3: servers.prod.api_key_env: expected an environment variable name like '
            '"PROD_CONNECT_API_KEY" (letters, digits and "_", not starting with a digit), '
            "got a string that is not one",
        ),
        (
            'url = "https://h.example"\napi_key_env = "MISSING_KEY"',
            "jobs.toml:3: servers.prod.api_key_env: environment variable MISSING_KEY is not set; "
            "export MISSING_KEY=<API key> first",
        ),
        (
            'url = "https://h.example"\napi_key_env = "EMPTY_KEY"',
            "jobs.toml:3: servers.prod.api_key_env: environment variable EMPTY_KEY is empty; "
            "export EMPTY_KEY=<API key> first",
        ),
        (
            'url = "https://h.example"\napi_key_env = "BLANK_KEY"',
            "jobs.toml:3: servers.prod.api_key_env: environment variable BLANK_KEY is empty; "
            "export BLANK_KEY=<API key> first",
        ),
        (
            'url = "https://h.example"\napi_key_env = "PROD_KEY"\nca_bundle = 1',
            'jobs.toml:4: servers.prod.ca_bundle: expected a PEM file path like "ca.pem", got 1',
        ),
        (
            'url = "https://h.example"\napi_key_env = "PROD_KEY"\nverify_tls = "no"',
            'jobs.toml:4: servers.prod.verify_tls: expected true or false, got "no"',
        ),
        (
            'url = "https://h.example"\napi_key_env = "PROD_KEY"\nca_bundle = "ca.pem"\n'
            "verify_tls = false",
            "jobs.toml:4: servers.prod.ca_bundle: has no effect with verify_tls = false; "
            "remove one of the two",
        ),
        (
            'sandbox = "s.json"\nca_bundle = "ca.pem"',
            "jobs.toml:3: servers.prod.ca_bundle: only applies to url servers; "
            "remove it from this sandbox server",
        ),
        (
            'sandbox = "s.json"\nverify_tls = false',
            "jobs.toml:3: servers.prod.verify_tls: only applies to url servers; "
            "remove it from this sandbox server",
        ),
        (
            'sandbox = "s.json"\nversion = "abc"',
            'jobs.toml:3: servers.prod.version: expected a Connect version like "2025.09.0", '
            'got "abc"',
        ),
        (
            'sandbox = "s.json"\nversion = 2025',
            'jobs.toml:3: servers.prod.version: expected a Connect version like "2025.09.0", '
            "got 2025",
        ),
        (
            'sandbox = "s.json"\nversion = " "',
            'jobs.toml:3: servers.prod.version: expected a Connect version like "2025.09.0", '
            'got " "',
        ),
        (
            'sandbox = "s.json"\nversion = "2025.13.0"',
            'jobs.toml:3: servers.prod.version: expected a Connect version like "2025.09.0", '
            'got "2025.13.0"',
        ),
        (
            'sandbox = ""',
            'jobs.toml:2: servers.prod.sandbox: expected a seed file path like "seed.json", got ""',
        ),
        (
            "sandbox = 3",
            'jobs.toml:2: servers.prod.sandbox: expected a seed file path like "seed.json", got 3',
        ),
        (
            'url = "https://h.example"\napi_key_env = "PROD_KEY"\nsandbox_options = {}',
            "jobs.toml:4: servers.prod.sandbox_options: only applies to sandbox servers; "
            "remove it or replace url with sandbox",
        ),
        (
            'sandbox = "s.json"\nsandbox_options = 3',
            "jobs.toml:3: servers.prod.sandbox_options: expected a table like "
            "{ latency = 0.02, task_seconds = 0.5 }, got 3",
        ),
        (
            'urll = "https://h.example"\nsandbox = "s.json"',
            'jobs.toml:2: servers.prod.urll: unknown key; did you mean "url"? '
            f"(allowed: {SERVER_ALLOWED})",
        ),
        (
            'sandbox = "s.json"\ncolour = 1',
            f"jobs.toml:3: servers.prod.colour: unknown key; remove it or use one of: "
            f"{SERVER_ALLOWED}",
        ),
    ],
)
def test_server_errors(lines: str, message: str) -> None:
    env = {**ENV, "EMPTY_KEY": "", "BLANK_KEY": "  \n"}
    assert problems(f"[servers.prod]\n{lines}\n\n{APP}", env) == [message]


def test_secrets_in_a_url_are_not_echoed() -> None:
    for url in ("https://admin:hunter2@h.example", "https://h.example/#hunter2"):
        found = problems(f'[servers.prod]\nurl = "{url}"\napi_key_env = "PROD_KEY"\n{APP}')
        assert len(found) == 1
        assert "hunter2" not in found[0]


def test_a_key_pasted_into_api_key_env_is_not_echoed() -> None:
    found = problems(f'[servers.prod]\nurl = "https://h.example"\napi_key_env = "{KEY}"\n{APP}')
    assert found == [
        "jobs.toml:3: servers.prod.api_key_env: looks like an API key, not the name of a variable "
        "holding one; export the key as PROD_CONNECT_API_KEY and write "
        'api_key_env = "PROD_CONNECT_API_KEY"'
    ]


def test_a_key_like_variable_name_that_is_set_is_accepted() -> None:
    job = parse(f'[servers.prod]\nurl = "https://h.example"\napi_key_env = "{KEY}"\n{APP}', {
        KEY: "the-real-key"
    })
    assert job.servers["prod"].api_key == "the-real-key"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("latency = -1", "latency: expected a number >= 0 like 0.5, got -1"),
        ('latency = "1"', 'latency: expected a number >= 0 like 0.5, got "1"'),
        ("latency = true", "latency: expected a number >= 0 like 0.5, got true"),
        ("task_seconds = inf", "task_seconds: expected a number >= 0 like 0.5, got inf"),
        ("retry_after = -0.5", "retry_after: expected a number >= 0 like 0.5, got -0.5"),
        ("rate_limit = nan", "rate_limit: expected a number >= 0 like 0.5, got nan"),
        ("error_rate = 1.5", "error_rate: expected a number from 0 to 1 like 0.1, got 1.5"),
        ("drop_rate = -0.1", "drop_rate: expected a number from 0 to 1 like 0.1, got -0.1"),
        (
            "task_failure_rate = false",
            "task_failure_rate: expected a number from 0 to 1 like 0.1, got false",
        ),
        ("sticky_cookies = 1", "sticky_cookies: expected true or false, got 1"),
        ("random_seed = 1.5", "random_seed: expected a whole number like 1, got 1.5"),
        ("random_seed = true", "random_seed: expected a whole number like 1, got true"),
        (
            "latncy = 0.1",
            f'latncy: unknown key; did you mean "latency"? (allowed: {OPTIONS_ALLOWED})',
        ),
        ("speed = 2", f"speed: unknown key; remove it or use one of: {OPTIONS_ALLOWED}"),
    ],
)
def test_sandbox_option_errors(option: str, message: str) -> None:
    text = f'[servers.sb]\nsandbox = "s.json"\n[servers.sb.sandbox_options]\n{option}\n{APP}'
    assert problems(text) == [f"jobs.toml:4: servers.sb.sandbox_options.{message}"]


def test_sandbox_option_bounds_are_inclusive() -> None:
    text = (
        '[servers.sb]\nsandbox = "s.json"\n'
        "sandbox_options = { error_rate = 0, drop_rate = 1, latency = 0, random_seed = -3 }\n"
        + APP
    )
    options = parse(text).servers["sb"].sandbox_options
    assert options == SandboxOptions(error_rate=0.0, drop_rate=1.0, latency=0.0, random_seed=-3)


def test_server_table_errors() -> None:
    assert problems(f'[servers."my prod"]\nsandbox = "s.json"\n{APP}') == [
        'jobs.toml:1: servers."my prod": invalid server name; '
        'use only ASCII letters, digits, "_" and "-"'
    ]
    assert problems(f'[servers]\nprod = "x"\n{APP}') == [
        'jobs.toml:2: servers.prod: expected a table like [servers.prod] with url or sandbox, '
        'got "x"'
    ]
    assert problems(f"servers = 3\n{APP}") == [
        "jobs.toml:1: servers: expected tables like [servers.prod], got 3"
    ]


def test_no_server() -> None:
    message = (
        "servers: no server is defined; add one like [servers.prod] with url and api_key_env, "
        'or with sandbox = "seed.json"'
    )
    assert problems(APP) == [f"jobs.toml: {message}"]
    assert problems(f"[servers]\n{APP}") == [f"jobs.toml:1: {message}"]


# ---------------------------------------------------------------------------
# Errors: [[content]]

CONTENT_ALLOWED = "dir, glob, name, title, servers, guid"
TWO_SERVERS = PROD + STAGING  # six lines; the first [[content]] starts on line 7


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            'dir = "a"\nglob = "b/*"',
            "jobs.toml:7: content[0]: has both dir and glob; keep one "
            "(a glob makes one entry per folder)",
        ),
        (
            'title = "t"',
            'jobs.toml:7: content[0]: has neither dir nor glob; add dir = "content/app" '
            'or glob = "apps/*"',
        ),
        (
            "dir = 3",
            'jobs.toml:8: content[0].dir: expected a folder path like "content/app", got 3',
        ),
        (
            'dir = ""',
            'jobs.toml:8: content[0].dir: expected a folder path like "content/app", got ""',
        ),
        (
            "glob = 3",
            'jobs.toml:8: content[0].glob: expected a folder pattern like "apps/*", got 3',
        ),
        (
            'glob = "apps/*"',
            "jobs.toml:8: content[0].glob: cannot be expanded without the filesystem; "
            "load the job with load_job or pass glob= to parse_job",
        ),
        (
            'dir = "a"\nname = "ab"',
            'jobs.toml:9: content[0].name: expected 3 to 64 ASCII letters, digits, "_" or "-", '
            'got "ab"',
        ),
        (
            'dir = "a"\nname = "sales dashboard"',
            'jobs.toml:9: content[0].name: expected 3 to 64 ASCII letters, digits, "_" or "-", '
            'got "sales dashboard"',
        ),
        (
            'dir = "a"\nname = 5',
            'jobs.toml:9: content[0].name: expected 3 to 64 ASCII letters, digits, "_" or "-", '
            "got 5",
        ),
        (
            'dir = "a"\ntitle = ""',
            'jobs.toml:9: content[0].title: expected a non-empty title like "Sales dashboard", '
            'got ""',
        ),
        (
            'dir = "a"\ntitle = 3',
            'jobs.toml:9: content[0].title: expected a non-empty title like "Sales dashboard", '
            "got 3",
        ),
        (
            'dir = "a"\nservers = "prod"',
            "jobs.toml:9: content[0].servers: expected an array of server names like "
            '["staging", "prod"], got "prod"',
        ),
        (
            'dir = "a"\nservers = []',
            "jobs.toml:9: content[0].servers: expected an array of server names like "
            '["staging", "prod"], got an empty array',
        ),
        (
            'dir = "a"\nservers = ["prd"]',
            'jobs.toml:9: content[0].servers: "prd" is not a defined server; did you mean "prod"? '
            "(defined: prod, staging)",
        ),
        (
            'dir = "a"\nservers = ["zzz"]',
            'jobs.toml:9: content[0].servers: "zzz" is not a defined server; define it under '
            "[servers] or use one of: prod, staging",
        ),
        (
            'dir = "a"\nservers = ["prod", "prod"]',
            'jobs.toml:9: content[0].servers: lists "prod" twice; list each server once',
        ),
        (
            'dir = "a"\nservers = ["prod", 3]',
            "jobs.toml:9: content[0].servers[1]: expected a server name string, got 3",
        ),
        (
            'dir = "a"\nguid = "x"',
            "jobs.toml:9: content[0].guid: expected a table of server = content GUID like "
            '{ prod = "8c3f1e2a-0b4d-4c6e-9f10-123456789abc" }, got "x"',
        ),
        (
            f'dir = "a"\nguid = {{ prd = "{GUID}" }}',
            'jobs.toml:9: content[0].guid.prd: "prd" is not a defined server; '
            'did you mean "prod"? (defined: prod, staging)',
        ),
        (
            f'dir = "a"\nservers = ["staging"]\nguid.prod = "{GUID}"',
            'jobs.toml:10: content[0].guid.prod: this entry does not deploy to "prod"; '
            "add it to servers or remove this guid",
        ),
        (
            'dir = "a"\nguid.prod = "8c3f"',
            'jobs.toml:9: content[0].guid.prod: expected a content GUID like '
            '"8c3f1e2a-0b4d-4c6e-9f10-123456789abc", got "8c3f"',
        ),
        (
            f'glob = "apps/*"\nguid = {{ prod = "{GUID}" }}',
            "jobs.toml:9: content[0].guid: only applies to a dir entry (a glob makes several "
            "items); remove it or list that folder as its own dir entry",
        ),
        (
            'glob = "apps/*"\nname = "apps"',
            "jobs.toml:9: content[0].name: only applies to a dir entry (a glob makes several "
            "items); remove it or list that folder as its own dir entry",
        ),
        (
            'dir = "a"\ntitel = "x"',
            'jobs.toml:9: content[0].titel: unknown key; did you mean "title"? '
            f"(allowed: {CONTENT_ALLOWED})",
        ),
    ],
)
def test_content_errors(lines: str, message: str) -> None:
    def fake_glob(pattern: str) -> list[str]:
        return ["apps/one"]

    glob = None if "cannot be expanded" in message else fake_glob
    assert problems(f"{TWO_SERVERS}[[content]]\n{lines}\n", glob=glob) == [message]


def test_a_glob_matching_nothing() -> None:
    assert problems(f'{PROD}[[content]]\nglob = "apps/*"\n', glob=lambda _: []) == [
        'jobs.toml:5: content[0].glob: "apps/*" matches no folder; check the pattern, '
        "which is relative to the job file's folder"
    ]


def test_two_entries_for_one_folder() -> None:
    text = f'{PROD}{APP}[[content]]\ndir = "./content/x/../app/"\nname = "other"\n'
    assert problems(text) == [
        'jobs.toml:7: content[1].dir: folder "./content/x/../app/" is already deployed by '
        "content[0]; remove one of the two entries"
    ]


def test_a_glob_overlapping_a_dir_entry() -> None:
    text = f'{PROD}[[content]]\ndir = "apps/a"\nname = "special"\n[[content]]\nglob = "apps/*"\n'
    found = problems(text, glob=lambda _: ["apps/a", "apps/b"])
    assert found == [
        'jobs.toml:8: content[1].glob: folder "apps/a" is already deployed by content[0]; '
        "remove one of the two entries"
    ]


def test_two_entries_with_one_name() -> None:
    text = f'{PROD}[[content]]\ndir = "x/app"\n[[content]]\ndir = "y"\nname = "app"\n'
    assert problems(text) == [
        'jobs.toml:8: content[1].name: name "app" is also used by content[0] (folder "x/app"); '
        'give one of them its own name = "..." in a dir entry'
    ]


def test_two_folders_whose_default_names_collide() -> None:
    text = f'{PROD}[[content]]\ndir = "a b"\n[[content]]\ndir = "a-b"\n'
    assert problems(text) == [
        'jobs.toml:7: content[1].dir: name "a-b" is also used by content[0] (folder "a b"); '
        'give one of them its own name = "..." in a dir entry'
    ]


def test_two_entries_redeploying_one_item() -> None:
    text = (
        f'{PROD}[[content]]\ndir = "a1"\nguid.prod = "{GUID}"\n'
        f'[[content]]\ndir = "b1"\nguid.prod = "{GUID.upper()}"\n'
    )
    assert problems(text) == [
        "jobs.toml:9: content[1].guid.prod: is also content[0]'s guid on \"prod\"; "
        "give each entry its own content item"
    ]


def test_content_shape_errors() -> None:
    assert problems(f"content = 3\n{PROD}") == [
        "jobs.toml:1: content: expected [[content]] entries (note the double brackets), got 3"
    ]
    assert problems(f'{PROD}[content]\ndir = "a"\n') == [
        "jobs.toml:4: content: expected [[content]] entries (note the double brackets), "
        "got a table"
    ]
    assert problems(f'content = ["a", {{ dir = "b" }}]\n{PROD}') == [
        'jobs.toml:1: content[0]: expected a table with dir or glob like { dir = "content/app" }, '
        'got "a"'
    ]


def test_no_content() -> None:
    message = 'content: no content entry; add one like [[content]] with dir = "content/app"'
    assert problems(PROD) == [f"jobs.toml: {message}"]
    assert problems(f"content = []\n{PROD}") == [f"jobs.toml:1: {message}"]


# ---------------------------------------------------------------------------
# Errors: syntax, lines, several at once


def test_toml_syntax_error_keeps_line_and_column() -> None:
    assert problems("[run]\nconcurrency = = 3\n") == [
        "jobs.toml:2:15: invalid TOML: Invalid value; fix the syntax there"
    ]
    assert problems(f"{PROD}[servers.prod]\n") == [
        "jobs.toml:4:14: invalid TOML: Cannot declare ('servers', 'prod') twice; "
        "fix the syntax there"
    ]


def test_toml_syntax_error_at_the_end_of_the_document() -> None:
    assert problems("[run]\nconcurrency = ") == [
        "jobs.toml:2:15: invalid TOML: Invalid value; fix the syntax there"
    ]


def test_many_problems_are_reported_together_in_file_order() -> None:
    text = """\
[run]
ambigous = "first"
concurrency = 0

[servers.prod]
url = "ftp://x"
api_key_env = "NOPE"

[servers.sb]
sandbox = "s.json"
sandbox_options = { latency = -1 }

[[content]]
servers = ["prd"]

[[content]]
dir = "a"
name = "x"
"""
    assert problems(text) == [
        'jobs.toml:2: run.ambigous: unknown key; did you mean "ambiguous"? '
        f"(allowed: {RUN_ALLOWED})",
        "jobs.toml:3: run.concurrency: expected a positive integer like 16, got 0",
        f'jobs.toml:6: servers.prod.url: {URL_WANTED}, got "ftp://x"',
        "jobs.toml:7: servers.prod.api_key_env: environment variable NOPE is not set; "
        "export NOPE=<API key> first",
        "jobs.toml:11: servers.sb.sandbox_options.latency: expected a number >= 0 like 0.5, "
        "got -1",
        'jobs.toml:13: content[0]: has neither dir nor glob; add dir = "content/app" '
        'or glob = "apps/*"',
        'jobs.toml:14: content[0].servers: "prd" is not a defined server; did you mean "prod"? '
        "(defined: prod, sb)",
        'jobs.toml:18: content[1].name: expected 3 to 64 ASCII letters, digits, "_" or "-", '
        'got "x"',
    ]


def test_lines_skip_strings_comments_and_inline_values() -> None:
    text = PROD + "\n" + (
        '[[content]]  # the first one; "quoted" [[content]] here is a comment\n'
        'dir = "a"\n'
        'title = """\n'
        "[[content]]\n"
        "concurrency = \'\'\' not a key either\n"
        '"""\n'
        "[[content]]\n"
        'dir = "b"\n'
        'title = """no \\""" key [x] here"""" # a "[" in a comment\n'
        "servers = [\n"
        '  "prod",\n'
        '  "zzz",\n'
        "]\n"
        "[[content]]\n"
        'dir = "c"\n'
        "title = 'say \"hi'\n"
        'guid = { prod = "nope" }\n'
    )
    assert problems(text) == [
        'jobs.toml:14: content[1].servers: "zzz" is not a defined server; define it under '
        "[servers] or use one of: prod",
        "jobs.toml:21: content[2].guid.prod: expected a content GUID like "
        '"8c3f1e2a-0b4d-4c6e-9f10-123456789abc", got "nope"',
    ]


def test_lines_for_dotted_and_quoted_keys() -> None:
    text = (
        "[servers]\n"
        'prod.url = "https://h.example"\n'
        '"prod".api_key_env = "NOPE"\n'
        "'sb' = { sandbox = 's.json', version = 'x' }\n"
        + APP
    )
    assert problems(text) == [
        "jobs.toml:3: servers.prod.api_key_env: environment variable NOPE is not set; "
        "export NOPE=<API key> first",
        'jobs.toml:4: servers.sb.version: expected a Connect version like "2025.09.0", got "x"',
    ]


def test_a_long_value_is_shortened_in_messages() -> None:
    found = problems(f'[run]\nambiguous = "{"x" * 100}"\n{PROD}{APP}')
    assert found == [f'jobs.toml:2: run.ambiguous: expected "fail" or "first", got "{"x" * 57}..."']


# ---------------------------------------------------------------------------
# Content names


def test_content_name_examples() -> None:
    assert content_name_from_dir("sales-dashboard") == "sales-dashboard"
    assert content_name_from_dir("Sales Dashboard (v2)") == "Sales-Dashboard-v2"
    assert content_name_from_dir("café_crème") == "cafe_creme"
    assert content_name_from_dir("--a  b--") == "a-b"
    assert content_name_from_dir("R") == "R-content"
    assert content_name_from_dir("") == "content"
    assert content_name_from_dir("日本") == "content"
    assert content_name_from_dir("a" * 70) == "a" * 64
    assert content_name_from_dir("a" * 63 + " b") == "a" * 63


def test_valid_content_name_examples() -> None:
    assert is_valid_content_name("abc")
    assert is_valid_content_name("a_b-C9")
    assert is_valid_content_name("-" * 3)
    assert is_valid_content_name("x" * 64)
    assert not is_valid_content_name("ab")
    assert not is_valid_content_name("x" * 65)
    assert not is_valid_content_name("abc\n")
    assert not is_valid_content_name("ábc")
    assert not is_valid_content_name("a.b")


ALLOWED_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


@given(st.text())
def test_derived_names_are_always_valid(basename: str) -> None:
    assert is_valid_content_name(content_name_from_dir(basename))


@given(st.text())
def test_deriving_a_name_twice_changes_nothing(basename: str) -> None:
    once = content_name_from_dir(basename)
    assert content_name_from_dir(once) == once


@given(st.from_regex(r"\A[A-Za-z0-9_]([A-Za-z0-9_]|-(?=[A-Za-z0-9_])){2,63}\Z"))
def test_tidy_names_are_kept_as_they_are(name: str) -> None:
    assert content_name_from_dir(name) == name


@given(st.text(alphabet=string.printable, max_size=60))
def test_no_usable_character_is_lost(basename: str) -> None:
    def usable(text: str) -> str:
        return "".join(ch for ch in text if ch in ALLOWED_CHARS and ch != "-")

    assert usable(content_name_from_dir(basename)).startswith(usable(basename))


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=70))
def test_validity_is_length_and_alphabet(name: str) -> None:
    expected = 3 <= len(name) <= 64 and set(name) <= ALLOWED_CHARS
    assert is_valid_content_name(name) == expected


# ---------------------------------------------------------------------------
# load_job


def write_job(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "jobs.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def test_load_job_expands_globs_to_sorted_folders(tmp_path: Path) -> None:
    for name in ("b", "a", ".hidden"):
        (tmp_path / "apps" / name).mkdir(parents=True)
    (tmp_path / "apps" / "file.txt").write_text("not a folder")
    (tmp_path / "seed.json").write_text("{}")
    (tmp_path / "ca.pem").write_text("pem")
    text = (
        '[servers.sb]\nsandbox = "seed.json"\n'
        '[servers.prod]\nurl = "https://h.example"\napi_key_env = "PROD_KEY"\n'
        'ca_bundle = "ca.pem"\n'
        '[[content]]\nglob = "apps/*"\n'
        '[[content]]\ndir = "missing/app"\n'
    )
    path = write_job(tmp_path, text)
    job = load_job(path, ENV)
    assert job.source == path
    assert [c.dir for c in job.content] == [
        tmp_path / "apps" / "a",
        tmp_path / "apps" / "b",
        tmp_path / "missing" / "app",
    ]
    assert job.servers["sb"].sandbox == tmp_path / "seed.json"
    assert job.servers["prod"].ca_bundle == tmp_path / "ca.pem"
    assert job.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_job_reads_keys_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_KEY", KEY)
    job = load_job(write_job(tmp_path, PROD + APP))
    assert job.servers["prod"].api_key == KEY


def test_load_job_checks_that_seed_and_ca_bundle_exist(tmp_path: Path) -> None:
    text = (
        '[servers.sb]\nsandbox = "seeds/s.json"\n'
        '[servers.prod]\nurl = "https://h.example"\napi_key_env = "NOPE"\n'
        'ca_bundle = "ca.pem"\n'
        '[[content]]\nglob = "apps/*"\n'
    )
    (tmp_path / "ca.pem").mkdir()  # a folder is not a CA bundle
    path = write_job(tmp_path, text)
    with pytest.raises(JobError) as info:
        load_job(path, {})
    assert info.value.problems == (
        f'{path}:2: servers.sb.sandbox: no seed file at "seeds/s.json" '
        f"(looked for {tmp_path / 'seeds' / 's.json'}); check the path, which is relative to "
        "the job file's folder",
        f"{path}:5: servers.prod.api_key_env: environment variable NOPE is not set; "
        "export NOPE=<API key> first",
        f'{path}:6: servers.prod.ca_bundle: no CA bundle at "ca.pem" '
        f"(looked for {tmp_path / 'ca.pem'}); check the path, which is relative to "
        "the job file's folder",
        f'{path}:8: content[0].glob: "apps/*" matches no folder; check the pattern, '
        "which is relative to the job file's folder",
    )


def test_load_job_rejects_non_utf8(tmp_path: Path) -> None:
    path = write_job(tmp_path, b'[run]\nreport_dir = "r\xe9ports"\n')
    with pytest.raises(JobError) as info:
        load_job(path, ENV)
    assert info.value.problems == (
        f"{path}:2: not UTF-8 text (byte 0xe9); save the job file as UTF-8",
    )


def test_load_job_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(JobError) as info:
        load_job(path, ENV)
    assert info.value.problems == (f"{path}: no such job file; check the path",)


def test_load_job_given_a_folder(tmp_path: Path) -> None:
    with pytest.raises(JobError) as info:
        load_job(tmp_path, ENV)
    assert info.value.problems == (
        f"{tmp_path}: is a folder, not a job file; give the .toml file's path",
    )


def test_load_job_with_crlf_and_bom(tmp_path: Path) -> None:
    text = "\ufeff" + (PROD + APP).replace("\n", "\r\n")
    path = write_job(tmp_path, text)
    job = load_job(path, ENV)
    assert job.content[0].dir == tmp_path / "content" / "app"
    assert job.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    broken = write_job(tmp_path, text.replace('dir = "content/app"', "dir = 3"))
    with pytest.raises(JobError) as info:
        load_job(broken, ENV)
    assert info.value.problems == (
        f'{broken}:5: content[0].dir: expected a folder path like "content/app", got 3',
    )


# ---------------------------------------------------------------------------
# narrow_job

WIDE = f"""\
{PROD}{STAGING}[servers.sb]
sandbox = "s.json"

[[content]]
dir = "content/sales"
guid = {{ prod = "{GUID}", staging = "{GUID2}" }}

[[content]]
dir = "content/people"
servers = ["staging"]

[[content]]
dir = "apps/tool"
servers = ["sb", "prod"]
"""


def wide() -> Job:
    return parse(WIDE)


def narrow_problems(job: Job, **options: object) -> list[str]:
    with pytest.raises(JobError) as info:
        narrow_job(job, **options)  # type: ignore[arg-type]
    return list(info.value.problems)


def test_narrow_without_options_changes_nothing() -> None:
    assert narrow_job(wide()) == wide()


def test_narrow_servers() -> None:
    job = narrow_job(wide(), servers=["prod", "sb", "prod"])
    assert list(job.servers) == ["prod", "sb"]
    assert [(c.name, c.servers, dict(c.guids)) for c in job.content] == [
        ("sales", ("prod", "sb"), {"prod": GUID}),
        ("tool", ("sb", "prod"), {}),
    ]


def test_narrow_servers_drops_content_left_without_one() -> None:
    job = narrow_job(wide(), servers=["staging"])
    assert [(c.name, c.servers) for c in job.content] == [
        ("sales", ("staging",)),
        ("people", ("staging",)),
    ]
    assert job.content[0].guids == {"staging": GUID2}


def test_narrow_unknown_server() -> None:
    assert narrow_problems(wide(), servers=["prd", "zzz", "prod"]) == [
        '--server: "prd" is not a server in jobs.toml; did you mean "prod"? '
        "(defined: prod, staging, sb)",
        '--server: "zzz" is not a server in jobs.toml; use one of: prod, staging, sb',
    ]


def test_narrow_content_by_name_or_folder() -> None:
    assert [c.name for c in narrow_job(wide(), content=["sal*"]).content] == ["sales"]
    by_folder = narrow_job(wide(), content=["content/*"]).content
    assert [c.name for c in by_folder] == ["sales", "people"]
    assert [c.name for c in narrow_job(wide(), content=["./apps/*"]).content] == ["tool"]
    picked = narrow_job(wide(), content=["tool", "people", "tool"]).content
    assert [c.name for c in picked] == ["people", "tool"]
    # Case matters, as it does for Connect names and on most filesystems.
    assert narrow_problems(wide(), content=["SALES"]) == [
        '--content: "SALES" matches no content name or folder in jobs.toml; '
        "use a glob matching one of: sales, people, tool"
    ]


def test_narrow_content_without_a_relative_dir_uses_the_job_folder() -> None:
    job = wide()
    bare = replace(job, content=(ContentSpec(folder() / "x" / "thing", "thing", None, ("prod",)),))
    assert [c.name for c in narrow_job(bare, content=["x/*"]).content] == ["thing"]


def test_narrow_to_nothing_is_an_error() -> None:
    assert narrow_problems(wide(), servers=["sb"], content=["people"]) == [
        "--server/--content: no selected content entry deploys to a selected server (sb); "
        "widen the selection"
    ]


def test_narrow_to_a_server_without_content_keeps_the_server() -> None:
    job = parse(f'{PROD}[servers.sb]\nsandbox = "s.json"\n{APP}servers = ["prod"]\n')
    narrowed = narrow_job(job, servers=["sb"])
    assert list(narrowed.servers) == ["sb"]
    assert narrowed.content == ()


def test_narrow_overrides() -> None:
    job = narrow_job(
        wide(), report_dir=Path("elsewhere"), concurrency=3, per_server=1, ambiguous="first"
    )
    assert job.run == RunSettings(
        report_dir=Path.cwd() / "elsewhere",
        concurrency=3,
        per_server=1,
        ambiguous="first",
    )
    assert job.content == wide().content


def test_narrow_override_errors_are_collected() -> None:
    assert narrow_problems(
        wide(), servers=["nope"], content=["none*"], concurrency=0, per_server=True,
        ambiguous="all",
    ) == [
        '--server: "nope" is not a server in jobs.toml; use one of: prod, staging, sb',
        '--content: "none*" matches no content name or folder in jobs.toml; '
        "use a glob matching one of: sales, people, tool",
        "--concurrency: expected a positive integer like 16, got 0",
        "--per-server: expected a positive integer like 4, got true",
        '--ambiguous: expected "fail" or "first", got "all"',
    ]


def test_narrow_lists_at_most_ten_names() -> None:
    text = PROD + "".join(f'[[content]]\ndir = "app{i:02d}"\n' for i in range(12))
    names = ", ".join(f"app{i:02d}" for i in range(10))
    assert narrow_problems(parse(text), content=["zzz"]) == [
        f'--content: "zzz" matches no content name or folder in jobs.toml; '
        f"use a glob matching one of: {names}, ..."
    ]


def test_narrow_never_shows_the_key() -> None:
    job = narrow_job(wide(), servers=["prod"])
    assert job.servers["prod"].api_key == KEY
    assert KEY not in repr(job)


def test_keys_are_required_only_for_the_servers_kept() -> None:
    text = (
        '[servers.staging]\nurl = "https://s.example.com"\napi_key_env = "STAGING_KEY"\n'
        '[servers.prod]\nurl = "https://p.example.com"\napi_key_env = "PROD_KEY"\n'
        '[[content]]\ndir = "app"\n'
    )
    job = parse_job(text, Path("jobs.toml"), {"STAGING_KEY": "k"}, keys_for=["staging"])
    narrowed = narrow_job(job, servers=["staging"])
    assert list(narrowed.servers) == ["staging"]
    assert narrowed.servers["staging"].api_key == "k"
    with pytest.raises(JobError) as error:
        parse_job(text, Path("jobs.toml"), {"STAGING_KEY": "k"}, keys_for=["prod"])
    assert error.value.problems == (
        "jobs.toml:6: servers.prod.api_key_env: environment variable PROD_KEY is not set; "
        "export PROD_KEY=<API key> first",
    )
