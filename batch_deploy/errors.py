"""Every error batch_deploy raises on purpose.

One tree, so callers can catch as broadly or narrowly as they need::

    BatchDeployError                 base; str() is one actionable sentence
    ├── JobError                     the job file or command line is unusable (exit 2)
    ├── ManifestError                a manifest.json cannot be used (content is `invalid`)
    ├── BundleError                  a bundle cannot be built from a content folder
    ├── SeedError                    a sandbox seed file is unusable
    ├── StateError                   report_dir/state.json cannot be read or written
    └── ConnectError                 talking to one Connect server failed
        ├── TransportError           no usable HTTP answer arrived
        │   ├── ConnectFailed        refused, DNS, reset or dropped connection
        │   ├── TLSFailed            certificate or handshake problem
        │   └── RequestTimedOut      no answer within the deadline
        ├── APIError                 the server answered with an error status
        │   ├── AuthenticationFailed 401: the API key is not valid
        │   ├── PermissionDenied     403: the key's user may not do this
        │   ├── NotFound             404: the object does not exist
        │   ├── Conflict             409: e.g. a content name is taken
        │   └── RateLimited          429: too many requests (retry_after seconds)
        └── TaskError                a deploy task did not succeed
            ├── TaskFailed           finished with a non-zero code
            └── TaskTimedOut         still running at the task deadline

Per-item failures travel as values in the results; these exceptions cross
layer boundaries and are turned into values (or exit status 2) at the edges.
No message ever contains an API key: keys are never formatted into errors.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "APIError",
    "AuthenticationFailed",
    "BatchDeployError",
    "BundleError",
    "Conflict",
    "ConnectError",
    "ConnectFailed",
    "JobError",
    "ManifestError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTimedOut",
    "SeedError",
    "StateError",
    "TLSFailed",
    "TaskError",
    "TaskFailed",
    "TaskTimedOut",
    "TransportError",
]


class BatchDeployError(Exception):
    """Base of every deliberate batch_deploy error."""


class JobError(BatchDeployError):
    """The job file or the command line cannot be used; nothing was contacted.

    ``problems`` holds every problem found in one pass, each a full sentence
    naming the file, the line or key path, and the fix.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class ManifestError(BatchDeployError):
    """A manifest.json is missing, malformed, or names a path it may not."""


class BundleError(BatchDeployError):
    """A bundle cannot be built: a listed file is missing or leaves its folder."""


class SeedError(BatchDeployError):
    """A sandbox seed file is not valid."""


class StateError(BatchDeployError):
    """state.json is corrupt, from a newer version, or cannot be written."""


class ConnectError(BatchDeployError):
    """Talking to one Connect server failed.

    ``server`` is the job file's name for the server (or its URL), ``where``
    the method and path that failed, so messages point at the exact call.
    """

    def __init__(self, message: str, *, server: str = "", where: str = "") -> None:
        self.server = server
        self.where = where
        self.message = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        prefix = ""
        if self.server:
            prefix = f"{self.server}: "
        if self.where:
            prefix += f"{self.where}: "
        return prefix + self.message


class TransportError(ConnectError):
    """No usable HTTP answer arrived."""


class ConnectFailed(TransportError):
    """The connection was refused, could not be resolved, or dropped."""


class TLSFailed(TransportError):
    """The TLS handshake or certificate verification failed."""


class RequestTimedOut(TransportError):
    """The server did not answer within the deadline."""


class APIError(ConnectError):
    """The server answered with an error status; ``status`` and Connect's ``code``."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        server: str = "",
        where: str = "",
    ) -> None:
        self.status = status
        self.code = code
        super().__init__(message, server=server, where=where)


class AuthenticationFailed(APIError):
    """401: the API key is not valid for this server."""


class PermissionDenied(APIError):
    """403: the key's user may not do this."""


class NotFound(APIError):
    """404: the object does not exist."""


class Conflict(APIError):
    """409: the request conflicts with existing state (e.g. a taken name)."""


class RateLimited(APIError):
    """429: slow down; ``retry_after`` seconds if the server said."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int = 429,
        code: int | None = None,
        server: str = "",
        where: str = "",
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, server=server, where=where)


class TaskError(ConnectError):
    """A deploy task did not succeed; ``output`` keeps its last log lines."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        output: Sequence[str] = (),
        server: str = "",
        where: str = "",
    ) -> None:
        self.task_id = task_id
        self.output = tuple(output)
        super().__init__(message, server=server, where=where)


class TaskFailed(TaskError):
    """The task finished with a non-zero code; the message is Connect's error."""


class TaskTimedOut(TaskError):
    """The task was still running when the task deadline passed."""
