"""Talking to Connect servers: the client, its typed answers and its retry policy."""

from __future__ import annotations

from .client import ConnectClient
from .models import Association, Bundle, Content, ServerSettings, Task, User
from .retry import RetryPolicy, log_retry

__all__ = [
    "Association",
    "Bundle",
    "ConnectClient",
    "Content",
    "RetryPolicy",
    "ServerSettings",
    "Task",
    "User",
    "log_retry",
]
