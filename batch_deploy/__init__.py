"""batch_deploy: resolve Posit Connect integration requests on many servers,
then deploy in bulk and report.

The public surface is small: load a job file, plan or run it, read the rows.
Everything else is importable from its module but may change.
"""

from __future__ import annotations

from ._version import __version__
from .errors import BatchDeployError
from .jobs import Job, load_job, parse_job
from .results import Row, RunResult
from .runner import plan, run, write_reports

__all__ = [
    "BatchDeployError",
    "Job",
    "Row",
    "RunResult",
    "__version__",
    "load_job",
    "parse_job",
    "plan",
    "run",
    "write_reports",
]
