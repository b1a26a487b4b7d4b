"""Microsoft Fabric Data Factory pipelines: the catalog entry, how runs start, are watched and matched,
and the kind. The REST contract is ``shared.kinds.fabric_client``.

A Fabric pipeline is an item of a workspace, started through the job scheduler and watched through the
list of its job instances: per item (Fabric has no workspace-wide list), so the poller's calls grow
with the pipelines that have runs in flight, not with the runs. A job instance reports no parameters
and nothing else the gateway sends, so no instance can be proven a record's: a lost create answer is
matched only to a manual run of the same item within the create call's window, owned by no other
record, with no rival start of the same item (the poller's rules), and otherwise ends ``Unknown``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import field_validator, model_validator

from shared.api.requests import StartRunRequest
from shared.config import names
from shared.config.settings import Settings
from shared.config.targets import AccessRule, PipelineRule, TargetEntry, check_name
from shared.errors import GatewayError, UpstreamNotFound, ValidationFailed
from shared.kinds.base import (
    WINDOW_SKEW,
    Azure,
    FailureDetails,
    Match,
    Observation,
    Observed,
    Submission,
    Submitted,
)
from shared.kinds.checks import Check, run_check
from shared.kinds.fabric_client import (
    MANUAL,
    PIPELINE_JOB_TYPE,
    FabricClient,
    FabricItem,
    JobInstance,
    JobStatus,
)
from shared.kinds.pipeline_kind import PipelineRoute, failed_activities
from shared.runs.model import Run, RunStatus
from shared.text import invisible

if TYPE_CHECKING:
    from shared.api.requests import RerunRequest

_LOGGER = logging.getLogger(__name__)

ITEM_ID = "itemId"  # the run's option naming the Fabric item it ran: its pipeline's id, even if renamed since
MAX_DISPLAY_NAME = 256
# A name the items list did not have is looked up again at most this often (a pipeline created since).
RELIST_AFTER_SECONDS = 60.0
RECOVERY_OPTIONS = ("referencePipelineRunId", "isRecovery", "startActivityName", "startFromFailure")

_STATUS = {
    JobStatus.NOT_STARTED: RunStatus.QUEUED,
    JobStatus.IN_PROGRESS: RunStatus.IN_PROGRESS,
    JobStatus.COMPLETED: RunStatus.SUCCEEDED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.CANCELLED: RunStatus.CANCELLED,
    # Nothing ran and nothing failed: Fabric skipped it for an instance already running.
    JobStatus.DEDUPED: RunStatus.CANCELLED,
}
DEDUPED_MESSAGE = (
    "Fabric skipped this run (Deduped): another run of the pipeline was already in progress. Start it again once "
    "that one has ended."
)


def _fabric_id(value: str) -> str:
    """Fabric's ids compared as Fabric writes them, in lower case."""
    return check_name(names.FABRIC_ID, value).lower()


class FabricPipelineRule(PipelineRule):
    """An allowed Fabric pipeline: by its display name (resolved to its item once per process through the
    workspace's items list), or by ``itemId`` with the display name callers use as ``match``.

    A ``correlationParameter`` is passed to the pipeline with the run id, where a person resolving an
    ``Unknown`` run sees it in the monitoring hub; Fabric does not report it back, so it proves nothing
    to the gateway.
    """

    item_id: str | None = None

    @field_validator("item_id")
    @classmethod
    def _item(cls, value: str | None) -> str | None:
        return None if value is None else _fabric_id(value)

    @model_validator(mode="after")
    def _one_item_one_name(self) -> FabricPipelineRule:
        if self.item_id is not None and not self.is_exact:
            raise ValueError("itemId names one pipeline: match must be its display name, not a glob")
        return self


