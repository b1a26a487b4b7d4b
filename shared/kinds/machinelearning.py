"""Azure Machine Learning jobs: the catalog entry (a workspace and its job templates), how the poller
follows a workspace's jobs, and the kind, started through ``/targets/{t}/jobs/{template}/runs``.

Invariants: a job is PUT under a name derived from the gateway's run id and tagged with that id, so a
retried or reconciled submit can never create a second job (Azure ML answers a PUT of the same name
and definition with the existing job), and a lost answer is found by reading the job by name. The
poller lists the workspace's gateway-tagged jobs of one job type, newest first, only as far back as
the oldest live run; a job the pages missed is read singly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import field_validator, model_validator

from shared.api.requests import JobRunRequest
from shared.config import names
from shared.config.settings import Settings
from shared.config.targets import AccessRule, ArmTargetEntry, check_name
from shared.errors import GatewayError, NotAllowed, UpstreamNotFound, ValidationFailed
from shared.kinds.base import (
    WINDOW_SKEW,
    Azure,
    FailedActivity,
    FailureDetails,
    FailureSignature,
    Match,
    Observation,
    Observed,
    RunKind,
    RunNames,
    Submission,
    Submitted,
)
from shared.kinds.checks import Check, finding, run_check, run_checks, skipped
from shared.kinds.ml_client import HistoryRun, MachineLearningClient, MlJob, MlStatus, RunHistoryClient
from shared.kinds.ml_templates import RUN_ID_TAG, MlJobTemplate
from shared.kinds.network import private_dns_check
from shared.runs.model import Run, RunStatus

if TYPE_CHECKING:
    from shared.api.requests import RerunRequest

_LOGGER = logging.getLogger(__name__)

MAX_LIST_PAGES = 50  # a bound on one tick's listing: the window stops it long before, in practice
USER_LOGS = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt", "logs/azureml/executionlogs.txt")

# NotResponding and Paused are not ends: the job may come back (a node recovers, someone resumes it), so
# the run stays live, and maxDurationMinutes raises the overdue alert if it never does. Unknown too.
_STATUS = {
    MlStatus.NOT_STARTED: RunStatus.QUEUED,
    MlStatus.STARTING: RunStatus.QUEUED,
    MlStatus.PROVISIONING: RunStatus.QUEUED,
    MlStatus.PREPARING: RunStatus.QUEUED,
    MlStatus.QUEUED: RunStatus.QUEUED,
    MlStatus.RUNNING: RunStatus.IN_PROGRESS,
    MlStatus.FINALIZING: RunStatus.IN_PROGRESS,
    MlStatus.NOT_RESPONDING: RunStatus.IN_PROGRESS,
    MlStatus.PAUSED: RunStatus.IN_PROGRESS,
    MlStatus.UNKNOWN: RunStatus.IN_PROGRESS,
    MlStatus.CANCEL_REQUESTED: RunStatus.CANCELING,
    MlStatus.COMPLETED: RunStatus.SUCCEEDED,
    MlStatus.FAILED: RunStatus.FAILED,
    MlStatus.CANCELED: RunStatus.CANCELLED,
}


def job_name(run_id: str) -> str:
    """The job's name in Azure ML: the run id with its dot made an underscore (job names allow letters,
    digits, hyphens and underscores; target names hold no underscore, so no two run ids share one)."""
    return run_id.replace(".", "_")


class MachineLearningTarget(ArmTargetEntry):
    kind: Literal["machinelearning"]
    workspace_name: str
    # Run history's host: discovered from the workspace unless given (a region's https://<region>.api.azureml.ms).
    run_history_endpoint: str | None = None
    jobs: tuple[MlJobTemplate, ...] = ()

    @field_validator("workspace_name")
    @classmethod
    def _workspace(cls, value: str) -> str:
        return check_name(names.ML_WORKSPACE, value)

    @field_validator("run_history_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("https://") or any(c in value for c in "?#@ ")):
            raise ValueError("runHistoryEndpoint must be an https:// URL such as https://westeurope.api.azureml.ms")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _templates(self) -> MachineLearningTarget:
        if self.pipelines:
            raise ValueError("an Azure ML target lists job templates under 'jobs', not pipelines")
        seen: set[str] = set()
        for template in self.jobs:
            if template.match.casefold() in seen:
                raise ValueError(f"job template {template.match!r} is listed twice")
            seen.add(template.match.casefold())
        return self

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    @property
    def location(self) -> str:
        return f"Azure ML workspace {self.workspace_name} ({self.resource_group})"

    def described(self) -> dict[str, str]:
        return {"workspaceName": self.workspace_name}


def observed(job: MlJob, run: HistoryRun | None = None) -> Observed:
    """A job in our terms; its times come from run history (``run``), which the poller reads only for
    a job that has ended (the ARM resource carries none)."""
    start, end = (run.start, run.end) if run else (None, None)
    duration = int((end - start).total_seconds() * 1000) if start and end else None
    return Observed(
        upstream_run_id=job.name,
        name=job.display_name,
        status=_STATUS.get(job.status, RunStatus.IN_PROGRESS),
        upstream_status=job.status,
        message=run.error_message if run else "",
        run_start=start,
        run_end=end,
        duration_ms=duration,
        submitted=job.created,
        tags=job.tags,
    )


class MlJobSource:
    """A workspace's gateway jobs of one job type (the ``Jobs_List`` filter), newest first."""

    def __init__(self, ml: MachineLearningClient, history: RunHistoryClient, job_type: str) -> None:
        self._ml = ml
        self._history = history
        self._job_type = job_type

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        observation = Observation()
        live = {r.upstream_run_id or job_name(r.id) for r in runs}
        oldest = min(r.created_at for r in runs) - WINDOW_SKEW
        token: str | None = None
        for page in range(MAX_LIST_PAGES):
            jobs, token = self._ml.list_jobs(self._job_type, RUN_ID_TAG, token)
            if page == 0:
                observation.clock_offset = self._ml.clock_offset()
            for job in jobs:
                observation.runs[job.name] = self._observed(job) if job.name in live else observed(job)
            # Azure ML's createdAt against our created_at, both wall-clock times: WINDOW_SKEW covers
            # the clocks' difference (the Date offset is not added: it would stop paging early).
            created = [job.created for job in jobs if job.created is not None]
            if token is None or (created and min(created) < oldest):
                break
        for run in runs:  # a lost create answer: the job, if any, has the name the gateway gave it
            name = job_name(run.id)
            if run.upstream_run_id is None and name not in observation.runs and (found := self.get(name)):
                observation.runs[name] = found
        return observation

    def _observed(self, job: MlJob) -> Observed:
        """A job of a live record; once it has ended, with its times from run history (one read per
        job that ended, since the ARM resource carries none)."""
        if job.status not in MlStatus.TERMINAL:
            return observed(job)
        try:
            return observed(job, self._history.get_run(job.name))
        except GatewayError as exc:
            _LOGGER.warning("Run history of job %s unavailable: %s", job.name, exc.detail)
            return observed(job)

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            return self._observed(self._ml.get_job(upstream_run_id))
        except UpstreamNotFound:
            return None

    def matches(self, run: Run, candidate: Observed) -> Match:
        """Proven by the name and the tag the gateway gave the job; any other job is never taken."""
        tagged = (candidate.tags or {}).get(RUN_ID_TAG) == run.id
        return Match.PROVEN if tagged and candidate.upstream_run_id == job_name(run.id) else Match.NO

    def failure_details(self, run: Run, now: datetime) -> FailureDetails:
        """The failed step (a pipeline's failed child run, else the job itself), its error and the tail
        of its user log. Never raises: an alert without details beats no alert."""
        if not run.upstream_run_id:
            return FailureDetails()
        try:
            return self._details(run.upstream_run_id, pipeline=self._job_type == "Pipeline")
        except GatewayError as exc:
            _LOGGER.warning("Run history of %s unavailable for its alert: %s", run.id, exc.detail)
            return FailureDetails()

    def _details(self, name: str, *, pipeline: bool) -> FailureDetails:
        job = self._history.get_details(name)
        children = self._history.children(name) if pipeline else []
        failed = [child for child in children if child.status == MlStatus.FAILED]
        # RunDetails carries no display name: the step is named as the child run list names it.
        step = replace(self._history.get_details(failed[0].run_id), name=failed[0].name) if failed else None
        source = step or job
        log_name = next((n for n in USER_LOGS if n in source.log_files), None)
        tail: list[str] = []
        if log_name is not None:
            try:
                tail = self._history.log_tail(source.log_files[log_name])
            except GatewayError as exc:
                _LOGGER.warning("Log %s of run %s unavailable: %s", log_name, source.run_id, exc.detail)
        message = source.error_message or job.error_message
        if step is not None:
            failed_step = FailedActivity(
                name=step.name,
                type="pipeline step",
                error_code=step.error_code,
                failure_type=step.failure_type or job.failure_type,
                message=message,
                start=step.start,
                end=step.end,
            )
            log = f"{log_name} of step {step.name}" if log_name else None
            return FailureDetails(activities=[failed_step], log_tail=tail, log_name=log)
        # A command job's own error; its category and code are what a retry policy's ``on`` matches.
        code = job.error_code or job.failure_type
        errors = [f"{code}: {message}" if code else message] if message else []
        causes = [FailureSignature(job.failure_type, job.error_code)] if job.failure_type else []
        return FailureDetails(errors=errors, causes=causes, log_tail=tail, log_name=log_name)


