"""Exit codes scripts can rely on: one per kind of outcome, the same for every command.

They follow the gateway's error model (``GatewayError.status``), so "not found" or "try again later"
mean the same on the command line as in the HTTP API.
"""

from __future__ import annotations

from shared.errors import ConfigurationError, GatewayError
from shared.runs.model import RunStatus

OK = 0
FAILED = 1  # something unexpected; the message says what
USAGE = 2  # bad arguments or input (click's own usage errors use 2 too)
NOT_FOUND = 3  # no such alert, run or target
CONFLICT = 4  # the run's state forbids it (already finished, still running)
CONFIGURATION = 5  # settings or catalog missing or invalid
UNAVAILABLE = 6  # Azure, Storage or the identity cannot be reached or refused us: try again or fix access
UNHEALTHY = 7  # targets: a diagnostics check is a warning or an error (something needs a person)
RUN_FAILED = 8  # run --follow: the run failed, or Azure refused to start it
RUN_CANCELLED = 9  # run --follow: the run was cancelled
RUN_UNKNOWN = 10  # run --follow: the gateway could not tell whether the run started
INTERRUPTED = 130  # Ctrl+C, as shells report SIGINT

TABLE = (
    (OK, "done"),
    (FAILED, "failed unexpectedly"),
    (USAGE, "bad usage or input"),
    (NOT_FOUND, "no such alert, run or target"),
    (CONFLICT, "the run's state does not allow it"),
    (CONFIGURATION, "settings or catalog missing or invalid"),
    (UNAVAILABLE, "Azure, Storage or the identity unavailable or refusing"),
    (UNHEALTHY, "targets: a diagnostics check is a warning or an error"),
    (RUN_FAILED, "run --follow: the run failed or was refused"),
    (RUN_CANCELLED, "run --follow: the run was cancelled"),
    (RUN_UNKNOWN, "run --follow: the run's start is unknown"),
    (INTERRUPTED, "interrupted"),
)


def for_error(error: GatewayError) -> int:
    if isinstance(error, ConfigurationError):
        return CONFIGURATION
    if error.status == 404:
        return NOT_FOUND
    if error.status == 409:
        return CONFLICT
    if 400 <= error.status < 500:
        return USAGE
    return UNAVAILABLE


def for_run(status: str) -> int:
    """How a run that has ended ended, for ``run --follow``: scripts wait on it as on a process."""
    return {
        RunStatus.SUCCEEDED: OK,
        RunStatus.FAILED: RUN_FAILED,
        RunStatus.REJECTED: RUN_FAILED,
        RunStatus.CANCELLED: RUN_CANCELLED,
        RunStatus.UNKNOWN: RUN_UNKNOWN,
    }[status]
