"""Microsoft Fabric's REST API (``https://api.fabric.microsoft.com/v1``) as a pipeline target uses it.

The operations are the job scheduler's (fabric-platform-v1.json: ``JobScheduler_RunOnDemandItemJob``,
``GetItemJobInstance``, ``ListItemJobInstances``, ``CancelItemJobInstance``), the workspace and its items
(``Workspaces_GetWorkspace``, ``Items_ListItems``, ``Items_GetItem``), and the activity-run query of a
pipeline run, which no official swagger has (fabric-datapipeline-queryactivityruns-notes.md: ADF's
``RunFilterParameters`` in, ``{value: [ActivityRun]}`` out, read tolerantly).

Fabric names everything by GUID, has no ``api-version`` (the version is in the path), answers a run
with ``202`` and the job instance's URL in ``Location`` only, and reports a job instance without the
parameters it was given. Permissions are workspace roles, not Azure RBAC, so the role hints name them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.azure.transport import TargetClient, UpstreamClient
from shared.config import names
from shared.errors import OutcomeUnknown, UpstreamBadResponse
from shared.kinds.pipelines import MAX_PAGES, ActivityRun, CreatedRun, iso, parse_activity_run, parse_time

# The job type a data pipeline runs as on the generic job scheduler (Learn's pipeline REST API page).
PIPELINE_JOB_TYPE = "Pipeline"
MANUAL = "Manual"  # invokeType of an on-demand run; scheduled runs say "Scheduled"
ITEM_TYPE = "DataPipeline"


class JobStatus:
    """``ItemJobStatus``; "additional statuses may be added over time"."""

    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    DEDUPED = "Deduped"  # another instance of the job type was running: this one was skipped


@dataclass(frozen=True)
class FailureReason:
    """A failed job instance's ``failureReason`` (an ``ErrorResponse``)."""

    error_code: str
    message: str

    def text(self) -> str:
        return f"{self.error_code}: {self.message}" if self.error_code else self.message


@dataclass(frozen=True)
class JobInstance:
    """An ``ItemJobInstance``: no parameters, no creation time; ``start`` is null until it starts."""

    id: str
    item_id: str
    job_type: str
    invoke_type: str
    status: str
    start: datetime | None
    end: datetime | None
    failure: FailureReason | None


@dataclass(frozen=True)
class FabricItem:
    id: str
    display_name: str
    type: str


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_job_instance(data: Any, operation: str) -> JobInstance:
    if not isinstance(data, dict) or not _str(data.get("id")):
        raise UpstreamBadResponse(f"{operation} returned a job instance without an id.")
    reason = data.get("failureReason")
    failure = None
    if isinstance(reason, dict) and (reason.get("message") or reason.get("errorCode")):
        failure = FailureReason(_str(reason.get("errorCode")), _str(reason.get("message")))
    return JobInstance(
        id=data["id"].lower(),
        item_id=_str(data.get("itemId")).lower(),
        job_type=_str(data.get("jobType")),
        invoke_type=_str(data.get("invokeType")),
        status=_str(data.get("status")),
        start=parse_time(data.get("startTimeUtc")),
        end=parse_time(data.get("endTimeUtc")),
        failure=failure,
    )


def parse_item(data: Any, operation: str) -> FabricItem:
    if not isinstance(data, dict) or not _str(data.get("id")):
        raise UpstreamBadResponse(f"{operation} returned an item without an id.")
    return FabricItem(data["id"].lower(), _str(data.get("displayName")), _str(data.get("type")))


def job_instance_id(location: str | None, item_id: str) -> str | None:
    """The job instance a run answer's ``Location`` names (``…/items/{item}/jobs/instances/{id}``), or
    None when it names none (the spec's older ``?jobType=`` examples point at the list instead)."""
    if not location:
        return None
    segments = urlsplit(location).path.rstrip("/").split("/")
    if len(segments) < 5 or [s.lower() for s in segments[-5:-1]] != ["items", item_id.lower(), "jobs", "instances"]:
        return None
    return segments[-1].lower() if names.FABRIC_ID.problem(segments[-1]) is None else None


