from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from batch_deploy.sandbox import SandboxThread, serve_sandbox

from .helpers import API_KEY, make_seed, seed_document_for

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from pathlib import Path
from batch_deploy.sandbox import SandboxOptions, load_seed, run_sandbox_forever

run_sandbox_forever(
    load_seed(Path(sys.argv[1])),
    api_key="k-123",
    options=SandboxOptions(),
    on_ready=lambda url: print("listening on", url, flush=True),
)
print("stopped cleanly", flush=True)
"""


def get(url: str, key: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)
    if key is not None:
        request.add_header("Authorization", f"Key {key}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_sandbox_thread_serves_sync_clients() -> None:
    with SandboxThread(make_seed(version="2025.09.0"), api_key=API_KEY) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert not sandbox.url.endswith("/")
        status, settings = get(f"{sandbox.url}/__api__/server_settings")
        assert (status, settings["version"]) == (200, "2025.09.0")
        status, user = get(f"{sandbox.url}/__api__/v1/user", API_KEY)
        assert user["guid"] == sandbox.store.user.guid
        assert API_KEY not in repr(sandbox)
        url = sandbox.url
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        get(f"{url}/__api__/server_settings")
    with pytest.raises(RuntimeError) as caught:
        _ = sandbox.url
    assert str(caught.value) == "the sandbox thread is not running; use it in a with block"


def test_sandbox_thread_reports_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        thread = SandboxThread(make_seed(), api_key=API_KEY, port=port)
        with pytest.raises(OSError, match="address already in use"), thread:
            pass


@pytest.mark.anyio
async def test_serve_sandbox_needs_a_key() -> None:
    with pytest.raises(ValueError, match=r"^the sandbox needs a non-empty API key"):
        async with serve_sandbox(make_seed(), api_key=""):
            pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_sandbox_forever_stops_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(seed_document_for(version="2025.09.0")))
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        prefix = "listening on http://127.0.0.1:"
        assert first.startswith(prefix), process.stderr.read() if process.stderr else first
        url = first.removeprefix("listening on ")
        assert get(f"{url}/__api__/v1/user", "k-123")[0] == 200
        process.send_signal(signum)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == "stopped cleanly\n"
    assert "Traceback" not in err
