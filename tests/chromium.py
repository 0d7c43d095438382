"""Just enough of the Chrome DevTools Protocol to open a page like a reader.

Headless Chromium is started with a throwaway profile and every background
service off; the page's console errors, uncaught exceptions and network
requests are collected while it loads.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    value: Any = None


@contextmanager
def _browser(binary: str) -> Iterator[int]:
    # Chromium's helper processes may still be writing to the profile for a moment
    # after the browser exits; they are ended with it, and a late file is no error.
    with tempfile.TemporaryDirectory(
        prefix="chromium-profile-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its debugging port")
                time.sleep(0.05)
            yield int(port_file.read_text().splitlines()[0])
        finally:
            _end_group(process)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """End the browser, then every helper process it started (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


async def _visit(port: int, url: str, expression: str) -> PageVisit:
    visit = PageVisit()
    ids = itertools.count(1)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            pending: dict[int, Any] = {}

            async def call(method: str, **params: Any) -> Any:
                message_id = next(ids)
                await ws.send_str(
                    json.dumps({"id": message_id, "method": method, "params": params})
                )
                while message_id not in pending:
                    await receive()
                return pending.pop(message_id)

            loaded = anyio.Event()

            async def receive() -> None:
                message = json.loads((await ws.receive()).data)
                if "id" in message:
                    pending[message["id"]] = message.get("result", message.get("error"))
                    return
                method, params = message.get("method"), message.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in (
                    "error",
                    "assert",
                ):
                    visit.console_errors.append(json.dumps(params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    visit.console_errors.append(json.dumps(params.get("exceptionDetails", {})))
                elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                    visit.console_errors.append(params["entry"].get("text", ""))
                elif method == "Network.requestWillBeSent":
                    visit.requests.append(params["request"]["url"])
                elif method == "Page.loadEventFired":
                    loaded.set()

            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            with anyio.fail_after(30):
                while not loaded.is_set():
                    await receive()
            # Let anything scheduled after load run and report.
            with anyio.move_on_after(0.5):
                while True:
                    await receive()
            result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            visit.value = result.get("result", {}).get("value")
    return visit


def visit_page(binary: str, path: Path, expression: str) -> PageVisit:
    """Open ``path`` in headless Chromium; evaluate ``expression`` once loaded."""
    with _browser(binary) as port:
        return anyio.run(_visit, port, path.resolve().as_uri(), expression)


def browser_required() -> bool:
    return os.environ.get("BATCH_DEPLOY_REQUIRE_BROWSER") == "1"
