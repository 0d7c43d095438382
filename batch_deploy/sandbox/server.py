"""Running a sandbox: in the caller's event loop, on a thread, or until a signal.

``serve_sandbox`` is the async form (tests and the runner start sandboxes in
their own loop); ``SandboxThread`` runs the same server on a background
thread's loop for synchronous clients (rsconnect-python in a subprocess,
posit-sdk); ``run_sandbox_forever`` backs ``batch-deploy sandbox``.
Uploaded bundles live in a temporary folder that goes away with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

from .app import make_app
from .options import SandboxOptions
from .seed import Seed
from .store import Store

__all__ = ["RunningSandbox", "SandboxThread", "run_sandbox_forever", "serve_sandbox"]

# How long shutdown waits for requests in flight; long polls end at once.
_SHUTDOWN_TIMEOUT = 2.0


@dataclass(frozen=True)
class RunningSandbox:
    """A listening sandbox: ``url`` has no trailing slash; ``store`` is its state."""

    url: str
    store: Store


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serve_sandbox(
    seed: Seed,
    *,
    api_key: str,
    options: SandboxOptions = SandboxOptions(),  # noqa: B008 - frozen, shared safely
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[RunningSandbox]:
    """Serve one sandbox on ``host:port`` (0 picks a free port) while the block runs."""
    if not api_key:
        raise ValueError("the sandbox needs a non-empty API key for its clients to send")
    with tempfile.TemporaryDirectory(prefix="batch-deploy-sandbox-") as folder:
        store = Store(seed, Path(folder))
        app = make_app(store, api_key=api_key, options=options)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0]
            store.base_url = _url(host, int(bound[1]))
            yield RunningSandbox(url=store.base_url, store=store)
        finally:
            await runner.cleanup()


class SandboxThread:
    """``serve_sandbox`` on a daemon thread with its own event loop.

    Use as ``with SandboxThread(seed, api_key=key) as sandbox: ...``; ``url``
    and ``store`` are set once the block starts. Read ``store`` for assertions
    only when no request is in flight.
    """

    def __init__(
        self,
        seed: Seed,
        *,
        api_key: str,
        options: SandboxOptions = SandboxOptions(),  # noqa: B008 - frozen, shared safely
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._seed = seed
        self._api_key = api_key
        self._options = options
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: RunningSandbox | None = None
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        where = self._running.url if self._running else "not started"
        return f"SandboxThread({where})"

    @property
    def url(self) -> str:
        return self._started().url

    @property
    def store(self) -> Store:
        return self._started().store

    def _started(self) -> RunningSandbox:
        if self._running is None:
            raise RuntimeError("the sandbox thread is not running; use it in a with block")
        return self._running

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serve_sandbox(
                self._seed,
                api_key=self._api_key,
                options=self._options,
                host=self._host,
                port=self._port,
            ) as running:
                self._running = running
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._ready.set()

    def _run(self) -> None:
        with contextlib.suppress(BaseException):
            asyncio.run(self._main())

    def __enter__(self) -> SandboxThread:
        self._thread = threading.Thread(target=self._run, name="connect-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._running is None:
            self._thread.join()
            failure = self._failure or RuntimeError("the sandbox thread stopped before serving")
            raise failure
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
        self._running = None


def run_sandbox_forever(
    seed: Seed,
    *,
    api_key: str,
    options: SandboxOptions,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until SIGINT, SIGTERM or KeyboardInterrupt; ``on_ready(url)`` once listening."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
                    installed.append(signum)
        try:
            async with serve_sandbox(
                seed, api_key=api_key, options=options, host=host, port=port
            ) as running:
                on_ready(running.url)
                await stop.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