class FabricTarget(TargetEntry):
    """A Fabric workspace, by id (``workspaceId``), and the data pipelines callers may start in it."""

    kind: Literal["fabric"]
    workspace_id: str
    workspace_name: str | None = None
    pipelines: tuple[FabricPipelineRule, ...] = ()

    @field_validator("workspace_id")
    @classmethod
    def _workspace_id(cls, value: str) -> str:
        return _fabric_id(value)

    @field_validator("workspace_name")
    @classmethod
    def _workspace_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > MAX_DISPLAY_NAME or invisible(value)):
            raise ValueError(f"the workspace's display name: 1-{MAX_DISPLAY_NAME} printable characters")
        return value

    @field_validator("pipelines")
    @classmethod
    def _items_once(cls, rules: tuple[FabricPipelineRule, ...]) -> tuple[FabricPipelineRule, ...]:
        items = [rule.item_id for rule in rules if rule.item_id is not None]
        if len(set(items)) != len(items):
            raise ValueError("each itemId may be listed once")
        return rules

    @property
    def resource_id(self) -> str | None:
        return None  # a Fabric workspace is not an ARM resource

    @property
    def location(self) -> str:
        return f"Fabric workspace {self.workspace_name or self.workspace_id}"

    def described(self) -> dict[str, str]:
        return {"workspaceName": self.workspace_name} if self.workspace_name else {}


class ItemDirectory:
    """A workspace's data pipelines by display name (case-insensitively, as Fabric keeps them unique),
    listed once per process; a name the listing lacks is looked for again at most once a minute."""

    def __init__(self, client: FabricClient, workspace: str) -> None:
        self._client = client
        self._workspace = workspace
        self._lock = threading.Lock()
        self._items: dict[str, FabricItem] = {}
        self._listed_at: float | None = None

    def item(self, name: str) -> FabricItem:
        key = name.casefold()
        with self._lock:
            stale = self._listed_at is None or time.monotonic() - self._listed_at >= RELIST_AFTER_SECONDS
            if key not in self._items and stale:
                self._items = {item.display_name.casefold(): item for item in self._client.list_items()}
                self._listed_at = time.monotonic()
            found = self._items.get(key)
        if found is None:
            raise UpstreamNotFound(f"Fabric workspace {self._workspace} has no data pipeline named {name!r}.")
        return found

    def matching(self, rule: AccessRule) -> list[FabricItem]:
        """The listed pipelines a glob rule allows (listing anew), for diagnostics."""
        with self._lock:
            self._items = {item.display_name.casefold(): item for item in self._client.list_items()}
            self._listed_at = time.monotonic()
            return [item for item in self._items.values() if rule.matches(item.display_name)]


def _older(instance: JobInstance, bound: datetime) -> bool:
    """Whether the instance started (or, never started, ended) before ``bound``; a queued one has no time."""
    moment = instance.start or instance.end
    return moment is not None and moment < bound


def observed(instance: JobInstance, name: str) -> Observed:
    status = _STATUS.get(instance.status, RunStatus.IN_PROGRESS)
    if instance.status == JobStatus.DEDUPED:
        message = DEDUPED_MESSAGE
    else:
        message = instance.failure.text() if instance.failure else ""
    ended = instance.end if status in RunStatus.TERMINAL else None
    duration = None
    if instance.start and ended:
        duration = max(0, int((ended - instance.start).total_seconds() * 1000))
    return Observed(
        upstream_run_id=instance.id,
        name=name,
        status=status,
        upstream_status=instance.status,
        message=message,
        run_start=instance.start,
        run_end=ended,
        duration_ms=duration,
        submitted=instance.start,
    )


