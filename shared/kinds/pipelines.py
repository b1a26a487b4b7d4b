"""The REST contract ADF and Synapse pipelines share: run and activity shapes, statuses, one client.

Both services define ``PipelineRun``, ``ActivityRun``, ``RunFilterParameters`` and the same run
operations (createRun, getPipelineRun, queryPipelineRuns, queryActivityRuns, cancelPipelineRun);
each kind's module supplies its base URL, api-version, activity-runs path and role hints.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.azure.transport import TargetClient
from shared.errors import OutcomeUnknown, UpstreamBadResponse


class PipelineRunStatus:
    """ADF and Synapse pipeline-run statuses, as the Airflow provider classifies them."""

    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELING = "Canceling"
    CANCELLED = "Cancelled"
    TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
    INTERMEDIATE = frozenset({QUEUED, IN_PROGRESS, CANCELING})
    FAILURE = frozenset({FAILED, CANCELLED})


@dataclass(frozen=True)
class StartOptions:
    """The createRun recovery options; ``start_from_failure`` exists in ADF only."""

    reference_run_id: str | None = None
    is_recovery: bool | None = None
    start_activity_name: str | None = None
    start_from_failure: bool | None = None

    def view(self) -> dict[str, Any]:
        """The options as the run record and its view show them (the request's field names)."""
        view = {
            "referencePipelineRunId": self.reference_run_id,
            "isRecovery": self.is_recovery,
            "startActivityName": self.start_activity_name,
            "startFromFailure": self.start_from_failure,
        }
        return {k: v for k, v in view.items() if v is not None}


@dataclass(frozen=True)
class CreatedRun:
    run_id: str
    request_id: str | None


@dataclass(frozen=True)
class PipelineRun:
    run_id: str
    pipeline: str
    status: str
    message: str
    run_start: datetime | None
    run_end: datetime | None
    duration_ms: int | None
    last_updated: datetime | None
    run_group_id: str | None
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivityRun:
    name: str
    type: str
    status: str
    run_id: str | None
    start: datetime | None
    end: datetime | None
    duration_ms: int | None
    error_code: str
    failure_type: str
    message: str


@dataclass(frozen=True)
class RunQuery:
    """A ``queryPipelineRuns`` window: runs updated in [after, before), optionally by pipeline names."""

    updated_after: datetime
    updated_before: datetime
    pipelines: Sequence[str] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "lastUpdatedAfter": iso(self.updated_after),
            "lastUpdatedBefore": iso(self.updated_before),
        }
        if self.pipelines:
            body["filters"] = [{"operand": "PipelineName", "operator": "In", "values": sorted(set(self.pipelines))}]
        return body


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    """Azure's ISO 8601 times (7 fractional digits, ``Z``); None for null or absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_pipeline_run(data: Any, operation: str) -> PipelineRun:
    if not isinstance(data, dict) or not isinstance(data.get("runId"), str):
        raise UpstreamBadResponse(f"{operation} returned a pipeline run without a runId.")
    parameters = data.get("parameters")
    return PipelineRun(
        run_id=data["runId"],
        pipeline=_str(data.get("pipelineName")),
        status=_str(data.get("status")),
        message=_str(data.get("message")),
        run_start=parse_time(data.get("runStart")),
        run_end=parse_time(data.get("runEnd")),
        duration_ms=_int(data.get("durationInMs")),
        last_updated=parse_time(data.get("lastUpdated")),
        run_group_id=data.get("runGroupId") if isinstance(data.get("runGroupId"), str) else None,
        parameters={str(k): str(v) for k, v in parameters.items()} if isinstance(parameters, dict) else {},
    )


def parse_activity_run(data: Any) -> ActivityRun:
    item: dict[str, Any] = data if isinstance(data, dict) else {}
    raw_error = item.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    return ActivityRun(
        name=_str(item.get("activityName")),
        type=_str(item.get("activityType")),
        status=_str(item.get("status")),
        run_id=item.get("activityRunId") if isinstance(item.get("activityRunId"), str) else None,
        start=parse_time(item.get("activityRunStart")),
        end=parse_time(item.get("activityRunEnd")),
        duration_ms=_int(item.get("durationInMs")),
        error_code=_str(error.get("errorCode")),
        failure_type=_str(error.get("failureType")),
        message=_str(error.get("message")),
    )


def created_run(body: Any, request_id: str | None, operation: str) -> CreatedRun:
    """The run a create call started. A success that does not say which is reconciled, not refused:
    Azure may well have started it, and a caller told it failed would start it again."""
    if not isinstance(body, dict) or not isinstance(body.get("runId"), str) or not body["runId"]:
        raise OutcomeUnknown(
            f"{operation} succeeded without naming its runId; Azure may have started the run.", request_id=request_id
        )
    return CreatedRun(body["runId"], request_id)


def page(body: Any, operation: str) -> tuple[list[Any], str | None]:
    """The items and continuation token of a query response."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise UpstreamBadResponse(f"{operation} returned a page without a value list.")
    token = body.get("continuationToken")
    return body["value"], token if isinstance(token, str) and token else None