def _page(body: Any, operation: str) -> tuple[list[Any], str | None]:
    """A Fabric page (``PaginatedResponse``): its ``value`` and ``continuationToken``."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise UpstreamBadResponse(f"{operation} returned a page without a value list.")
    token = body.get("continuationToken")
    return body["value"], token if isinstance(token, str) and token else None


class FabricClient(TargetClient):
    """Data pipelines and their job instances in one Fabric workspace."""

    def __init__(
        self, upstream: UpstreamClient, *, endpoint: str, workspace_id: str, workspace: str, scope: str, target: str
    ) -> None:
        super().__init__(upstream, base_url=f"{endpoint}/workspaces/{workspace_id}", scope=scope, target=target)
        where = f"Fabric workspace {workspace} (a workspace role, not Azure RBAC)"
        self.read_role = f"the Viewer role (or higher) on {where}"
        self.run_role = f"the Contributor role (or higher) on {where}: the least role that runs and cancels pipelines"

    def get_workspace(self) -> dict[str, Any]:
        """``Workspaces_GetWorkspace``, for diagnostics."""
        body, _ = self._call("getWorkspace", "GET", "", role=self.read_role)
        return body if isinstance(body, dict) else {}

    def list_items(self) -> Iterator[FabricItem]:
        """``Items_ListItems`` of type DataPipeline, every page."""
        params = {"type": ITEM_TYPE}
        for _ in range(MAX_PAGES):
            body, _ = self._call("listItems", "GET", "/items", role=self.read_role, params=params)
            items, token = _page(body, "listItems")
            for item in items:
                yield parse_item(item, "listItems")
            if token is None:
                return
            params = {"type": ITEM_TYPE, "continuationToken": token}

    def get_item(self, item_id: str) -> FabricItem:
        body, _ = self._call("getItem", "GET", f"/items/{item_id}", role=self.read_role)
        return parse_item(body, "getItem")

    def run_on_demand_item_job(self, item_id: str, parameters: Mapping[str, Any]) -> CreatedRun:
        """``JobScheduler_RunOnDemandItemJob`` with the pipeline's parameters in ``executionData`` (the
        request's top-level ``parameters`` list is "not broadly supported"). The answer is a 202 whose
        ``Location`` alone names the job instance; a success that names none is reconciled, not refused."""
        response = self._request(
            "runOnDemandItemJob",
            "POST",
            f"/items/{item_id}/jobs/{PIPELINE_JOB_TYPE}/instances",
            role=self.run_role,
            creates=True,
            body={"executionData": {"parameters": dict(parameters)}},
        )
        job_id = job_instance_id(response.headers.get("Location"), item_id)
        if job_id is None:
            raise OutcomeUnknown(
                "runOnDemandItemJob was accepted without naming its job instance in Location; Fabric may have "
                "started the run.",
                request_id=response.request_id,
            )
        return CreatedRun(job_id, response.request_id)

    def get_item_job_instance(self, item_id: str, job_id: str) -> JobInstance:
        body, _ = self._call(
            "getItemJobInstance", "GET", f"/items/{item_id}/jobs/instances/{job_id}", role=self.read_role
        )
        return parse_job_instance(body, "getItemJobInstance")

    def list_item_job_instances(self, item_id: str) -> Iterator[list[JobInstance]]:
        """``JobScheduler_ListItemJobInstances``, page by page (Fabric lists per item only, and keeps about
        the last 100 completed instances)."""
        params: dict[str, str] | None = None
        for _ in range(MAX_PAGES):
            body, _ = self._call(
                "listItemJobInstances", "GET", f"/items/{item_id}/jobs/instances", role=self.read_role, params=params
            )
            instances, token = _page(body, "listItemJobInstances")
            yield [parse_job_instance(item, "listItemJobInstances") for item in instances]
            if token is None:
                return
            params = {"continuationToken": token}

    def cancel_item_job_instance(self, item_id: str, job_id: str) -> None:
        self._call(
            "cancelItemJobInstance", "POST", f"/items/{item_id}/jobs/instances/{job_id}/cancel", role=self.run_role
        )

    def query_activity_runs(self, job_id: str, after: datetime, before: datetime) -> list[ActivityRun]:
        """The activity runs of a pipeline run (best-known shape: ``{value: [...]}``, or a bare list)."""
        request: dict[str, Any] = {
            "filters": [],
            "orderBy": [{"orderBy": "ActivityRunStart", "order": "ASC"}],
            "lastUpdatedAfter": iso(after),
            "lastUpdatedBefore": iso(before),
        }
        activities: list[ActivityRun] = []
        for _ in range(MAX_PAGES):
            body, _ = self._call(
                "queryActivityRuns",
                "POST",
                f"/datapipelines/pipelineruns/{job_id}/queryactivityruns",
                role=self.read_role,
                body=request,
            )
            if isinstance(body, list):
                return [parse_activity_run(item) for item in body]
            items, token = _page(body, "queryActivityRuns")
            activities.extend(parse_activity_run(item) for item in items)
            if token is None:
                break
            request = {**request, "continuationToken": token}
        return activities
