"""The failure alert, schema v1: the contract between the poller, the queue, the forwarder and the CLI.

On the queue it is this model's JSON, every field present (null when unknown), camelCase, exactly as
docs and receivers know it; readers validate it back into the model and keep fields a newer writer
added. Changing a field's meaning needs ``schemaVersion`` 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.runs.model import Run, iso_time, parse_iso

SCHEMA_VERSION = 1


class AlertKind:
    FAILED = "failed"
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
    driverLogTail: list[str] = []
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

    def queue_message(self) -> dict[str, Any]:
        """The alert as JSON on the queue and in the history: every field, nulls included."""
        return self.model_dump(mode="json")

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