class FabricSource:
    """One pipeline item's job instances, newest first, read until every live run is found and no lost
    create answer could be on a later page, or a page holds only instances older than the oldest live run."""

    def __init__(self, client: FabricClient, item_id: str) -> None:
        self._client = client
        self._item_id = item_id
        self._instances: dict[str, JobInstance] = {}  # what this tick read, for ``matches``
        self._name = ""  # the pipeline's name as the runs record it

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        wanted = {run.upstream_run_id for run in runs if run.upstream_run_id}
        lost = any(run.upstream_run_id is None for run in runs)
        oldest = min(run.created_at for run in runs) - WINDOW_SKEW
        self._name = runs[0].pipeline
        observation = Observation()
        for page in self._client.list_item_job_instances(self._item_id):
            for instance in page:
                self._instances[instance.id] = instance
                observation.runs[instance.id] = observed(instance, self._name)
            if not lost and wanted <= observation.runs.keys():
                break
            bound = oldest + self._client.clock_offset()  # instance times are Fabric's
            if page and all(_older(instance, bound) for instance in page):
                break
        observation.clock_offset = self._client.clock_offset()
        return observation

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            instance = self._client.get_item_job_instance(self._item_id, upstream_run_id)
        except UpstreamNotFound:
            return None
        self._instances[instance.id] = instance
        return observed(instance, self._name)

    def matches(self, run: Run, candidate: Observed) -> Match:
        """Possible for a manual run of this item as the gateway starts it; never proven: an instance
        carries nothing the gateway sent. A scheduled run, or one started otherwise, is never taken."""
        instance = self._instances.get(candidate.upstream_run_id)
        if instance is None or instance.item_id != self._item_id or instance.invoke_type != MANUAL:
            return Match.NO
        return Match.POSSIBLE if instance.job_type.casefold() == PIPELINE_JOB_TYPE.casefold() else Match.NO

    def failure_details(self, run: Run, now: datetime) -> FailureDetails:
        """The failed activities, where the activity-run query (the least certain part of the contract)
        answers; an alert without them still carries Fabric's ``failureReason`` as its message."""
        if not run.upstream_run_id:
            return FailureDetails()
        start = (run.run_start or run.created_at) - WINDOW_SKEW
        end = (run.run_end or now) + WINDOW_SKEW
        try:
            activities = self._client.query_activity_runs(run.upstream_run_id, start, end)
        except GatewayError as exc:
            _LOGGER.warning("Activity runs of %s unavailable for its alert: %s", run.id, exc.detail)
            return FailureDetails()
        return failed_activities(activities)


