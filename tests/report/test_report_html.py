from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from importlib import resources
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_deploy.report import is_web_url, render_html
from batch_deploy.results import DEPLOY_STATUSES, REQUEST_STATUSES, Row, RunResult

from .report_canned import (
    ATTR_BREAKER,
    CANNED,
    FAILED_URL,
    FORMULA,
    JS_URL,
    QUOTED,
    SAFE_URL,
    SCRIPT,
    UNICODE,
)


class Page(HTMLParser):
    """Tags with their attributes, the visible text, and the inline CSS of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.css: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.css if self._in_style else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def links(self) -> list[str]:
        return [attrs["href"] or "" for attrs in self.all("a") if "href" in attrs]


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(CANNED)


@pytest.fixture(scope="module")
def page(html: str) -> Page:
    return Page(html)


def test_the_template_ships_inside_the_package() -> None:
    template = resources.files("batch_deploy.report").joinpath("templates/report.html.j2")
    assert template.is_file()


def test_no_script_anywhere(html: str, page: Page) -> None:
    assert "<script" not in html.lower()
    assert page.all("script") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT in "".join(page.text)


def test_no_event_handler_or_style_attributes(page: Page) -> None:
    for tag, attrs in page.tags:
        for name in attrs:
            assert not name.startswith("on"), (tag, attrs)
            assert name != "style", (tag, attrs)


def test_nothing_is_loaded_from_anywhere(page: Page) -> None:
    for tag, attrs in page.tags:
        assert "src" not in attrs, (tag, attrs)
        assert "srcset" not in attrs, (tag, attrs)
    for tag in ("img", "iframe", "object", "embed", "video", "audio", "form", "base"):
        assert page.all(tag) == []
    links = page.all("link")
    assert links == [{"rel": "icon", "href": "data:,"}]
    css = "".join(page.css)
    assert "url(" not in css
    assert "@import" not in css
    assert "@font-face" not in css


def test_content_security_policy_forbids_scripts_and_fetches(page: Page) -> None:
    policies = [
        attrs["content"]
        for attrs in page.all("meta")
        if attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policies == [
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    ]


def test_only_http_links_and_the_javascript_url_is_text(html: str, page: Page) -> None:
    assert page.links
    for href in page.links:
        assert urlsplit(href).scheme in ("http", "https"), href
    assert JS_URL not in page.links
    assert not any(href.lower().startswith("javascript") for href in page.links)
    assert html.count(">javascript:alert(1)</span>") == 3  # server URL, matrix, request row


def test_attribute_breaking_url_stays_inside_its_attribute(html: str, page: Page) -> None:
    assert ATTR_BREAKER in page.links
    assert 'x&#34;onmouseover=&#34;alert(1)"' in html


def test_dashboard_and_logs_links(page: Page) -> None:
    links = page.links
    assert SAFE_URL in links
    assert "https://connect-staging.example.com" in links  # the server's own URL
    # logs only for the failed deploy: once in the matrix, once in its request row
    assert [href for href in links if href.endswith("/logs")] == [
        "https://connect-staging.example.com/connect/#/apps/77aa/logs"
    ] * 2
    assert FAILED_URL in links
    for attrs in page.all("a"):
        assert attrs["rel"] == "noopener noreferrer"


def test_hostile_and_unicode_values_are_escaped_text(html: str, page: Page) -> None:
    text = "".join(page.text)
    for value in (FORMULA, SCRIPT, QUOTED, UNICODE, 'jobs/<nightly> & "prod".toml'):
        assert value in text
    assert "jobs/&lt;nightly&gt; &amp; &#34;prod&#34;.toml" in html
    assert "keycloak &#34;quotes&#34;" in html


def test_newlines_in_reasons_are_kept_for_pre_wrap(page: Page) -> None:
    text = "".join(page.text)
    assert "fails on name.\nExpected <script>alert(1)</script>, found" in text
    assert "exit code 1:\nModuleNotFoundError" in text


def test_every_status_is_shown_with_a_text_label(page: Page) -> None:
    text = "".join(page.text)
    for status in (*REQUEST_STATUSES, *DEPLOY_STATUSES):
        assert re.search(rf"\b{status}\b", text), status


def test_summary_counts_match(page: Page) -> None:
    text = "".join(page.text)
    assert "Requests (14 rows)" in text
    assert "Deploys (13 content \u00d7 server pairs)" in text


def test_matrix_cells_are_coloured_and_labelled(page: Page) -> None:
    classes = [(attrs.get("class") or "").split() for attrs in page.all("td")]
    cells = [" ".join(c) for c in classes if "cell" in c]
    # 7 contents x 3 servers
    assert len(cells) == 21
    assert sum("absent" in c for c in cells) == 8
    assert sum("tone-bad" in c for c in cells) == 7
    assert sum("tone-warn" in c for c in cells) == 2  # cancelled, drifted deploy
    assert sum("tone-ok" in c for c in cells) == 2
    assert sum("tone-plan" in c for c in cells) == 1
    assert sum("tone-idle" in c for c in cells) == 1


def test_interrupted_banner(html: str) -> None:
    assert "Interrupted: this report lists only what finished" in html
    calm = render_html(replace(CANNED, meta=replace(CANNED.meta, interrupted=False)))
    assert "Interrupted: this report" not in calm
    assert 'class="banner"' not in calm


def test_responsive_and_print_css(page: Page) -> None:
    viewport = [a for a in page.all("meta") if a.get("name") == "viewport"]
    assert viewport == [{"name": "viewport", "content": "width=device-width, initial-scale=1"}]
    css = "".join(page.css)
    assert "@media print" in css
    assert "print-color-adjust: exact" in css
    assert ".scroll { overflow: visible" in css
    regions = [a for a in page.all("div") if a.get("class") == "scroll"]
    assert len(regions) == 3
    assert all(a.get("tabindex") == "0" and a.get("role") == "region" for a in regions)


def test_empty_run_renders() -> None:
    page = Page(render_html(RunResult(meta=replace(CANNED.meta, servers=()), rows=())))
    text = "".join(page.text)
    assert "No content was part of this run." in text
    assert "No request rows were recorded." in text
    assert "No servers were recorded for this run." in text


def test_lone_surrogates_do_not_break_encoding() -> None:
    row = Row(content="bad\ud800", server="s", request_index=0, request="{}", status="matched")
    html = render_html(RunResult(meta=CANNED.meta, rows=(row,)))
    html.encode("utf-8")
    assert "bad\ufffd" in html


@pytest.mark.parametrize(
    "url",
    [
        "https://connect.example.com/connect/#/apps/1",
        "http://127.0.0.1:3939/",
        "HTTPS://EXAMPLE.COM",
        'https://x.example/"onmouseover="a',
    ],
)
def test_web_urls(url: str) -> None:
    assert is_web_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x00javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "javascript://example.com/%0Aalert(1)",
        "JAVASCRIPT://x/%0aalert(1)",
        "ftp://example.com/file",
        "//evil.example/",
        "/connect/#/apps/1",
        "https://",
        "http:/example.com",
        "ht\ttps://example.com",
        "https://exa mple.com",
        "https://example.com/\u202e",
        "https://[::1",
        "file:///etc/passwd",
    ],
)
def test_not_web_urls(url: str) -> None:
    assert not is_web_url(url)


def test_non_strings_are_not_web_urls() -> None:
    assert not is_web_url(None)
    assert not is_web_url(b"https://example.com")


PREFIXES = ["", "http://", "https://", "HTTPS://", "javascript:", "ht\ttp://", "http:", " http://"]


@given(st.sampled_from(PREFIXES), st.text())
def test_accepted_urls_are_http_or_https(prefix: str, rest: str) -> None:
    url = prefix + rest
    if is_web_url(url):
        assert url.lower().startswith(("http://", "https://"))
        assert url.isprintable()
        assert " " not in url


@given(
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9/#?=&%._~-]{0,30}", fullmatch=True),
)
def test_plain_http_urls_are_accepted(scheme: str, host: str, path: str) -> None:
    assert is_web_url(f"{scheme}://{host}/{path}")


def test_matrix_cell_describes_its_requests(page: Page) -> None:
    text = "".join(page.text)
    assert "2 requests matched" in text
    assert "1 request matched" in text
    assert "no integration requests" in text
    rows = (
        Row(content="a", server="s", request_index=0, request="{}", status="matched"),
        Row(content="a", server="s", request_index=1, request="{}", status="unmatched"),
        Row(content="a", server="s", request_index=2, request="{}", status="invalid"),
    )
    mixed = "".join(Page(render_html(RunResult(meta=CANNED.meta, rows=rows))).text)
    assert "request: invalid (2 of 3 not matched)" in mixed


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.5, "0.500 s"),
        (59.9999, "1 min 0.0 s"),
        (119.96, "2 min 0.0 s"),
        (205.377, "3 min 25.4 s"),
        (3725.0, "1 h 2 min 5 s"),
    ],
)
def test_run_duration_is_readable(seconds: float, shown: str) -> None:
    meta = replace(CANNED.meta, finished=CANNED.meta.started + timedelta(seconds=seconds))
    text = "".join(Page(render_html(RunResult(meta=meta, rows=()))).text)
    assert f"Duration{shown}" in text
