"""The gateway's run record: what it started, where, for whom, and how it is going.

A run is recorded before the upstream create call (``Submitting``) so that nothing Azure accepts can
go unrecorded; the poller moves it along the status set below.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.config import names


class RunStatus:
    """Our statuses: the services' pipeline statuses plus the gateway's own before and after them."""

    SUBMITTING = "Submitting"  # recorded; the create call is in flight or its outcome is unknown
    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    CANCELING = "Canceling"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"  # Azure refused the create: nothing started, the caller was told
    UNKNOWN = "Unknown"  # the create's outcome could not be reconciled
    ALL = (SUBMITTING, QUEUED, IN_PROGRESS, CANCELING, SUCCEEDED, FAILED, CANCELLED, REJECTED, UNKNOWN)
    TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, REJECTED, UNKNOWN})
    IN_FLIGHT = frozenset({SUBMITTING, QUEUED, IN_PROGRESS, CANCELING})


class RetryState:
    """Where a failed run stands under its retry policy (``shared.poller.retries``)."""

    SCHEDULED = "scheduled"  # the poller reruns it at ``next_retry_at``
    RETRIED = "retried"  # the rerun was submitted: the chain goes on at ``rerun_by``
    CANCELLED = "cancelled"  # someone cancelled the pending rerun
    REFUSED = "refused"  # the rerun could not be started (``retry_note`` says why)


_RUN_ID_SEPARATOR = "."
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Ids embed the time counted down from here, so a partition lists newest first.
_ID_EPOCH_LIMIT_MS = 10**13


def new_run_id(target: str, now: float | None = None) -> str:
    """``{target}.{descending time}{random}``: the target locates the record, the rest orders it."""
    millis = int((time.time() if now is None else now) * 1000)
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"{target}{_RUN_ID_SEPARATOR}{_ID_EPOCH_LIMIT_MS - millis:013d}{suffix}"


def time_key(moment: datetime) -> str:
    """The start of the keys of runs created at ``moment``: keys sort descending by time, so every run
    created before ``moment`` has a greater key (retention reads the oldest runs by key range)."""
    return f"{_ID_EPOCH_LIMIT_MS - int(moment.timestamp() * 1000):013d}"


def target_of(run_id: str) -> str | None:
    """The target encoded in a run id, or None when the id cannot be one of ours."""
    target, sep, rest = run_id.partition(_RUN_ID_SEPARATOR)
    if not sep or len(rest) != 21 or not rest.isalnum() or names.TARGET.problem(target):
        return None
    return target


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_time(value: datetime | None) -> str | None:
    """Times in views and alerts: ISO 8601 in UTC with a ``Z``."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def parse_iso(value: str | None) -> datetime | None:
    """A time ``iso_time`` wrote (or any ISO 8601 time with a zone); None when it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


@dataclass(frozen=True)
class Run:
    id: str
    target: str
    kind: str  # the name of its kind in shared.kinds (datafactory, synapse, spark)
    pipeline: str  # the pipeline name, or the batch name for Spark
    status: str
    created_at: datetime
    updated_at: datetime
    parameters: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    spark_pool: str | None = None
    app_id: str | None = None  # the Spark application of a batch
    upstream_run_id: str | None = None
    upstream_status: str | None = None
    upstream_request_id: str | None = None
    message: str = ""
    run_start: datetime | None = None
    run_end: datetime | None = None
    duration_ms: int | None = None
    caller: str | None = None
    product: str | None = None
    correlation_id: str | None = None
    rerun_of: str | None = None
    rerun_by: str | None = None
    max_duration_minutes: int | None = None
    alert_id: str | None = None
    alerted_at: datetime | None = None
    overdue_alerted_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    # The pipeline parameter that carries this run's id to Azure, when the catalog names one.
    correlation_parameter: str | None = None
    # When a create call ended without an answer: with created_at, the window its run started in.
    submit_ended_at: datetime | None = None
    # Azure runs (space-separated ids) this Unknown record could not tell from its own: held in the
    # ownership index for it, so no other record takes one of them either.
    contested: str = ""
    # Who is sending the alert and since when: another poller leaves a fresh claim alone.
    alert_claimed_by: str | None = None
    alert_claimed_at: datetime | None = None
    # Automatic retries: which run of its chain this is (the chain's first run is ``retry_root``, None
    # for the first itself) of how many its policy allows, and, once it failed, its retry: the state,
    # when it is due, the rerun request, this attempt's failure in a line, and why it did not happen.
    attempt: int = 1
    max_attempts: int = 1
    retry_root: str | None = None
    retry_state: str | None = None
    next_retry_at: datetime | None = None
    retry_options: dict[str, Any] = field(default_factory=dict)
    failure: str = ""
    retry_note: str = ""
    retry_notified_at: datetime | None = None
    # Where the registry holds the record and its version; set by the registry, never by callers.
    row_key: str | None = None
    etag: str | None = None

    @property
    def in_flight(self) -> bool:
        return self.status in RunStatus.IN_FLIGHT

    @property
    def terminal(self) -> bool:
        return self.status in RunStatus.TERMINAL

    @property
    def chain_root(self) -> str:
        """The first run of this run's automatic retry chain."""
        return self.retry_root or self.id

    @property
    def retry_pending(self) -> bool:
        """A rerun is scheduled and not yet submitted."""
        return self.retry_state == RetryState.SCHEDULED and self.rerun_by is None

    @property
    def may_retry(self) -> bool:
        """A retry is scheduled, or may be: the run failed with attempts left, and the poller has neither
        decided (nor claimed its alert) yet."""
        undecided = (
            self.status == RunStatus.FAILED
            and self.retry_state is None
            and self.rerun_by is None
            and self.attempt < self.max_attempts
            and self.alert_id is None
            and self.alerted_at is None
        )
        return self.retry_pending or undecided

    def evolve(self, **changes: Any) -> Run:
        return replace(self, updated_at=utcnow(), **changes)