class FabricKind(PipelineRoute[FabricTarget]):
    """Fabric data pipelines, started through ``/targets/{t}/pipelines/{p}/runs`` like ADF's."""

    name = "fabric"
    target_kind = "fabric"
    label = "Fabric"
    studio = "the Fabric monitoring hub"
    target_model = FabricTarget

    def client(self, azure: Azure, target: FabricTarget) -> FabricClient:
        settings = azure.settings
        return azure.client(
            (self.name, target.name),
            lambda: FabricClient(
                azure.upstream,
                endpoint=settings.fabric_endpoint,
                workspace_id=target.workspace_id,
                workspace=target.workspace_name or target.workspace_id,
                scope=settings.fabric_scope,
                target=target.name,
            ),
        )

    def directory(self, azure: Azure, target: FabricTarget) -> ItemDirectory:
        return azure.client(
            (self.name, target.name, "items"),
            lambda: ItemDirectory(self.client(azure, target), target.workspace_name or target.workspace_id),
        )

    def item(self, azure: Azure, target: FabricTarget, name: str) -> FabricItem:
        """The item a pipeline name stands for: the catalog's ``itemId``, else the items list's."""
        for rule in target.pipelines:
            if rule.item_id is not None and rule.matches(name):
                return FabricItem(rule.item_id, rule.match, "DataPipeline")
        return self.directory(azure, target).item(name)

    def prepare(
        self,
        azure: Azure,
        target: FabricTarget,
        resource: str,
        request: StartRunRequest,
        *,
        run_id: str,
        rule: AccessRule,
    ) -> Submission:
        given = [name for name in RECOVERY_OPTIONS if getattr(request, name) is not None]
        if given:
            raise ValidationFailed(
                "Fabric pipelines have no recovery options; rerun an ended run with POST /api/runs/{id}/rerun.",
                [{"field": name, "message": "not supported by Fabric's job scheduler"} for name in given],
            )
        parameters = dict(request.parameters)
        correlation = rule.correlation_parameter if isinstance(rule, PipelineRule) else None
        if correlation is not None:
            if correlation in parameters:
                raise ValidationFailed(
                    f"Parameter {correlation!r} is set by the gateway (it carries the run id); leave it out.",
                    [{"field": f"parameters.{correlation}", "message": "set by the gateway"}],
                )
            parameters[correlation] = run_id
        item = self.item(azure, target, resource)
        return self._submission(azure, target, item.display_name or resource, item.id, parameters, correlation)

    def prepare_rerun(
        self, azure: Azure, target: FabricTarget, run: Run, request: RerunRequest, *, run_id: str
    ) -> Submission:
        """The same item with the same parameters (the new run's id in the correlation parameter): Fabric
        has no run to recover from, so options that say where to restart are refused."""
        for name in ("startFromFailure", "startActivityName"):
            if getattr(request, name) is not None:
                raise ValidationFailed(
                    "A Fabric pipeline reruns from the start; rerun it without options.",
                    [{"field": name, "message": "not supported by Fabric's job scheduler"}],
                )
        parameters = dict(run.parameters)
        if run.correlation_parameter:
            parameters[run.correlation_parameter] = run_id
        return self._submission(
            azure, target, run.pipeline, self.source_key(run), parameters, run.correlation_parameter
        )

    def _submission(
        self,
        azure: Azure,
        target: FabricTarget,
        name: str,
        item_id: str,
        parameters: Mapping[str, Any],
        correlation: str | None,
    ) -> Submission:
        client = self.client(azure, target)

        def submit() -> Submitted:
            created = client.run_on_demand_item_job(item_id, parameters)
            return Submitted(created.run_id, created.request_id, RunStatus.QUEUED, JobStatus.NOT_STARTED)

        return Submission(
            name=name,
            parameters=dict(parameters),
            options={ITEM_ID: item_id},
            submit=submit,
            correlation_parameter=correlation,
        )

    def cancel(self, azure: Azure, target: FabricTarget, run: Run, *, recursive: bool) -> None:
        self.client(azure, target).cancel_item_job_instance(self.source_key(run), run.upstream_run_id or "")

    def source_key(self, run: Run) -> str:
        return str(run.options[ITEM_ID])  # runs are listed per item

    def source(self, azure: Azure, target: FabricTarget, key: str) -> FabricSource:
        return FabricSource(self.client(azure, target), key)

    def describe(self, run: Run) -> str:
        return f"Fabric {run.target}/{run.pipeline} run {(run.upstream_run_id or run.id)[:8]}…"

    def links(self, target: FabricTarget, run: Run, *, app_id: str | None, settings: Settings) -> dict[str, str]:
        """The run in the monitoring hub (the pipeline run's page of Data Factory in Fabric)."""
        if not run.upstream_run_id:
            return {}
        path = "/".join(
            quote(part, safe="")
            for part in (target.workspace_id, "pipelines", self.source_key(run), run.upstream_run_id)
        )
        return {"studio": f"{settings.fabric_portal_url}/workloads/data-pipeline/monitoring/workspaces/{path}"}

    def checks(self, azure: Azure, target: FabricTarget) -> list[Check]:
        """The workspace, then each listed pipeline: its item and its job instances (what the poller
        reads), each refusal naming the workspace role it needs and Fabric's error code."""
        client = self.client(azure, target)

        def workspace() -> dict[str, Any]:
            found = client.get_workspace()
            facts = {
                "displayName": found.get("displayName"),
                "capacityId": found.get("capacityId"),
                "capacityAssignmentProgress": found.get("capacityAssignmentProgress"),
            }
            if target.workspace_name:
                facts["displayNameMatchesCatalog"] = found.get("displayName") == target.workspace_name
            return facts

        checks = [run_check("workspace", "GET workspaces/{id} (Workspaces_GetWorkspace)", workspace)]
        for rule in target.pipelines:
            if rule.is_exact:
                checks.append(self._pipeline_check(azure, target, rule))
            else:
                checks.append(self._glob_check(azure, target, rule))
        return checks

    def _glob_check(self, azure: Azure, target: FabricTarget, rule: FabricPipelineRule) -> Check:
        def matching() -> dict[str, Any]:
            return {"matching": sorted(item.display_name for item in self.directory(azure, target).matching(rule))}

        return run_check(f"pipelines:{rule.match}", "GET items?type=DataPipeline (Items_ListItems)", matching)

    def _pipeline_check(self, azure: Azure, target: FabricTarget, rule: FabricPipelineRule) -> Check:
        client = self.client(azure, target)

        def pipeline() -> dict[str, Any]:
            item = client.get_item(self.item(azure, target, rule.match).id)
            listed = next(iter(client.list_item_job_instances(item.id)), [])
            facts = {"itemId": item.id, "displayName": item.display_name, "type": item.type}
            return {**facts, "recentJobInstances": len(listed)}

        return run_check(
            f"pipeline:{rule.match}",
            "GET items/{id} and its jobs/instances (Items_GetItem, JobScheduler_ListItemJobInstances)",
            pipeline,
        )


FABRIC = FabricKind()
