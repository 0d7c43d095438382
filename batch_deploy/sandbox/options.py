"""The sandbox's fault and timing knobs, shared by the job file and the CLI.

Pure data: the job-file parser validates ``sandbox_options`` against
``SANDBOX_OPTION_TYPES`` without importing the web server.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["SANDBOX_OPTION_TYPES", "SandboxOptions"]


@dataclass(frozen=True)
class SandboxOptions:
    """Everything is off by default; ``random_seed`` makes faults reproducible."""

    latency: float = 0.0  # seconds added before every response
    task_seconds: float = 0.0  # how long a deploy task runs
    error_rate: float = 0.0  # share of /__api__ requests answered 503
    drop_rate: float = 0.0  # share of /__api__ requests whose connection is dropped
    rate_limit: float = 0.0  # requests per second before 429; 0 means no limit
    retry_after: float = 1.0  # seconds advertised in Retry-After with a 429
    task_failure_rate: float = 0.0  # share of deploy tasks that fail
    sticky_cookies: bool = False  # task polls need the deploy response's cookie
    random_seed: int = 0


# Option name -> accepted Python types, in the order of the dataclass.
SANDBOX_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    f.name: (
        (bool,) if f.type in ("bool", bool) else (int,) if f.type in ("int", int) else (int, float)
    )
    for f in fields(SandboxOptions)
}
