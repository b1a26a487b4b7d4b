"""Microsoft Fabric's REST API (``https://api.fabric.microsoft.com/v1``) under ``/v1`` on the emulator.

Only what a pipeline target needs: ``Workspaces_GetWorkspace``, ``Items_ListItems`` (to resolve a
pipeline by display name), ``Items_GetItem`` (diagnostics), the job scheduler's run / get / list /
cancel of item job instances (``fabric-platform-v1.json``), the data-pipeline twins
``BackgroundJobs_*`` (``fabric-dataPipeline-v1.json``) and the activity-run query, which no official
swagger has (``fabric-datapipeline-queryactivityruns-notes.md``: the least certain part, best-known
shape only).

Like the other APIs, a job instance's life is planned when it is created and read off the emulated
clock: ``NotStarted`` for the pipeline's ``queue_s``, ``InProgress`` while its activities run, then
``Completed`` or ``Failed`` (with ``failureReason``). Fabric has no "cancelling" status, so a cancelled
instance keeps its status for one emulated second, then reads ``Cancelled``. A pipeline with
``dedupe`` records a run requested while another of its instances is active as ``Deduped``, the
spec's "already running and this job instance is skipped". As the list operation says Fabric does,
only the 100 most recently completed instances of an item are kept (active ones are never dropped);
an older one answers 404 like an unknown id. The admin listing still shows every instance created.

Errors use Fabric's ``ErrorResponse`` (``{requestId, errorCode, message}``, rendered by
``server.render_error`` for the ``fabric`` family). Codes come from the operations' documented lists;
status codes for ``JobAlreadyCompleted`` and the body checks, and all the wording, are plausible,
not verified against the service.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .clock import Clock, isoformat
from .fabric_config import FabricPipelineSpec, FabricWorkspaceSpec
from .queries import activity_rows, parse_query
from .server import ApiError, Request, Response, Router
from .timelines import ActivityPlan

API_PREFIX = "/v1"
ITEM = API_PREFIX + "/workspaces/{workspaceId}/items/{itemId}"
PIPELINE = API_PREFIX + "/workspaces/{workspaceId}/dataPipelines/{dataPipelineId}"
# jobType values a data pipeline accepts: "Pipeline" on the generic job scheduler (Learn's pipeline
# REST API page), "Execute" in the data-pipeline swagger's own job routes.
JOB_TYPES = ("Pipeline", "Execute")
RETAINED_COMPLETED = 100  # "Most items have a limit of 100 recently completed entities" (ListItemJobInstances)
CANCEL_GRACE_S = 1.0
ACTIVE = frozenset({"NotStarted", "InProgress"})


def fabric_time(epoch: float) -> str:
    """Fabric's job times: seven fractional digits and no zone (``2023-04-22T06:35:00.7812154``)."""
    return isoformat(epoch).removesuffix("Z")


