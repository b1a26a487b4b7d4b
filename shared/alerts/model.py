"""The failure alert, schema v1: the contract between the poller, the queue, the forwarder and the CLI.

On the queue it is this model's JSON, every field present (null when unknown), camelCase, exactly as
docs and receivers know it; readers validate it back into the model and keep fields a newer writer
added. Changing a field's meaning needs ``schemaVersion`` 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.runs.model import Run, iso_time, parse_iso

SCHEMA_VERSION = 1


class AlertKind:
    FAILED = "failed"
    RETRYING = "retrying"  # info: the run failed and is rerun automatically (when the policy asks)
    CANCELLED = "cancelled"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class FailedActivityItem(_Part):
    name: str
    type: str = ""
    errorCode: str = ""
    failureType: str = ""
    message: str = ""
    start: str | None = None
    end: str | None = None


class AttemptItem(_Part):
    """One run of an automatic retry chain, in a line: how it ended and why it failed."""

    attempt: int
    runId: str
    status: str
    upstreamRunId: str | None = None
    start: str | None = None
    end: str | None = None
    failure: str = ""


class RunRef(_Part):
    """Another run, in a line: an alert's previous runs of the pipeline, a run view's rerun chain."""

    id: str
    status: str
    createdAt: str | None = None

    @classmethod
    def of(cls, run: Run) -> RunRef:
        return cls(id=run.id, status=run.status, createdAt=iso_time(run.created_at))


class Alert(_Part):
    """What failed, where, when and why (``summary`` first), and the facts to act on."""

    schemaVersion: int = SCHEMA_VERSION
    alertId: str
    kind: str
    summary: str
    target: str
    targetKind: str
    location: str | None = None
    pipeline: str
    sparkPool: str | None = None
    status: str
    upstreamStatus: str | None = None
    upstreamRunId: str | None = None
    runId: str
    message: str = ""
    failedActivities: list[FailedActivityItem] = []
    appId: str | None = None
    errors: list[str] = []
    driverLogTail: list[str] = []  # the last lines of the failed run's log: a Spark driver's, or logName
    logName: str | None = None  # added in v1 (readers keep unknown fields): which log, when not a driver's
    start: str | None = None
    end: str | None = None
    durationMs: int | None = None
    caller: str | None = None
    product: str | None = None
    correlationId: str | None = None
    links: dict[str, str] = {}
    previousRuns: list[RunRef] = []
    firstFailure: bool = True
    raisedAt: str | None = None
    # Added in v1 for runs under a retry policy, and present only on their alerts: which attempt of how
    # many this run is, every attempt of its chain (the final alert's list), when the next one is due.
    attempt: int | None = None
    maxAttempts: int | None = None
    attempts: list[AttemptItem] | None = None
    nextRetryAt: str | None = None

    RETRY_FIELDS: ClassVar[tuple[str, ...]] = ("attempt", "maxAttempts", "attempts", "nextRetryAt")

    def queue_message(self) -> dict[str, Any]:
        """The alert as JSON on the queue and in the history: every field, nulls included, except the
        retry fields of an alert that has none (so alerts without a policy are as they always were)."""
        absent = {name for name in self.RETRY_FIELDS if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=absent)

    @property
    def raised(self) -> datetime:
        """When it was raised; the distant past for an alert that does not say."""
        return parse_iso(self.raisedAt) or datetime.min.replace(tzinfo=UTC)


def read_alert(data: Any) -> Alert | None:
    """An alert from a queue message or the history; None for anything that is not one."""
    try:
        return Alert.model_validate(data)
    except ValidationError:
        return None
