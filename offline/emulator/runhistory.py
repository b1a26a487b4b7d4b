"""Azure ML run history (data plane v1.0) on the region host, and the log files its SAS URLs name.

A job submitted through ARM is a run whose ``runId`` is the job name; a pipeline job's steps are its
child runs (aml-runhistory-notes.md). Routes sit under ``/azureml/{region}`` (the ``api`` URL of the
discovery document, ``https://<region>.api.azureml.ms`` in Azure). ``api-version`` is optional, as the
notes say, and must be ``v1.0`` when given. Tokens for ``https://ml.azure.com`` or ARM are accepted.

Log files: ``RunDetails.logFiles`` maps each name (``user_logs/std_log.txt``, and for a pipeline job
``logs/azureml/executionlogs.txt``) to an HTTPS URL with a SAS-like signature (HMAC of the path with a
per-instance key), served as ``text/plain`` without a bearer token, like a blob SAS download. A log
appears once the run is running; it holds the lines so far, and all of them once the run has ended.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .arm import stable_uuid
from .clock import isoformat
from .config import JobTemplateSpec
from .machinelearning import TERMINAL, MachineLearningApi, MlJob, MlJobStore, Step
from .server import ApiError, Request, Response, Router

HISTORY = (
    "/azureml/{region}/history/v1.0/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}"
)
LOGS = "/azureml-logs/{scope}/{runId}/{path}"  # each segment percent-encoded whole (a log name has slashes)
USER_LOG = "user_logs/std_log.txt"
EXECUTION_LOG = "logs/azureml/executionlogs.txt"
MAX_TOP = 1000


class RunHistoryApi:
    """Runs_Get, Runs_GetDetails, Runs_GetChild (and their by-experiment forms) and log downloads."""

    def __init__(self, machine_learning: MachineLearningApi, store: MlJobStore, base_url: Callable[[], str]) -> None:
        self.ml = machine_learning
        self.store = store
        self.base_url = base_url
        self._key = secrets.token_bytes(32)

    def register(self, router: Router) -> None:
        add = router.add
        add("Runs_Get", "GET", HISTORY + "/runs/{runId}", self.get_run, "aml")
        add("Runs_GetDetails", "GET", HISTORY + "/runs/{runId}/details", self.get_details, "aml")
        add("Runs_GetChild", "GET", HISTORY + "/runs/{runId}/children", self.get_children, "aml")
        add(
            "Runs_GetDetailsByExperimentName",
            "GET",
            HISTORY + "/experiments/{experimentName}/runs/{runId}/details",
            self.get_details,
            "aml",
        )
        add(
            "Runs_GetChildByExperimentName",
            "GET",
            HISTORY + "/experiments/{experimentName}/runs/{runId}/children",
            self.get_children,
            "aml",
        )
        add("RunLogs_Download", "GET", LOGS, self.download_log, "anonymous")

    def _run(self, request: Request) -> tuple[str, MlJob, Step | None]:
        version = request.query.get("api-version")
        if version not in (None, "", "v1.0"):
            raise ApiError(400, "InvalidApiVersion", f"The api-version '{version}' is not supported; use v1.0.")
        _, scope = self.ml.workspace(request)
        run_id = request.params["runId"]
        found = self.store.find_run(scope, run_id)
        experiment = request.params.get("experimentName")
        if found is not None and experiment is not None and _experiment(found[0]).lower() != experiment.lower():
            found = None
        if found is None:
            raise ApiError(404, "RunNotFound", f"Run {run_id} was not found", target="runId")
        return scope, found[0], found[1]

    def get_run(self, request: Request) -> Response:
        _, job, step = self._run(request)
        return Response(200, self._render(job, step))

    def get_details(self, request: Request) -> Response:
        scope, job, step = self._run(request)
        run = self._render(job, step)
        now = self.store.clock.now()
        details = {
            key: run[key]
            for key in (
                "runId",
                "runUuid",
                "parentRunId",
                "rootRunId",
                "status",
                "startTimeUtc",
                "endTimeUtc",
                "error",
                "warnings",
                "tags",
                "properties",
                "target",
                "createdBy",
                "lastModifiedUtc",
                "duration",
                "runTypeV2",
                "services",
                "inputs",
                "outputs",
            )
        }
        details["createdTimeUtc"] = run["createdUtc"]
        details["logFiles"] = {name: self._log_url(scope, run["runId"], name) for name in _log_names(job, step, now)}
        details["runDefinition"] = None if step else job.definition
        return Response(200, details)

    def get_children(self, request: Request) -> Response:
        _, job, step = self._run(request)
        top = request.query.get("$top")
        if top not in (None, "") and not (top.isdigit() and 0 < int(top) <= MAX_TOP):
            raise ApiError(400, "BadRequest", f"$top must be between 1 and {MAX_TOP}.", target="$top")
        children = [] if step is not None else job.started_steps(self.store.clock.now())
        if top:
            children = children[: int(top)]
        return Response(
            200,
            {"value": [self._render(job, child) for child in children], "continuationToken": None, "nextLink": None},
        )

    def download_log(self, request: Request) -> Response:
        scope, run_id, path = request.params["scope"], request.params["runId"], request.params["path"]
        if not hmac.compare_digest(request.query.get("sig", ""), self._signature(scope, run_id, path)):
            raise ApiError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
                "correctly including the signature.",
            )
        found = self.store.find_run(scope, run_id)
        if found is None:
            raise ApiError(404, "BlobNotFound", "The specified blob does not exist.")
        job, step = found
        now = self.store.clock.now()
        if path not in _log_names(job, step, now):
            raise ApiError(404, "BlobNotFound", "The specified blob does not exist.")
        lines = _log_lines(job, step, path, now)
        text = "".join(f"{line}\n" for line in lines).encode()
        return Response(200, None, {"Content-Type": "text/plain; charset=utf-8"}, raw=text)

    def _signature(self, scope: str, run_id: str, path: str) -> str:
        return hmac.new(self._key, f"{scope}/{run_id}/{path}".encode(), hashlib.sha256).hexdigest()

    def _log_url(self, scope: str, run_id: str, name: str) -> str:
        signature = self._signature(scope, run_id, name)
        return (
            f"{self.base_url()}/azureml-logs/{quote(scope, safe='')}/{quote(run_id, safe='')}/{quote(name, safe='')}"
            f"?sv=2019-07-07&sr=b&sp=r&sig={signature}"
        )

    def _render(self, job: MlJob, step: Step | None) -> dict[str, Any]:
        """The spec's ``Run`` for the job itself or one of its steps."""
        now = self.store.clock.now()
        workspace = job.workspace
        definition = job.definition
        scope_id = f"{workspace.subscription_id}/{workspace.resource_group}/{workspace.name}"
        compute = str(definition.get("computeId") or "").rstrip("/").rsplit("/", 1)[-1] or None
        if step is None:
            run_id, status = job.name, job.status(now)
            cancelled_early = job.cancel_at is not None and job.cancel_at < job.running_at
            started = job.running_at if now >= job.running_at and not cancelled_early else None
            ended = job.ended_at(now)
            created = job.created
            failed = status == "Failed"
            run_type = "azureml.PipelineRun" if job.job_type == "Pipeline" else "azureml.scriptrun"
            name = str(definition.get("displayName") or job.name)
            tags = dict(definition.get("tags", {}))
            properties = {**definition.get("properties", {}), "azureml.runsource": run_type}
        else:
            run_id, status = step.run_id, job.step_status(step, now)
            started, created = step.start, step.start
            ended = step.end if status in ("Completed", "Failed") else None
            if status == "Canceled" and job.cancel_at is not None:
                ended = job.cancel_at + 1
            failed = status == "Failed"
            run_type, name, tags = "azureml.StepRun", step.name, {}
            properties = {"azureml.runsource": "azureml.StepRun", "azureml.nodeid": step.name}
        error = _error(job.template) if failed else None
        return {
            "runId": run_id,
            "runUuid": _uuid(scope_id, run_id),
            "parentRunId": job.name if step else None,
            "parentRunUuid": _uuid(scope_id, job.name) if step else None,
            "rootRunId": job.name,
            "rootRunUuid": _uuid(scope_id, job.name),
            "experimentId": _uuid(scope_id, "experiment", _experiment(job)),
            "runNumber": job.seq,
            "name": name,
            "displayName": name,
            "description": definition.get("description") if step is None else None,
            "status": status,
            "createdUtc": isoformat(created),
            "startTimeUtc": isoformat(started) if started is not None else None,
            "endTimeUtc": isoformat(ended) if ended is not None else None,
            "lastModifiedUtc": isoformat(max(job.modified, ended or 0.0)),
            "duration": _duration(started, ended if ended is not None else now) if started is not None else None,
            "error": error,
            "warnings": None,
            "tags": tags,
            "properties": properties,
            "parameters": {},
            "inputs": {},
            "outputs": {},
            "services": {},
            "target": compute,
            "hidden": False,
            "runType": run_type,
            "runTypeV2": {
                "orchestrator": "Execution",
                "traits": ["azureml.PipelineRun"] if run_type == "azureml.PipelineRun" else [],
                "attribution": None,
                "computeType": "AmlcCompute" if compute else None,
            },
            "createdBy": {"userObjectId": None, "userName": "id-pipeline-gateway", "userTenantId": None},
        }