@dataclass(eq=False)
class FabricJob:
    """One item job instance: its planned timeline, what it was given, and any cancel request."""

    id: str
    seq: int
    workspace_id: str
    item_id: str
    pipeline: str
    job_type: str
    created: float
    started: float
    ended: float
    outcome: str
    failure: dict[str, str] | None
    activities: tuple[ActivityPlan, ...]
    parameters: dict[str, Any] | None
    root_activity_id: str
    create_correlation_id: str | None  # the create call's x-ms-correlation-request-id, admin listing only
    deduped: bool = False
    cancel_at: float | None = None
    retained: bool = True

    def status(self, now: float) -> str:
        if self.deduped:
            return "Deduped"
        if self.cancel_at is not None:
            if now >= self.cancel_at + CANCEL_GRACE_S:
                return "Cancelled"
            return "NotStarted" if now < self.started else "InProgress"
        if now < self.started:
            return "NotStarted"
        if now < self.ended:
            return "InProgress"
        return "Completed" if self.outcome == "Succeeded" else "Failed"

    def end(self, now: float) -> float | None:
        """When the instance reached its final status, ``None`` while it is active."""
        status = self.status(now)
        if status == "Deduped":
            return self.created
        if status == "Cancelled" and self.cancel_at is not None:
            return self.cancel_at + CANCEL_GRACE_S
        return self.ended if status in ("Completed", "Failed") else None

    def to_json(self, now: float) -> dict[str, Any]:
        """``ItemJobInstance`` as the spec and its examples show it (``failureReason: null`` unless failed)."""
        status = self.status(now)
        end = self.end(now)
        began: float | None = self.created if self.deduped else self.started
        if self.cancel_at is not None and self.cancel_at < self.started:
            began = None  # cancelled in the queue: it never started
        return {
            "id": self.id,
            "itemId": self.item_id,
            "jobType": self.job_type,
            "invokeType": "Manual",
            "status": status,
            "rootActivityId": self.root_activity_id,
            "startTimeUtc": fabric_time(began) if began is not None and now >= began else None,
            "endTimeUtc": fabric_time(end) if end is not None else None,
            "failureReason": dict(self.failure) if status == "Failed" and self.failure else None,
        }

    def activity_view(self, plan: ActivityPlan, now: float) -> tuple[str, float | None] | None:
        """An activity's ADF-style status and end as of ``now``; ``None`` while it has not started."""
        cancel = None if self.cancel_at is None else self.cancel_at + CANCEL_GRACE_S
        if self.deduped or now < plan.start or (cancel is not None and plan.start >= cancel):
            return None
        if cancel is not None and cancel < plan.end and now >= cancel:
            return "Cancelled", cancel
        if now < plan.end:
            return "InProgress", None
        return plan.outcome, plan.end

    def activity_json(self, plan: ActivityPlan, status: str, end: float | None) -> dict[str, Any]:
        """An ADF ``ActivityRun``, the shape the notes give for Fabric's activity-run query."""
        failed = status == "Failed" and plan.error is not None
        error = dict(plan.error) if failed and plan.error else {"errorCode": "", "message": "", "failureType": ""}
        error["target"] = plan.name
        return {
            "pipelineName": self.pipeline,
            "pipelineRunId": self.id,
            "activityName": plan.name,
            "activityType": plan.type,
            "activityRunId": plan.run_id,
            "status": status,
            "activityRunStart": isoformat(plan.start),
            "activityRunEnd": isoformat(end) if end is not None else None,
            "durationInMs": round((end - plan.start) * 1000) if end is not None else None,
            "input": {},
            "output": {},
            "error": error,
            "retryAttempt": None,
            "userProperties": {},
        }


def _plan(spec: FabricPipelineSpec, started: float) -> tuple[tuple[ActivityPlan, ...], float]:
    """Each activity's times and outcome, stopping at the failing one, and the instance's end."""
    share = spec.duration_s / max(len(spec.activities), 1)
    plans: list[ActivityPlan] = []
    moment = started
    for activity in spec.activities:
        failing = spec.failure is not None and spec.failure.activity == activity.name
        error = None
        if failing and spec.failure is not None:
            error = {"errorCode": spec.failure.error_code, "message": spec.failure.message, "failureType": "UserError"}
        plans.append(
            ActivityPlan(
                str(uuid.uuid4()),
                activity.name,
                activity.type,
                moment,
                moment + share,
                "Failed" if failing else "Succeeded",
                error,
            )
        )
        moment += share
        if failing:
            break
    return tuple(plans), moment