class MachineLearningKind(RunKind[MachineLearningTarget, JobRunRequest]):
    """Azure ML command and pipeline jobs, started from the catalog's job templates."""

    name = "machinelearning"
    target_kind = "machinelearning"
    label = "Azure ML"
    studio = "Azure ML studio"
    family = "jobs"
    rules_field = "jobs"
    resource_noun = "Job template"
    step_noun = "step"
    target_model = MachineLearningTarget
    request_model = JobRunRequest

    def clients(self, azure: Azure, target: MachineLearningTarget) -> tuple[MachineLearningClient, RunHistoryClient]:
        settings = azure.settings

        def build() -> tuple[MachineLearningClient, RunHistoryClient]:
            common = {"resource_id": target.resource_id, "workspace": target.workspace_name, "target": target.name}
            ml = MachineLearningClient(
                azure.upstream,
                arm_endpoint=settings.arm_endpoint,
                scope=settings.arm_scope,
                api_version=settings.ml_api_version,
                **common,
            )
            history = RunHistoryClient(
                azure.upstream, ml, scope=settings.ml_scope, endpoint=target.run_history_endpoint, **common
            )
            return ml, history

        return azure.client((self.name, target.name), build)

    def rules(self, target: MachineLearningTarget) -> tuple[MlJobTemplate, ...]:
        return target.jobs

    def resource(self, run: RunNames) -> str:
        return run.pipeline

    def rule_facts(self, rule: AccessRule) -> dict[str, Any]:
        """Callers see a template's job type and the inputs they may set, with their types and defaults."""
        if not isinstance(rule, MlJobTemplate):
            return {}
        inputs = {
            name: {"type": spec.type, "default": spec.default, "allowedPrefixes": list(spec.allowed_prefixes) or None}
            for name, spec in rule.inputs.items()
            if spec.settable
        }
        return {"jobType": rule.job_type, "inputs": inputs}

    def fingerprint(self, target: MachineLearningTarget, resource: str, request: JobRunRequest) -> dict[str, Any]:
        return {"target": target.name, "template": resource, "inputs": request.inputs}

    def _template(self, target: MachineLearningTarget, name: str) -> MlJobTemplate:
        """The template as the catalog has it now (a rerun's may have been removed since its start)."""
        for template in target.jobs:
            if template.matches(name):
                return template
        raise NotAllowed(f"Job template {name!r} is not in the catalog of target {target.name!r}.")

    def prepare(
        self,
        azure: Azure,
        target: MachineLearningTarget,
        resource: str,
        request: JobRunRequest,
        *,
        run_id: str,
        rule: AccessRule,
    ) -> Submission:
        template = self._template(target, resource)
        return self._submission(azure, target, template, dict(request.inputs), run_id)

    def prepare_rerun(
        self, azure: Azure, target: MachineLearningTarget, run: Run, request: RerunRequest, *, run_id: str
    ) -> Submission:
        """The same template and inputs as a new job, if the template still takes them: it may have
        tightened since, and a rerun must not be the way around it."""
        if request.startFromFailure or request.startActivityName:
            raise ValidationFailed(
                "An Azure ML job is rerun whole, as a new job; rerun it without options.",
                [{"field": "startFromFailure", "message": "not for Azure ML jobs"}],
            )
        template = self._template(target, run.pipeline)
        return self._submission(azure, target, template, dict(run.parameters), run_id)

    def _submission(
        self,
        azure: Azure,
        target: MachineLearningTarget,
        template: MlJobTemplate,
        inputs: dict[str, Any],
        run_id: str,
    ) -> Submission:
        body = template.job(run_id, template.resolve(inputs))
        name = job_name(run_id)
        ml, _ = self.clients(azure, target)

        def submit() -> Submitted:
            job, request_id = ml.create_job(name, body)
            status = _STATUS.get(job.status, RunStatus.QUEUED)
            return Submitted(job.name, request_id, status, job.status)

        return Submission(name=template.match, parameters=inputs, options={"jobType": template.job_type}, submit=submit)

    def cancel(self, azure: Azure, target: MachineLearningTarget, run: Run, *, recursive: bool) -> None:
        ml, _ = self.clients(azure, target)
        ml.cancel_job(run.upstream_run_id or "")

    def source_key(self, run: Run) -> str:
        return str(run.options.get("jobType") or "Command")

    def source(self, azure: Azure, target: MachineLearningTarget, key: str) -> MlJobSource:
        ml, history = self.clients(azure, target)
        return MlJobSource(ml, history, key)

    def describe(self, run: Run) -> str:
        return f"Azure ML {run.target}/{run.pipeline} job {run.upstream_run_id or job_name(run.id)}"

    def links(
        self, target: MachineLearningTarget, run: Run, *, app_id: str | None, settings: Settings
    ) -> dict[str, str]:
        """The job in Azure ML studio, built from the workspace id as the job's Studio service link is."""
        if not run.upstream_run_id:
            return {}
        workspace = quote(target.resource_id, safe="")
        return {"studio": f"{settings.ml_studio_url}/runs/{quote(run.upstream_run_id, safe='')}?wsid={workspace}"}

    def checks(self, azure: Azure, target: MachineLearningTarget) -> list[Check]:
        ml, history = self.clients(azure, target)
        checks = [
            run_check("workspace", "GET Microsoft.MachineLearningServices/workspaces", lambda: _workspace(ml)),
            run_check("jobs", "GET .../workspaces/{ws}/jobs (gateway jobs)", lambda: _jobs(ml)),
            run_check("runHistory", "GET discovery, then run history", lambda: {"endpoint": history.endpoint()}),
        ]
        checks.append(_dns_check(history, azure.settings))
        checks.extend(
            run_checks(
                "privateEndpointConnections",
                "GET .../workspaces/{ws}/privateEndpointConnections",
                lambda: _private_endpoints(ml, target),
            )
        )
        return checks


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _workspace(ml: MachineLearningClient) -> dict[str, Any]:
    workspace = ml.get_workspace()
    properties = _object(workspace.get("properties"))
    network = _object(properties.get("managedNetwork"))
    return {
        "name": workspace.get("name"),
        "location": workspace.get("location"),
        "provisioningState": properties.get("provisioningState"),
        "publicNetworkAccess": properties.get("publicNetworkAccess"),
        "managedNetwork": network.get("isolationMode"),
    }


