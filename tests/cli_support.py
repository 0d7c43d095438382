"""Running ``batch-deploy`` as a user does: subprocesses, sandboxes, job files, probes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobkit import API_KEY, KEY_ENV, Fleet

from batch_deploy.sandbox import SandboxOptions, SandboxThread, parse_seed
from batch_deploy.sandbox.server import RunningSandbox

ROOT = Path(__file__).resolve().parents[1]

MODULE: tuple[str, ...] = (sys.executable, "-m", "batch_deploy")
# The same entry point with stamina's backoff switched off (two attempts, no
# waits): a server that is down otherwise costs about ten seconds of retries.
QUICK_RETRIES: tuple[str, ...] = (
    sys.executable,
    "-c",
    "import sys, stamina; stamina.set_testing(True, attempts=2); "
    "from batch_deploy.cli import main; sys.exit(main(sys.argv[1:]))",
)
# Generous: only reached when the command hangs, which is itself the failure.
DEADLINE_S = 60.0


@dataclass(frozen=True)
class Ran:
    """What one command did: exit status and both streams."""

    code: int
    out: str
    err: str


def environment(variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing from the caller's shell but PATH."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": str(ROOT),
        "PYTHONUTF8": "1",
    }
    env.update({KEY_ENV: API_KEY} if variables is None else variables)
    return env


def command(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] = MODULE,
) -> Ran:
    done = subprocess.run(
        [*launcher, *args],
        cwd=cwd,
        env=environment() if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def start(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MODULE, *args],
        cwd=cwd,
        env=environment() if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> Ran:
    try:
        out, err = process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Ran(process.returncode, out, err)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    """Poll ``condition`` while ``process`` runs; fail with its output if it ends first."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if process.poll() is not None:
            ran = finish(process)
            raise AssertionError(f"ended early ({ran.code}):\n{ran.out}\n{ran.err}")
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.005)


def command_on_a_terminal(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Ran:
    """Run with stderr on a pseudo-terminal (100 columns); ``err`` is what it showed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    try:
        process = subprocess.Popen(
            [*MODULE, *args],
            cwd=cwd,
            env=environment() if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
        )
    finally:
        os.close(follower)
    shown = bytearray()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            shown += chunk
        out, _ = process.communicate(timeout=DEADLINE_S)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return Ran(process.returncode, out.decode(), shown.decode(errors="replace"))


@contextlib.contextmanager
def sandboxes(
    seeds: Mapping[str, Mapping[str, Any]],
    *,
    api_key: str = API_KEY,
    options: SandboxOptions = SandboxOptions(),  # noqa: B008 - frozen
) -> Iterator[dict[str, SandboxThread]]:
    """One sandbox thread per seed, all accepting ``api_key``."""
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(
                SandboxThread(
                    parse_seed(json.dumps(document), f"{name}.json"),
                    api_key=api_key,
                    options=options,
                )
            )
            for name, document in seeds.items()
        }


def write_job(
    root: Path,
    servers: Mapping[str, SandboxThread],
    content: Sequence[Mapping[str, Any]],
    run: Mapping[str, Any] | None = None,
    extra_servers: str = "",
    name: str = "jobs.toml",
) -> Path:
    """A job file naming each sandbox as a url server keyed by ``$KEY_ENV``."""
    fleet = Fleet(root, {key: RunningSandbox(s.url, s.store) for key, s in servers.items()})
    path = root / name
    path.write_text(fleet.job_text(content, run, extra_servers))
    return path


class Listener:
    """A port that accepts connections into its backlog but never answers.

    The kernel completes handshakes by itself, so every connection attempt is
    seen whether or not the client gave up since.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        port: int = sock.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def pending(self) -> bool:
        """A connection waits in the backlog (it is left there)."""
        readable, _, _ = select.select([self._sock], [], [], 0)
        return bool(readable)

    def arrivals(self) -> int:
        """Connections that arrived since the last call (each is then closed)."""
        count = 0
        while True:
            try:
                connection, _ = self._sock.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1


@contextlib.contextmanager
def silent_listener() -> Iterator[Listener]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        yield Listener(sock)


def dead_url() -> str:
    """A loopback URL with nothing listening."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def deploys(document: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(content, server) -> deploy status, from a results.json document."""
    found: dict[tuple[str, str], str] = {}
    for row in document["rows"]:
        key = (row["content"], row["server"])
        assert found.setdefault(key, row["deploy"]) == row["deploy"], key
    return found


def statuses(document: Mapping[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(content, server) -> request statuses in order, from a results.json document."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in document["rows"]:
        found.setdefault((row["content"], row["server"]), []).append(row["status"])
    return found


def report_texts(report_dir: Path) -> dict[str, str]:
    """Every file the run left in ``report_dir``, by name."""
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(report_dir.iterdir())
        if path.is_file()
    }
