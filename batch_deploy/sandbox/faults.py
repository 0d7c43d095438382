"""Reproducible fault decisions for one sandbox server.

Every kind of fault draws from its own random stream seeded from
``SandboxOptions.random_seed``, so turning one fault on does not change the
decisions of another, and the same sequence of requests meets the same faults
on every run. Plain Python: ``app.py`` applies the decisions.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .options import SandboxOptions

__all__ = ["NODES", "FaultDecision", "Faults"]

# The simulated cluster behind the load balancer, for sticky sessions.
NODES: tuple[str, ...] = ("node-a", "node-b")

FaultKind = Literal["drop", "error", "rate_limited"]


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one API request instead of its normal answer."""

    kind: FaultKind
    retry_after: float = 0.0


class Faults:
    """Decides, request by request, which faults strike. ``clock`` is for tests."""

    def __init__(
        self, options: SandboxOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self._clock = clock
        seed = options.random_seed
        # Reproducible simulation, not security: seeded pseudo-random streams.
        self._drop = random.Random(f"{seed}:drop")  # noqa: S311
        self._error = random.Random(f"{seed}:error")  # noqa: S311
        self._task = random.Random(f"{seed}:task")  # noqa: S311
        self._node = random.Random(f"{seed}:node")  # noqa: S311
        self._accepted: deque[float] = deque()

    @property
    def latency(self) -> float:
        return max(0.0, self.options.latency)

    def decide(self) -> FaultDecision | None:
        """The fault for the next API request, or None to answer it normally.

        Order: a dropped connection, then a 503, then the rate limit (a request
        refused by the limit does not count towards it).
        """
        options = self.options
        if options.drop_rate > 0 and self._drop.random() < options.drop_rate:
            return FaultDecision("drop")
        if options.error_rate > 0 and self._error.random() < options.error_rate:
            return FaultDecision("error")
        if options.rate_limit > 0:
            now = self._clock()
            while self._accepted and now - self._accepted[0] >= 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= options.rate_limit:
                return FaultDecision("rate_limited", retry_after=max(0.0, options.retry_after))
            self._accepted.append(now)
        return None

    def task_fails(self) -> bool:
        """Whether the next deploy task fails (after its checks pass)."""
        rate = self.options.task_failure_rate
        return rate > 0 and self._task.random() < rate

    def pick_node(self) -> str:
        """The node a new session lands on."""
        return self._node.choice(NODES)
