"""An embedded Posit Connect sandbox, faithful enough for the official clients.

``options`` (pure data) and ``seed`` import nothing heavy; the server names
are loaded on first use so that the job-file parser can read
``SandboxOptions`` without importing the web server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .options import SANDBOX_OPTION_TYPES, SandboxOptions
from .seed import Seed, load_seed, parse_seed, seed_document

if TYPE_CHECKING:
    from .server import RunningSandbox, SandboxThread, run_sandbox_forever, serve_sandbox

__all__ = [
    "SANDBOX_OPTION_TYPES",
    "RunningSandbox",
    "SandboxOptions",
    "SandboxThread",
    "Seed",
    "load_seed",
    "parse_seed",
    "run_sandbox_forever",
    "seed_document",
    "serve_sandbox",
]

_LAZY = {"RunningSandbox", "SandboxThread", "run_sandbox_forever", "serve_sandbox"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(".server", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
