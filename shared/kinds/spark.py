"""Synapse Spark batch jobs through the workspace's Livy API (sparkJob.json 2020-12-01).

Livy has no ``api-version`` query (the version is a path segment) and pages its batch list at 20,
so following many batches in bulk is only cheaper than one GET each when they are most of the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.azure.transport import TargetClient, UpstreamClient
from shared.config.catalog import SynapseTarget
from shared.errors import OutcomeUnknown, UpstreamBadResponse
from shared.kinds.pipelines import CreatedRun, parse_time
from shared.runs.model import RunStatus

LIVY_API_VERSION = "2020-12-01"
LIST_PAGE = 20  # Livy's maximum
LOG_TAIL_LINES = 40


class LivyState:
    """Livy batch states (``LivyStates`` in the Microsoft SDKs), as the Airflow provider classifies them."""

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"
    RECOVERING = "recovering"
    TERMINAL = frozenset({SUCCESS, DEAD, KILLED, ERROR})


_STATUS_OF_STATE = {
    LivyState.NOT_STARTED: RunStatus.QUEUED,
    LivyState.STARTING: RunStatus.QUEUED,
    LivyState.RUNNING: RunStatus.IN_PROGRESS,
    LivyState.IDLE: RunStatus.IN_PROGRESS,
    LivyState.BUSY: RunStatus.IN_PROGRESS,
    LivyState.RECOVERING: RunStatus.IN_PROGRESS,
    LivyState.SHUTTING_DOWN: RunStatus.IN_PROGRESS,
    LivyState.SUCCESS: RunStatus.SUCCEEDED,
    LivyState.DEAD: RunStatus.FAILED,
    LivyState.ERROR: RunStatus.FAILED,
    LivyState.KILLED: RunStatus.CANCELLED,
}


@dataclass(frozen=True)
class SparkBatch:
    id: int
    name: str
    state: str
    result: str | None
    app_id: str | None
    start: datetime | None
    end: datetime | None
    submitted: datetime | None = None
    errors: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    app_info: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """Our status: Livy's verdict (``result``) where it has one, else the state's meaning."""
        if self.result == "Cancelled":
            return RunStatus.CANCELLED
        if self.state in LivyState.TERMINAL and self.result == "Failed":
            return RunStatus.FAILED
        return _STATUS_OF_STATE.get(self.state, RunStatus.IN_PROGRESS)

    @property
    def message(self) -> str:
        return self.errors[0] if self.errors else ""


def parse_batch(data: Any, operation: str) -> SparkBatch:
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise UpstreamBadResponse(f"{operation} returned a Spark batch without an id.")
    livy: dict[str, Any] = data["livyInfo"] if isinstance(data.get("livyInfo"), dict) else {}
    errors = tuple(
        str(e.get("message")) for e in data.get("errorInfo") or [] if isinstance(e, dict) and e.get("message")
    )
    log = tuple(str(line) for line in data.get("log") or [] if isinstance(line, str))
    app_info: dict[str, Any] = data["appInfo"] if isinstance(data.get("appInfo"), dict) else {}
    end = next((parse_time(livy.get(k)) for k in ("successAt", "deadAt", "killedAt") if livy.get(k)), None)
    scheduler: dict[str, Any] = data["schedulerInfo"] if isinstance(data.get("schedulerInfo"), dict) else {}
    return SparkBatch(
        id=data["id"],
        name=str(data.get("name") or ""),
        state=str(data.get("state") or ""),
        result=data.get("result") if isinstance(data.get("result"), str) else None,
        app_id=data.get("appId") if isinstance(data.get("appId"), str) else None,
        start=parse_time(livy.get("runningAt")) or parse_time(livy.get("startingAt")),
        end=end,
        submitted=parse_time(scheduler.get("submittedAt")) or parse_time(livy.get("notStartedAt")),
        errors=errors,
        log=log[-LOG_TAIL_LINES:],
        app_info={str(k): str(v) for k, v in app_info.items()},
    )


class SparkClient(TargetClient):
    """Batch jobs on one Spark pool of a Synapse workspace."""

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, pool: str, *, scope: str) -> None:
        super().__init__(
            upstream,
            base_url=f"{target.endpoint}/livyApi/versions/{LIVY_API_VERSION}/sparkPools/{pool}",
            scope=scope,
            target=target.name,
        )
        workspace = target.workspace_name
        self._submit_role = f"the Synapse Compute Operator role on Spark pool {pool} of workspace {workspace}"
        self._read_role = f"the Synapse User role on workspace {workspace}"

    def create_batch(self, definition: Mapping[str, Any]) -> tuple[CreatedRun, SparkBatch]:
        body, request_id = self._call(
            "createSparkBatchJob",
            "POST",
            "/batches",
            role=self._submit_role,
            creates=True,
            params={"detailed": "true"},
            body=dict(definition),
        )
        try:
            batch = parse_batch(body, "createSparkBatchJob")
        except UpstreamBadResponse as exc:
            # Livy accepted the batch but did not say which: reconciled like a lost answer, never resubmitted.
            raise OutcomeUnknown(f"{exc.detail} Livy may have accepted the batch.", request_id=request_id) from exc
        return CreatedRun(str(batch.id), request_id), batch

    def get_batch(self, batch_id: str) -> SparkBatch:
        body, _ = self._call(
            "getSparkBatchJob", "GET", f"/batches/{batch_id}", role=self._read_role, params={"detailed": "true"}
        )
        return parse_batch(body, "getSparkBatchJob")

    def list_batches(self, start: int, size: int = LIST_PAGE) -> tuple[list[SparkBatch], int]:
        """One page of the pool's batches (oldest first) and the pool's total."""
        body, _ = self._call(
            "getSparkBatchJobs",
            "GET",
            "/batches",
            role=self._read_role,
            params={"from": str(start), "size": str(size), "detailed": "true"},
        )
        if not isinstance(body, dict) or not isinstance(body.get("sessions"), list):
            raise UpstreamBadResponse("getSparkBatchJobs returned a page without sessions.")
        total = body["total"] if isinstance(body.get("total"), int) else 0
        return [parse_batch(item, "getSparkBatchJobs") for item in body["sessions"]], total

    def cancel_batch(self, batch_id: str) -> None:
        self._call("cancelSparkBatchJob", "DELETE", f"/batches/{batch_id}", role=self._submit_role)