def _jobs(ml: MachineLearningClient) -> dict[str, Any]:
    counts = {}
    for job_type in ("Command", "Pipeline"):
        jobs, more = ml.list_jobs(job_type, RUN_ID_TAG)
        counts[job_type] = f"{len(jobs)}+" if more else len(jobs)
    return {"gatewayJobsOnFirstPage": counts}


def _dns_check(history: RunHistoryClient, settings: Settings) -> Check:
    """With private networking, the run-history host the gateway calls must resolve to the workspace's
    private endpoint (zone privatelink.api.azureml.ms linked to the app's network)."""
    name = "privateDns:api"
    try:
        host = urlsplit(history.endpoint()).hostname or ""
    except GatewayError as exc:
        return skipped(name, "DNS lookup of run history's host", f"the host is unknown: {exc.detail}")
    return private_dns_check(name, host, "privatelink.api.azureml.ms", settings)


def _private_endpoints(ml: MachineLearningClient, target: MachineLearningTarget) -> list[Check]:
    """Each private endpoint connection of the workspace: approved is ok, pending needs an approver,
    rejected or disconnected is an error (clients on that endpoint cannot reach the workspace)."""
    checks = []
    for connection in ml.private_endpoint_connections():
        name = str(connection.get("name") or "?")
        properties = _object(connection.get("properties"))
        status = str(_object(properties.get("privateLinkServiceConnectionState")).get("status") or "Unknown")
        facts = {
            "status": status,
            "privateEndpoint": _object(properties.get("privateEndpoint")).get("id"),
            "provisioningState": properties.get("provisioningState"),
        }
        call = "GET .../privateEndpointConnections"
        where = f"Azure ML workspace {target.workspace_name} → Networking → Private endpoint connections"
        if status == "Approved":
            checks.append(Check(name=f"privateEndpoint:{name}", call=call, facts=facts))
        elif status == "Pending":
            checks.append(
                finding(
                    f"privateEndpoint:{name}",
                    call,
                    "warning",
                    f"Private endpoint connection {name} waits for approval.",
                    action=f"approve it on {where}",
                    facts=facts,
                )
            )
        else:
            checks.append(
                finding(
                    f"privateEndpoint:{name}",
                    call,
                    "error",
                    f"Private endpoint connection {name} is {status}: clients behind it cannot reach the workspace.",
                    action=f"recreate the private endpoint, or approve it again on {where}",
                    facts=facts,
                )
            )
    if not checks:
        checks.append(Check(name="privateEndpoints", call="GET .../privateEndpointConnections", facts={"count": 0}))
    return checks


MACHINE_LEARNING = MachineLearningKind()