# Following continuation tokens stops here: a runaway token loop must not eat the request budget.
MAX_PAGES = 1000


class PipelineClient(TargetClient):
    """Pipeline runs of one ADF factory or Synapse workspace over their shared REST contract."""

    api_version: str
    supports_start_from_failure: bool
    read_role: str
    run_role: str

    @property
    def cancel_role(self) -> str:
        """The role a cancel needs, when it is not the one that starts runs."""
        return self.run_role

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        raise NotImplementedError

    def create_run(self, pipeline: str, parameters: Mapping[str, Any], options: StartOptions) -> CreatedRun:
        params: dict[str, str] = {}
        if options.reference_run_id:
            params["referencePipelineRunId"] = options.reference_run_id
        if options.is_recovery is not None:
            params["isRecovery"] = str(options.is_recovery).lower()
        if options.start_activity_name:
            params["startActivityName"] = options.start_activity_name
        if options.start_from_failure is not None and self.supports_start_from_failure:
            params["startFromFailure"] = str(options.start_from_failure).lower()
        body, request_id = self._call(
            "createRun",
            "POST",
            f"/pipelines/{pipeline}/createRun",
            role=self.run_role,
            creates=True,
            params=params,
            body=dict(parameters),
        )
        return created_run(body, request_id, "createRun")

    def declared_parameters(self, pipeline: str) -> dict[str, str]:
        """The parameters the pipeline's definition declares, name -> type (Pipelines_Get)."""
        body, _ = self._call("getPipeline", "GET", f"/pipelines/{pipeline}", role=self.read_role)
        properties = body.get("properties") if isinstance(body, dict) else None
        declared = properties.get("parameters") if isinstance(properties, dict) else None
        if not isinstance(declared, dict):
            return {}
        return {
            str(name): str(spec.get("type", "")) if isinstance(spec, dict) else "" for name, spec in declared.items()
        }

    def get_run(self, run_id: str) -> PipelineRun:
        body, _ = self._call("getPipelineRun", "GET", f"/pipelineruns/{run_id}", role=self.read_role)
        return parse_pipeline_run(body, "getPipelineRun")

    def query_runs(self, query: RunQuery) -> Iterator[PipelineRun]:
        request = query.body()
        for _ in range(MAX_PAGES):
            body, _ = self._call("queryPipelineRuns", "POST", "/queryPipelineRuns", role=self.read_role, body=request)
            items, token = page(body, "queryPipelineRuns")
            for item in items:
                yield parse_pipeline_run(item, "queryPipelineRuns")
            if token is None:
                return
            request = {**request, "continuationToken": token}

    def query_activity_runs(self, pipeline: str, run_id: str, after: datetime, before: datetime) -> list[ActivityRun]:
        request: dict[str, Any] = {"lastUpdatedAfter": iso(after), "lastUpdatedBefore": iso(before)}
        activities: list[ActivityRun] = []
        for _ in range(MAX_PAGES):
            body, _ = self._call(
                "queryActivityRuns",
                "POST",
                self._activity_runs_path(pipeline, run_id),
                role=self.read_role,
                body=request,
            )
            items, token = page(body, "queryActivityRuns")
            activities.extend(parse_activity_run(item) for item in items)
            if token is None:
                break
            request = {**request, "continuationToken": token}
        return activities

    def cancel_run(self, run_id: str, *, recursive: bool) -> None:
        self._call(
            "cancelPipelineRun",
            "POST",
            f"/pipelineruns/{run_id}/cancel",
            role=self.cancel_role,
            params={"isRecursive": "true"} if recursive else None,
        )