class FabricApi:
    """Fabric workspaces, their pipeline items and job instances, by GUID, case-insensitively."""

    def __init__(
        self,
        workspaces: Sequence[FabricWorkspaceSpec],
        clock: Clock,
        *,
        page_size: Callable[[], int],
        endpoint: Callable[[], str],
    ) -> None:
        self.clock = clock
        self.page_size = page_size
        self.endpoint = endpoint
        self._workspaces = {w.id: w for w in workspaces}
        self._items = {(w.id, p.id): p for w in workspaces for p in w.pipelines}
        self._lock = threading.Lock()
        self._jobs: dict[str, FabricJob] = {}
        self._by_item: dict[tuple[str, str], list[FabricJob]] = {key: [] for key in self._items}
        self._seq = itertools.count(1)

    def register(self, router: Router) -> None:
        add = router.add
        add("Workspaces_GetWorkspace", "GET", API_PREFIX + "/workspaces/{workspaceId}", self.get_workspace, "fabric")
        add("Items_ListItems", "GET", API_PREFIX + "/workspaces/{workspaceId}/items", self.list_items, "fabric")
        add("Items_GetItem", "GET", ITEM, self.get_item, "fabric")
        add("JobScheduler_RunOnDemandItemJob", "POST", ITEM + "/jobs/{jobType}/instances", self.run, "fabric")
        # The older form with ?jobType=, "still supported" per the operation's description.
        add("JobScheduler_RunOnDemandItemJob", "POST", ITEM + "/jobs/instances", self.run, "fabric")
        add("JobScheduler_ListItemJobInstances", "GET", ITEM + "/jobs/instances", self.list_jobs, "fabric")
        add("JobScheduler_GetItemJobInstance", "GET", ITEM + "/jobs/instances/{jobInstanceId}", self.get, "fabric")
        add(
            "JobScheduler_CancelItemJobInstance",
            "POST",
            ITEM + "/jobs/instances/{jobInstanceId}/cancel",
            self.cancel,
            "fabric",
        )
        add("BackgroundJobs_RunOnDemandExecute", "POST", PIPELINE + "/jobs/execute/instances", self.run, "fabric")
        add(
            "BackgroundJobs_ListExecuteJobInstances",
            "GET",
            PIPELINE + "/jobs/execute/instances",
            self.list_jobs,
            "fabric",
        )
        add(
            "BackgroundJobs_GetExecuteJobInstance",
            "GET",
            PIPELINE + "/jobs/execute/instances/{jobInstanceId}",
            self.get,
            "fabric",
        )
        add(
            "DataPipelines_QueryActivityRuns",
            "POST",
            API_PREFIX + "/workspaces/{workspaceId}/datapipelines/pipelineruns/{jobInstanceId}/queryactivityruns",
            self.query_activity_runs,
            "fabric",
        )

    # -- lookups ---------------------------------------------------------------------------------

    def _workspace(self, request: Request) -> FabricWorkspaceSpec:
        workspace = self._workspaces.get(request.params["workspaceId"].lower())
        if workspace is None:
            raise ApiError(404, "WorkspaceNotFound", "The requested workspace was not found.")
        return workspace

    def _item(self, request: Request) -> tuple[FabricWorkspaceSpec, FabricPipelineSpec]:
        workspace = self._workspace(request)
        item_id = (request.params.get("itemId") or request.params["dataPipelineId"]).lower()
        pipeline = self._items.get((workspace.id, item_id))
        if pipeline is None:
            raise ApiError(404, "ItemNotFound", "The requested item was not found.")
        return workspace, pipeline

    def _job(self, workspace_id: str, job_id: str, item_id: str | None = None) -> FabricJob:
        with self._lock:
            self._prune(self.clock.now())
            job = self._jobs.get(job_id.lower())
        if (
            job is None
            or not job.retained
            or job.workspace_id != workspace_id
            or (item_id is not None and job.item_id != item_id)
        ):
            raise ApiError(404, "EntityNotFound", "The requested job instance was not found.")
        return job

    def _location(self, job: FabricJob) -> str:
        return f"{self.endpoint()}/workspaces/{job.workspace_id}/items/{job.item_id}/jobs/instances/{job.id}"

    # -- handlers --------------------------------------------------------------------------------

    def get_workspace(self, request: Request) -> Response:
        workspace = self._workspace(request)
        return Response(
            200,
            {
                "id": workspace.id,
                "displayName": workspace.name,
                "description": "",
                "type": "Workspace",
                "capacityId": workspace.capacity_id,
                "capacityAssignmentProgress": "Completed",
            },
        )

    def list_items(self, request: Request) -> Response:
        """All pipeline items in one page (an emulated workspace holds few); ``type`` filters them."""
        workspace = self._workspace(request)
        wanted = request.query.get("type")
        items = [
            _item_json(workspace, p) for p in workspace.pipelines if wanted is None or wanted.lower() == "datapipeline"
        ]
        return Response(200, {"value": items})

    def get_item(self, request: Request) -> Response:
        """``Items_GetItem``: the spec's ``Item``; an unknown id is ``ItemNotFound``."""
        workspace, pipeline = self._item(request)
        return Response(200, _item_json(workspace, pipeline))

    def run(self, request: Request) -> Response:
        workspace, pipeline = self._item(request)
        job_type = _job_type(request)
        parameters = _parameters(request.json())
        now = self.clock.now()
        with self._lock:
            self._prune(now)
            siblings = self._by_item[(workspace.id, pipeline.id)]
            deduped = pipeline.dedupe and any(j.job_type == job_type and j.status(now) in ACTIVE for j in siblings)
            started = now + pipeline.queue_s
            activities, ended = _plan(pipeline, started)
            failure = None
            if pipeline.failure is not None:
                failure = {
                    "requestId": str(uuid.uuid4()),
                    "errorCode": pipeline.failure.error_code,
                    "message": pipeline.failure.message,
                }
            job = FabricJob(
                id=str(uuid.uuid4()),
                seq=next(self._seq),
                workspace_id=workspace.id,
                item_id=pipeline.id,
                pipeline=pipeline.name,
                job_type=job_type,
                created=now,
                started=now if deduped else started,
                ended=now if deduped else ended,
                outcome=pipeline.outcome,
                failure=failure,
                activities=() if deduped else activities,
                parameters=parameters,
                root_activity_id=str(uuid.uuid4()),
                create_correlation_id=request.correlation_request_id,
                deduped=deduped,
            )
            self._jobs[job.id] = job
            siblings.append(job)
        return Response(202, None, {"Location": self._location(job), "Retry-After": str(workspace.retry_after_s)})

    def get(self, request: Request) -> Response:
        workspace, pipeline = self._item(request)
        job = self._job(workspace.id, request.params["jobInstanceId"], pipeline.id)
        now = self.clock.now()
        headers = {"Retry-After": str(workspace.retry_after_s)} if job.status(now) in ACTIVE else {}
        return Response(200, job.to_json(now), headers)

    def list_jobs(self, request: Request) -> Response:
        """Newest first, ``page_size`` per page; the token names the last instance returned, so
        instances created between pages neither repeat nor hide older ones."""
        workspace, pipeline = self._item(request)
        before = _decode_token(request.query.get("continuationtoken"))
        now = self.clock.now()
        with self._lock:
            self._prune(now)
            jobs = [j for j in reversed(self._by_item[(workspace.id, pipeline.id)]) if j.retained]
        if before is not None:
            jobs = [j for j in jobs if j.seq < before]
        size = self.page_size()
        page = jobs[:size]
        body: dict[str, Any] = {"value": [j.to_json(now) for j in page]}
        if len(jobs) > size:
            token = _encode_token(page[-1].seq)
            body["continuationToken"] = token
            body["continuationUri"] = (
                f"{self.endpoint()}{request.path.removeprefix(API_PREFIX)}?continuationToken={quote(token)}"
            )
        return Response(200, body)

    def cancel(self, request: Request) -> Response:
        workspace, pipeline = self._item(request)
        job = self._job(workspace.id, request.params["jobInstanceId"], pipeline.id)
        now = self.clock.now()
        with self._lock:
            if job.cancel_at is None:
                if job.status(now) not in ACTIVE:
                    raise ApiError(
                        400,
                        "JobAlreadyCompleted",
                        "Requested cancellation can not be processed as job instance run has completed.",
                    )
                job.cancel_at = now
        return Response(202, None, {"Location": self._location(job), "Retry-After": str(workspace.retry_after_s)})

    def query_activity_runs(self, request: Request) -> Response:
        """Best-known shape (not in any swagger): ADF's RunFilterParameters in, ``{value: [ActivityRun]}`` out."""
        workspace = self._workspace(request)
        job = self._job(workspace.id, request.params["jobInstanceId"])
        query = parse_query(request.json(), "activity")
        rows = activity_rows(job, query, self.clock.now())
        return Response(200, {"value": [job.activity_json(*row) for row in rows]})

    # -- retention and the admin view --------------------------------------------------------------

    def _prune(self, now: float) -> None:
        """Forgets all but the 100 most recently completed instances of each item (lock held)."""
        for jobs in self._by_item.values():
            done = [j for j in jobs if j.retained and j.end(now) is not None]
            if len(done) <= RETAINED_COMPLETED:
                continue
            done.sort(key=lambda j: (j.end(now) or 0.0, j.seq))
            for job in done[: len(done) - RETAINED_COMPLETED]:
                job.retained = False

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every instance ever created, for ``GET /_emulator/runs`` (``retained`` says if Fabric still lists it)."""
        now = self.clock.now()
        with self._lock:
            self._prune(now)
            jobs = sorted(self._jobs.values(), key=lambda j: j.seq)
        return [
            {
                "service": "fabric",
                "scope": f"fabric:{job.workspace_id}",
                "pipeline": job.pipeline,
                "itemId": job.item_id,
                "runId": job.id,
                "jobType": job.job_type,
                "status": job.status(now),
                "runStart": isoformat(job.created),
                "parameters": job.parameters,
                "retained": job.retained,
                "createCorrelationId": job.create_correlation_id,
            }
            for job in jobs
        ]


def _item_json(workspace: FabricWorkspaceSpec, pipeline: FabricPipelineSpec) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "type": "DataPipeline",
        "displayName": pipeline.name,
        "description": "",
        "workspaceId": workspace.id,
    }


def _job_type(request: Request) -> str:
    """The path's or (older form) query's jobType, in Fabric's spelling; the data-pipeline route is Execute."""
    if "dataPipelineId" in request.params:
        return "Execute"
    given = request.params.get("jobType") or request.query.get("jobtype") or ""
    for known in JOB_TYPES:
        if given.lower() == known.lower():
            return known
    raise ApiError(400, "InvalidJobType", f"The requested job type '{given}' is invalid.")


