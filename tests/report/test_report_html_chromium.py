"""report.html opened in headless Chromium: no console message, nothing fetched.

Skipped where no Chromium is installed (Debian: ``apt-get install chromium``),
unless ``BATCH_DEPLOY_REQUIRE_BROWSER=1`` (as in CI), where a missing browser fails.
The page is served from 127.0.0.1 so that every request the browser makes is
seen; Chromium's own background traffic is switched off by its flags.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from report_canned import CANNED

from batch_deploy.report import render_html

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("BATCH_DEPLOY_REQUIRE_BROWSER") == "1":
            pytest.fail("BATCH_DEPLOY_REQUIRE_BROWSER=1 but no chromium is on PATH; install it")
        pytest.skip("Chromium is not installed")
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


class Served:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.paths: list[str] = []
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.paths.append(self.path)
                if self.path != "/report.html":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/report.html"


@pytest.fixture
def served() -> Iterator[Served]:
    site = Served(render_html(CANNED).encode("utf-8"))
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(timeout=5)


def test_served_page_logs_nothing_and_fetches_nothing(served: Served, tmp_path: Path) -> None:
    done = chromium(tmp_path / "profile", "--dump-dom", served.url)
    assert console_lines(done.stderr) == []
    assert served.paths == ["/report.html"]
    dom = done.stdout
    assert "<script" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "Content × server" in dom


def test_file_page_logs_nothing(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_bytes(render_html(CANNED).encode("utf-8"))
    done = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert console_lines(done.stderr) == []
    assert "batch_deploy run report" in done.stdout


def test_console_capture_works(tmp_path: Path) -> None:
    # Guards the two tests above: a page that does log must be caught.
    page = tmp_path / "noisy.html"
    page.write_text(
        "<!DOCTYPE html><title>x</title>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
        '<img src="http://127.0.0.1:9/x.png" alt="">',
        encoding="utf-8",
    )
    done = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert any("Content Security Policy" in line for line in console_lines(done.stderr))
