"""When a failed Connect call may be tried again, and how long to wait.

Two rules, both bounded in attempts and in total time:

- ``retry_idempotent``: a call that may safely happen twice (GET, PUT, PATCH,
  task polls, bundle uploads) is retried after a dropped or refused connection,
  a timeout, 429 (waiting as long as ``Retry-After`` says) and 502/503/504.
- ``retry_unsent``: a call that must not happen twice (the deploy POST) is
  retried only when the server cannot have acted on it: 429, 503, or a
  connection that never opened. A connection dropped after the request went
  out is not retried: the task may already be running.

Waits grow exponentially with jitter (stamina); ``stamina.set_testing`` makes
them zero in tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina
from stamina.instrumentation import RetryDetails

from ..errors import APIError, ConnectError, ConnectFailed, RateLimited, RequestTimedOut

__all__ = [
    "RETRYABLE_STATUSES",
    "BackoffHook",
    "RetryPolicy",
    "attempts",
    "call_with_retries",
    "log_retry",
    "retry_idempotent",
    "retry_unsent",
]

T = TypeVar("T")

log = logging.getLogger("batch_deploy.connect")


def log_retry(details: RetryDetails) -> None:
    """A stamina retry hook that says which call is retried, why, and when."""
    log.info(
        "retrying in %.2f s (attempt %d): %s",
        details.wait_for,
        details.retry_num + 1,
        details.caused_by,
    )

# A float is a wait in seconds that replaces the exponential backoff once.
BackoffHook = Callable[[Exception], bool | float]

RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Statuses that say the request was not acted on: safe to repeat even a POST.
_NOT_ACTED_STATUSES = frozenset({503})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one call: at most ``attempts`` tries within ``timeout`` s.

    ``max_retry_after`` caps how long a server's ``Retry-After`` may hold a call.
    """

    attempts: int = 6
    timeout: float = 60.0
    wait_initial: float = 0.25
    wait_max: float = 8.0
    wait_jitter: float = 0.5
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.timeout <= 0:
            raise ValueError("RetryPolicy.timeout must be positive")


def _rate_limited_wait(error: RateLimited, policy: RetryPolicy) -> bool | float:
    if error.retry_after is None:
        return True
    return float(min(max(error.retry_after, 0.0), policy.max_retry_after))


def retry_idempotent(policy: RetryPolicy) -> BackoffHook:
    """The rule for calls that may safely happen twice."""

    def hook(error: Exception) -> bool | float:
        if isinstance(error, RateLimited):
            return _rate_limited_wait(error, policy)
        if isinstance(error, ConnectFailed | RequestTimedOut):
            return True
        return isinstance(error, APIError) and error.status in RETRYABLE_STATUSES

    return hook


def retry_unsent(policy: RetryPolicy, never_sent: Callable[[ConnectError], bool]) -> BackoffHook:
    """The rule for calls that must not happen twice.

    ``never_sent`` tells a connection that never opened from one that dropped
    after the request may have arrived; only the transport layer knows.
    """

    def hook(error: Exception) -> bool | float:
        if isinstance(error, RateLimited):
            return _rate_limited_wait(error, policy)
        if isinstance(error, APIError):
            return error.status in _NOT_ACTED_STATUSES
        return isinstance(error, ConnectFailed) and never_sent(error)

    return hook


def attempts(policy: RetryPolicy, hook: BackoffHook) -> AsyncIterator[stamina.Attempt]:
    """stamina's attempt iterator under ``policy``, for calls with their own loop."""
    return stamina.retry_context(
        on=hook,
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ).__aiter__()


async def call_with_retries(
    policy: RetryPolicy, hook: BackoffHook, operation: Callable[[], Awaitable[T]]
) -> T:
    """``await operation()`` until it succeeds or ``hook`` and ``policy`` say stop.

    The last error propagates unchanged.
    """
    async for attempt in attempts(policy, hook):
        with attempt:
            return await operation()
    raise AssertionError("stamina ended without a result or an error")