def _parameters(body: Any) -> dict[str, Any] | None:
    """``RunOnDemandItemJobRequest``: pipelines take ``executionData.parameters`` (name → value).

    The spec's top-level ``parameters`` list is "not broadly supported" and answers FeatureNotAvailable
    where it is not; the emulator takes the conservative reading that pipelines are such an item type,
    so code that relies on it is caught offline.
    """
    if body is None:
        return None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidInput", "Invalid request body.")
    if body.get("parameters") is not None:
        raise ApiError(400, "FeatureNotAvailable", "Parameter is not allowed for this item type or this item job type")
    execution = body.get("executionData")
    if execution is None:
        return None
    if not isinstance(execution, dict):
        raise ApiError(400, "InvalidInput", "Invalid request body: 'executionData' must be an object.")
    parameters = execution.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict) or not all(isinstance(name, str) and name for name in parameters):
        raise ApiError(
            400, "InvalidInput", "Invalid request body: 'executionData.parameters' must map names to values."
        )
    copied: dict[str, Any] = json.loads(json.dumps(parameters))
    return copied


def _encode_token(seq: int) -> str:
    """URL-safe and unpadded, so the token reads the same in the body and in ``continuationUri``."""
    return base64.urlsafe_b64encode(json.dumps({"before": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int | None:
    if not token:
        return None
    try:
        before = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["before"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "InvalidInput", "Invalid request input: the continuation token is not valid.") from exc
    if not isinstance(before, int) or isinstance(before, bool):
        raise ApiError(400, "InvalidInput", "Invalid request input: the continuation token is not valid.")
    return before