def _experiment(job: MlJob) -> str:
    return str(job.definition.get("experimentName") or "Default")


def _uuid(*parts: str) -> str:
    return stable_uuid("aml-run", *parts)


def _duration(start: float, end: float) -> str:
    seconds = max(end - start, 0.0)
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{int((seconds - whole) * 1e6):06d}"


def _error(template: JobTemplateSpec) -> dict[str, Any]:
    """``ErrorResponse`` → ``RootError`` as run history reports a run's own failure."""
    return {
        "error": {
            "code": template.error_code,
            "severity": None,
            "message": template.error_message,
            "messageFormat": None,
            "messageParameters": {},
            "referenceCode": None,
            "detailsUri": None,
            "target": None,
            "details": [],
            "innerError": None,
            "additionalInfo": [],
        },
        "correlation": None,
        "environment": None,
        "location": None,
        "time": None,
        "componentName": "CommonRuntime",
    }


def _log_names(job: MlJob, step: Step | None, now: float) -> list[str]:
    if step is not None:
        return [USER_LOG]
    if job.job_type == "Pipeline":
        return [EXECUTION_LOG] if now >= job.running_at else []
    started = now >= job.running_at and not (job.cancel_at is not None and job.cancel_at < job.running_at)
    return [USER_LOG] if started else []


def _log_lines(job: MlJob, step: Step | None, path: str, now: float) -> list[str]:
    """The configured lines (the failing command or step's ``log_lines``), framed like a user log."""
    template = job.template
    if path == EXECUTION_LOG:
        lines = [f"[{isoformat(job.running_at)}] Submitting {len(template.steps)} runs."]
        for item in job.started_steps(now):
            status = job.step_status(item, now)
            lines.append(f"[{isoformat(item.start)}] Step {item.name} ({item.run_id}) started.")
            if status in TERMINAL:
                lines.append(f"[{isoformat(item.end)}] Step {item.name} ({item.run_id}) {status}.")
        return lines
    failing = step.fails if step is not None else job.fails
    status = job.step_status(step, now) if step is not None else job.status(now)
    lines = [f"Running {step.name if step else job.definition.get('command', job.name)}"]
    configured = list(template.log_lines)
    body = configured if (failing or step is None) else [f"{step.name if step else job.name}: done"]
    if status not in TERMINAL:
        return lines + body[: len(body) // 2]
    if failing and status == "Failed":
        return [*lines, *body, f"{template.error_code}: {template.error_message}"]
    return [*lines, *body]
