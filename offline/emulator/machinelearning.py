"""Azure Machine Learning's ARM API (2025-09-01): the workspace, and jobs submitted by name.

The jobs live in ``MlJobStore``, which run history (runhistory.py) reads too: a job submitted through
ARM is a run-history run whose ``runId`` is the job name, and a pipeline job's steps are its child runs.

Which template a submitted job follows: the one named like its ``experimentName``, else like its
``displayName``, else the workspace's first template of its ``jobType``; a named template of another
job type does not count. Only ``Command`` and ``Pipeline`` jobs are emulated.

A PUT of an existing name is Azure's create-or-update of a resource whose fields are mostly
``x-ms-mutability: [create, read]`` in mfe.json: the same definition returns the existing job (200,
nothing changes: how the app makes a retried submit idempotent); a change to the updatable fields
(``description``, ``tags``, ``isArchived``, ``notificationSetting``, new ``properties`` keys) is
applied; a change to anything else is 400 ``PropertyChangeNotAllowed``, the ARM RPC's code for
create-only properties (the specs give none).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from .arm import ArmDirectory, check_name, resource_not_found, stable_uuid
from .clock import Clock, isoformat
from .config import ML_JOB_NAME, ML_WORKSPACE_NAME, JobTemplateSpec, MlWorkspaceSpec
from .server import ApiError, Request, Response, Router

API_VERSION = "2025-09-01"
# The wire versions azure-ai-ml 1.35.2 pins for the calls the fidelity tests make (jobs get/list:
# 2024-01-01-preview, cancel: 2023-04-01-preview, command create: 2025-01-01-preview, workspace get:
# 2024-10-01-preview) and azure-mgmt-machinelearningservices 1.0.1's only one (2020-08-01). They are
# answered with the 2025-09-01 shapes, which those clients read.
# 2026-07-01, the newest stable version, has the same Jobs paths, queries and shapes (a gateway may be
# set to it: GATEWAY_ML_API_VERSION).
NEWEST_STABLE = "2026-07-01"
JOB_API_VERSIONS = (API_VERSION, NEWEST_STABLE, "2025-01-01-preview", "2024-01-01-preview", "2023-04-01-preview")
WORKSPACE_API_VERSIONS = (API_VERSION, NEWEST_STABLE, "2024-10-01-preview", "2020-08-01")
WORKSPACE_TYPE = "Microsoft.MachineLearningServices/workspaces"
PREFIX = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}"
)
OPERATIONS = "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}"
WORKSPACE_HINT = "It must be 3 to 33 letters, digits, hyphens or underscores, starting with a letter or digit."
JOB_HINT = "It must start with a letter or digit and contain only letters, digits, hyphens and underscores."
TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
CANCEL_S = 1.0  # CancelRequested lasts one emulated second, like ADF's Canceling
UPDATABLE = ("description", "tags", "properties", "isArchived", "notificationSetting")
READ_ONLY = ("status", "services")
LIST_VIEWS = {"activeonly": "ActiveOnly", "archivedonly": "ArchivedOnly", "all": "All"}


def ml_scope(subscription: str, group: str, name: str) -> str:
    return f"aml:{subscription}/{group}/{name}".lower()


def workspace_id(workspace: MlWorkspaceSpec) -> str:
    return (
        f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
        f"/providers/{WORKSPACE_TYPE}/{workspace.name}"
    )


def region_host(base_url: str, location: str) -> str:
    """The workspace region's Azure ML data plane (``https://<region>.api.azureml.ms`` in Azure)."""
    return f"{base_url}/azureml/{location.replace(' ', '').lower()}"


@dataclass(frozen=True)
class Step:
    """One step of a pipeline job as run history shows it: a child run with its own window."""

    name: str
    run_id: str
    start: float
    end: float
    fails: bool


@dataclass(eq=False)
class MlJob:
    """A submitted job; its status is computed from the emulated clock on every read."""

    workspace: MlWorkspaceSpec
    name: str
    template: JobTemplateSpec
    definition: dict[str, Any]  # the submitted properties, nulls and read-only fields removed
    created: float
    seq: int
    create_correlation_id: str | None  # the creating PUT's x-ms-correlation-request-id, for the admin listing
    cancel_at: float | None = None
    modified: float = 0.0

    @property
    def job_type(self) -> str:
        return self.template.job_type

    @property
    def preparing_at(self) -> float:
        return self.created + self.template.start_s

    @property
    def queued_at(self) -> float:
        return self.preparing_at + self.template.prepare_s

    @property
    def running_at(self) -> float:
        return self.queued_at + self.template.queue_s

    @property
    def finishes_at(self) -> float:
        """When it would end on its own: a failing pipeline stops after its failing step."""
        steps = self.steps()
        return steps[-1].end if steps else self.running_at + self.template.duration_s

    @property
    def fails(self) -> bool:
        return self.template.outcome == "Failed"

    def steps(self) -> list[Step]:
        """The pipeline's steps that run at all (none after the failing one); empty for a command job."""
        template = self.template
        if template.job_type != "Pipeline":
            return []
        share = template.duration_s / len(template.steps)
        steps = []
        for index, name in enumerate(template.steps):
            start = self.running_at + index * share
            fails = name == template.failing_step
            steps.append(
                Step(name, stable_uuid("aml-step", self.name, name, str(self.seq)), start, start + share, fails)
            )
            if fails:
                break
        return steps

    def ended_at(self, now: float) -> float | None:
        end = self.finishes_at
        if self.cancel_at is not None and self.cancel_at < end:
            end = self.cancel_at + CANCEL_S
        return end if now >= end else None

    def status(self, now: float) -> str:
        if self.cancel_at is not None and self.cancel_at < self.finishes_at and now >= self.cancel_at:
            return "Canceled" if now >= self.cancel_at + CANCEL_S else "CancelRequested"
        if now >= self.finishes_at:
            return "Failed" if self.fails else "Completed"
        if now >= self.running_at:
            return "Running"
        if now >= self.queued_at:
            return "Queued"
        if now >= self.preparing_at:
            return "Preparing"
        return "NotStarted"

    def step_status(self, step: Step, now: float) -> str:
        if self.cancel_at is not None and self.cancel_at < step.end and now >= self.cancel_at:
            return "Canceled" if now >= self.cancel_at + CANCEL_S else "CancelRequested"
        if now < step.end:
            return "Running"
        return "Failed" if step.fails else "Completed"

    def started_steps(self, now: float) -> list[Step]:
        """Child runs exist once their step starts (and never when cancelled before it)."""
        cancel = self.cancel_at if self.cancel_at is not None else float("inf")
        return [s for s in self.steps() if s.start <= now and s.start <= cancel]


def _strip(value: Any) -> Any:
    """JSON without nulls: an omitted member and an explicit null mean the same to the service."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class MlJobStore:
    """Jobs per workspace (names are case-sensitive, as the spec says), behind one lock."""

    def __init__(self, workspaces: Sequence[MlWorkspaceSpec], clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._jobs: dict[str, dict[str, MlJob]] = {
            ml_scope(w.subscription_id, w.resource_group, w.name): {} for w in workspaces
        }

    def get(self, scope: str, name: str) -> MlJob | None:
        with self._lock:
            return self._jobs[scope].get(name)

    def find_run(self, scope: str, run_id: str) -> tuple[MlJob, Step | None] | None:
        """A job by name, or the pipeline job and step whose child run has ``run_id``."""
        now = self.clock.now()
        with self._lock:
            jobs = list(self._jobs[scope].values())
        for job in jobs:
            if job.name == run_id:
                return job, None
        for job in jobs:
            for step in job.started_steps(now):
                if step.run_id == run_id:
                    return job, step
        return None

    def jobs(self, scope: str) -> list[MlJob]:
        """Newest first, like Jobs_List."""
        with self._lock:
            return sorted(self._jobs[scope].values(), key=lambda j: j.seq, reverse=True)

    def put(
        self,
        scope: str,
        workspace: MlWorkspaceSpec,
        name: str,
        template: JobTemplateSpec,
        definition: dict[str, Any],
        correlation_id: str | None,
    ) -> tuple[MlJob, bool]:
        """Creates the job, or applies an update to an existing one; ``True`` when it was created."""
        now = self.clock.now()
        with self._lock:
            existing = self._jobs[scope].get(name)
            if existing is None:
                job = MlJob(workspace, name, template, definition, now, next(self._seq), correlation_id, modified=now)
                self._jobs[scope][name] = job
                return job, True
            _check_update(existing, definition)
            changed = {k: definition.get(k) for k in UPDATABLE if definition.get(k) != existing.definition.get(k)}
            if changed:
                merged = dict(existing.definition)
                for key, value in changed.items():
                    if key == "properties":
                        value = {**existing.definition.get("properties", {}), **(value or {})}
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                existing.definition = merged
                existing.modified = now
            return existing, False

    def cancel(self, job: MlJob) -> None:
        now = self.clock.now()
        with self._lock:
            if job.cancel_at is None and job.status(now) not in TERMINAL:
                job.cancel_at = now

    def delete(self, scope: str, name: str) -> None:
        with self._lock:
            self._jobs[scope].pop(name, None)

    def all_runs(self) -> list[dict[str, Any]]:
        """The admin listing's items: every job, then its started steps (created by the service, no call)."""
        now = self.clock.now()
        with self._lock:
            jobs = sorted((j for scope in self._jobs.values() for j in scope.values()), key=lambda j: j.seq)
        items: list[dict[str, Any]] = []
        for job in jobs:
            workspace = job.workspace
            scope = ml_scope(workspace.subscription_id, workspace.resource_group, workspace.name)
            base = {"service": "aml", "scope": scope, "jobType": job.job_type, "template": job.template.name}
            items.append(
                {
                    **base,
                    "runId": job.name,
                    "parentRunId": None,
                    "status": job.status(now),
                    "created": isoformat(job.created),
                    "tags": dict(job.definition.get("tags", {})),
                    "createCorrelationId": job.create_correlation_id,
                }
            )
            items.extend(
                {
                    **base,
                    "runId": step.run_id,
                    "parentRunId": job.name,
                    "step": step.name,
                    "status": job.step_status(step, now),
                    "created": isoformat(step.start),
                    "tags": {},
                    "createCorrelationId": None,
                }
                for step in job.started_steps(now)
            )
        return items


def _check_update(job: MlJob, definition: Mapping[str, Any]) -> None:
    fields = sorted(
        key
        for key in set(job.definition) | set(definition)
        if key not in UPDATABLE and job.definition.get(key) != definition.get(key)
    )
    old_properties: Mapping[str, Any] = job.definition.get("properties", {})
    new_properties: Mapping[str, Any] = definition.get("properties", {})
    fields += [
        f"properties.{k}"
        for k in sorted(old_properties)
        if k in new_properties and new_properties[k] != old_properties[k]
    ]
    if fields:
        raise ApiError(
            400,
            "PropertyChangeNotAllowed",
            f"Changing property '{fields[0]}' is not allowed: job '{job.name}' already exists and only "
            "description, tags, isArchived, notificationSetting and new properties keys can be updated.",
            target=fields[0],
        )


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        before = data["before"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "BadRequest", "The $skipToken is invalid.", target="$skipToken") from exc
    if not isinstance(before, int):
        raise ApiError(400, "BadRequest", "The $skipToken is invalid.", target="$skipToken")
    return before


@dataclass
class _Operation:
    scope: str
    job_name: str
    kind: str  # "cancel" or "delete"
    job: MlJob | None = field(default=None)


class MachineLearningApi:
    """Workspaces_Get, PrivateEndpointConnections_List and the Jobs operations, plus the region's
    discovery document (how azure-ai-ml finds run history) and the async-operation URLs of the LROs."""

    def __init__(
        self,
        workspaces: Sequence[MlWorkspaceSpec],
        store: MlJobStore,
        directory: ArmDirectory,
        *,
        tenant_id: str,
        created: float,
        base_url: Callable[[], str],
        page_size: Callable[[], int],
        connections_to: Callable[[str], list[dict[str, Any]]] = lambda resource_id: [],
    ) -> None:
        self.store = store
        # Private endpoint connections other emulated services make on a workspace (Synapse managed
        # private endpoints, synapse_network.py), by the workspace's resource id.
        self.connections_to = connections_to
        self.directory = directory
        self.tenant_id = tenant_id
        self.created = created
        self.base_url = base_url
        self.page_size = page_size
        self._workspaces = {ml_scope(w.subscription_id, w.resource_group, w.name): w for w in workspaces}
        self._operations: dict[str, _Operation] = {}
        self._lock = threading.Lock()

    def register(self, router: Router) -> None:
        jobs, workspace = JOB_API_VERSIONS, WORKSPACE_API_VERSIONS
        add = router.add
        add("Workspaces_Get", "GET", PREFIX, self.get_workspace, "arm", rate="reads", api_versions=workspace)
        add(
            "PrivateEndpointConnections_List",
            "GET",
            PREFIX + "/privateEndpointConnections",
            self.list_private_endpoints,
            "arm",
            rate="reads",
            api_versions=workspace,
        )
        add("Jobs_List", "GET", PREFIX + "/jobs", self.list_jobs, "arm", rate="reads", api_versions=jobs)
        add("Jobs_Get", "GET", PREFIX + "/jobs/{id}", self.get_job, "arm", rate="reads", api_versions=jobs)
        add("Jobs_CreateOrUpdate", "PUT", PREFIX + "/jobs/{id}", self.put_job, "arm", rate="writes", api_versions=jobs)
        add("Jobs_Delete", "DELETE", PREFIX + "/jobs/{id}", self.delete_job, "arm", rate="writes", api_versions=jobs)
        add(
            "Jobs_Cancel",
            "POST",
            PREFIX + "/jobs/{id}/cancel",
            self.cancel_job,
            "arm",
            rate="writes",
            api_versions=jobs,
        )
        add(
            "MfeOperationsStatus_Get",
            "GET",
            OPERATIONS + "/mfeOperationsStatus/{operationId}",
            self.operation_status,
            "arm",
            rate="reads",
            api_versions=jobs,
        )
        add(
            "MfeOperationResults_Get",
            "GET",
            OPERATIONS + "/mfeOperationResults/{operationId}",
            self.operation_result,
            "arm",
            rate="reads",
            api_versions=jobs,
        )
        add("Discovery_Get", "GET", "/azureml/{region}/discovery", self.discovery, "anonymous")

    # -- workspace -------------------------------------------------------------------------------

    def workspace(self, request: Request) -> tuple[MlWorkspaceSpec, str]:
        """The addressed workspace, with ARM's checks and 404s (run history reuses it)."""
        subscription = request.params["subscriptionId"]
        group = request.params["resourceGroupName"]
        name = request.params["workspaceName"]
        self.directory.check_scope(subscription, group)
        check_name(name, ML_WORKSPACE_NAME, 3, 33, "workspace", WORKSPACE_HINT)
        scope = ml_scope(subscription, group, name)
        workspace = self._workspaces.get(scope)
        if workspace is None:
            raise resource_not_found(WORKSPACE_TYPE, name, group)
        return workspace, scope

    def get_workspace(self, request: Request) -> Response:
        workspace, _ = self.workspace(request)
        resource_id = workspace_id(workspace)
        connections = self.private_endpoint_connections(workspace)
        host = region_host(self.base_url(), workspace.location)
        group_id = f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}/providers"
        short = workspace.name.replace("-", "").replace("_", "").lower()
        body = {
            "id": resource_id,
            "name": workspace.name,
            "type": WORKSPACE_TYPE,
            "location": workspace.location,
            "tags": dict(workspace.tags),
            "kind": "Default",
            "sku": {"name": "Basic", "tier": "Basic"},
            "identity": {
                "type": "SystemAssigned",
                "principalId": stable_uuid("principal", resource_id),
                "tenantId": self.tenant_id,
            },
            "systemData": {
                "createdAt": isoformat(self.created),
                "createdBy": "emulator",
                "createdByType": "Application",
                "lastModifiedAt": isoformat(self.created),
                "lastModifiedBy": "emulator",
                "lastModifiedByType": "Application",
            },
            "properties": {
                "workspaceId": stable_uuid("aml-workspace", resource_id),
                "friendlyName": workspace.name,
                "description": "",
                "tenantId": self.tenant_id,
                "provisioningState": "Succeeded",
                "discoveryUrl": f"{host}/discovery",
                "mlFlowTrackingUri": f"azureml://{host.removeprefix('https://')}/mlflow/v1.0{resource_id}",
                "storageAccount": f"{group_id}/Microsoft.Storage/storageAccounts/st{short}"[:200],
                "keyVault": f"{group_id}/Microsoft.KeyVault/vaults/kv-{short}",
                "applicationInsights": f"{group_id}/Microsoft.insights/components/appi-{short}",
                "containerRegistry": None,
                "hbiWorkspace": False,
                "v1LegacyMode": False,
                "storageHnsEnabled": False,
                "enableDataIsolation": False,
                "systemDatastoresAuthMode": "identity",
                "serviceProvisionedResourceGroup": f"azureml-rg-{workspace.name}_{stable_uuid('mrg', resource_id)}",
                "publicNetworkAccess": workspace.public_network_access,
                "allowPublicAccessWhenBehindVnet": False,
                "privateLinkCount": len(connections),
                "privateEndpointConnections": connections,
                "sharedPrivateLinkResources": [],
                "managedNetwork": {
                    "isolationMode": workspace.isolation_mode,
                    "status": {
                        "status": "Inactive" if workspace.isolation_mode == "Disabled" else "Active",
                        "sparkReady": False,
                    },
                    "outboundRules": {},
                },
                "notebookInfo": None,
            },
        }
        return Response(200, body)

    def list_private_endpoints(self, request: Request) -> Response:
        """The declared connections (the gateway's own private endpoint), then those of other emulated
        services' managed private endpoints to this workspace."""
        workspace, _ = self.workspace(request)
        return Response(200, {"value": self.private_endpoint_connections(workspace)})

    def private_endpoint_connections(self, workspace: MlWorkspaceSpec) -> list[dict[str, Any]]:
        resource_id = workspace_id(workspace)
        declared = [
            {
                "id": f"{resource_id}/privateEndpointConnections/{spec.name}",
                "name": spec.name,
                "type": f"{WORKSPACE_TYPE}/privateEndpointConnections",
                "properties": {
                    "provisioningState": "Succeeded",
                    "privateEndpoint": {
                        "id": f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
                        f"/providers/Microsoft.Network/privateEndpoints/{spec.name}"
                    },
                    "privateLinkServiceConnectionState": {
                        "status": spec.state,
                        "description": spec.description,
                        "actionsRequired": "None",
                    },
                },
            }
            for spec in workspace.private_endpoint_connections
        ]
        return [*declared, *self.connections_to(resource_id)]

    def discovery(self, request: Request) -> Response:
        """The region's service map azure-ai-ml reads from ``discoveryUrl``; anonymous, as in Azure."""
        host = region_host(self.base_url(), request.params["region"])
        services = ("api", "catalog", "experimentation", "history", "modelmanagement", "pipelines")
        return Response(200, {**{name: host for name in services}, "studio": "https://ml.azure.com"})

    # -- jobs ------------------------------------------------------------------------------------

    def _job(self, request: Request) -> tuple[MlWorkspaceSpec, str, MlJob]:
        workspace, scope = self.workspace(request)
        name = request.params["id"]
        job = self.store.get(scope, name)
        if job is None:
            raise resource_not_found(f"{WORKSPACE_TYPE}/{workspace.name}/jobs", name, workspace.resource_group)
        return workspace, scope, job

    def get_job(self, request: Request) -> Response:
        """A job; a pipeline step's run id gives the bare envelope without ``properties``, as Azure does
        (azure-ai-ml then reads that child from run history)."""
        workspace, scope = self.workspace(request)
        found = self.store.find_run(scope, request.params["id"])
        if found is not None and found[1] is not None:
            step = found[1]
            return Response(
                200,
                {
                    "id": f"{workspace_id(workspace)}/jobs/{step.run_id}",
                    "name": step.run_id,
                    "type": f"{WORKSPACE_TYPE}/jobs",
                },
            )
        _, _, job = self._job(request)
        return Response(200, self.render(job))

    def put_job(self, request: Request) -> Response:
        workspace, scope = self.workspace(request)
        name = request.params["id"]
        check_name(name, ML_JOB_NAME, 1, 255, "job", JOB_HINT)
        definition = _definition(request.json())
        template = _template(workspace, definition)
        job, created = self.store.put(scope, workspace, name, template, definition, request.correlation_request_id)
        return Response(201 if created else 200, self.render(job))

    def cancel_job(self, request: Request) -> Response:
        _, scope, job = self._job(request)
        self.store.cancel(job)
        return self._accepted(request, _Operation(scope, job.name, "cancel", job))

    def delete_job(self, request: Request) -> Response:
        _, scope, job = self._job(request)
        self.store.delete(scope, job.name)
        return self._accepted(request, _Operation(scope, job.name, "delete"))

    def _accepted(self, request: Request, operation: _Operation) -> Response:
        """202 with both LRO headers; the async operation finishes when the job has (cancel) or at once."""
        operation_id = str(uuid.uuid4())
        with self._lock:
            self._operations[operation_id] = operation
        workspace = self._workspaces[operation.scope]
        base = (
            f"{self.base_url()}/subscriptions/{workspace.subscription_id}/providers/Microsoft.MachineLearningServices"
            f"/locations/{quote(workspace.location.replace(' ', '').lower())}"
        )
        query = urlencode({"api-version": request.query.get("api-version", API_VERSION)})
        return Response(
            202,
            None,
            {
                "Location": f"{base}/mfeOperationResults/{operation_id}?{query}",
                "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{operation_id}?{query}",
                "Retry-After": "1",
            },
        )

    def _operation(self, request: Request) -> tuple[_Operation, bool]:
        with self._lock:
            operation = self._operations.get(request.params["operationId"])
        if operation is None or self._workspaces[operation.scope].subscription_id.lower() != (
            request.params["subscriptionId"].lower()
        ):
            raise ApiError(404, "NotFound", f"Operation '{request.params['operationId']}' was not found.")
        job = operation.job
        done = job is None or job.status(self.store.clock.now()) in TERMINAL
        return operation, done

    def operation_status(self, request: Request) -> Response:
        _, done = self._operation(request)
        body = {
            "id": request.path,
            "name": request.params["operationId"],
            "status": "Succeeded" if done else "InProgress",
        }
        return Response(200, body, {} if done else {"Retry-After": "1"})

    def operation_result(self, request: Request) -> Response:
        _, done = self._operation(request)
        if not done:
            return Response(
                202,
                None,
                {"Location": f"{self.base_url()}{request.path}?{urlencode(request.query)}", "Retry-After": "1"},
            )
        return Response(200, None)

    def list_jobs(self, request: Request) -> Response:
        _, scope = self.workspace(request)
        view = LIST_VIEWS.get((request.query.get("listviewtype") or "ActiveOnly").lower())
        if view is None:
            raise ApiError(
                400,
                "BadRequest",
                f"The value '{request.query['listviewtype']}' is not valid for listViewType: use one of "
                "ActiveOnly, ArchivedOnly, All.",
                target="listViewType",
            )
        job_type = (request.query.get("jobtype") or "").lower()
        tag = request.query.get("tag") or None
        wanted = _property_filter(request.query.get("properties") or "")
        token = request.query.get("$skiptoken") or None
        before = _decode_token(token) if token else None
        selected = []
        for job in self.store.jobs(scope):
            archived = bool(job.definition.get("isArchived", False))
            if (view == "ActiveOnly" and archived) or (view == "ArchivedOnly" and not archived):
                continue
            if job_type and job.job_type.lower() != job_type:
                continue
            if tag is not None and tag not in job.definition.get("tags", {}):
                continue
            properties = job.definition.get("properties", {})
            if any(k not in properties or (v is not None and properties[k] != v) for k, v in wanted.items()):
                continue
            if before is not None and job.seq >= before:
                continue
            selected.append(job)
        size = self.page_size()
        page, rest = selected[:size], selected[size:]
        body: dict[str, Any] = {"value": [self.render(job) for job in page]}
        if rest:
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skipToken"] = _encode_token(page[-1].seq)
            body["nextLink"] = f"{self.base_url()}{request.path}?{urlencode(query)}"
        else:
            body["nextLink"] = None
        return Response(200, body)

    def render(self, job: MlJob) -> dict[str, Any]:
        """JobBaseResource: the submitted definition, the service's defaults, the live status and services."""
        now = self.store.clock.now()
        workspace = job.workspace
        resource_id = f"{workspace_id(workspace)}/jobs/{job.name}"
        host = region_host(self.base_url(), workspace.location).removeprefix("https://")
        studio = f"https://ml.azure.com/runs/{job.name}?wsid={workspace_id(workspace)}"  # azure-ai-ml appends &tid=
        properties: dict[str, Any] = {
            "description": None,
            "tags": {},
            "properties": {},
            "displayName": job.name,
            "experimentName": "Default",
            "isArchived": False,
            "computeId": None,
            "componentId": None,
            "identity": None,
            "notificationSetting": None,
            **json.loads(json.dumps(job.definition)),
            "status": job.status(now),
            "services": {
                **job.definition.get("services", {}),
                "Tracking": {
                    "jobServiceType": "Tracking",
                    "endpoint": f"azureml://{host}/mlflow/v1.0{workspace_id(workspace)}?",
                },
                "Studio": {"jobServiceType": "Studio", "endpoint": studio},
            },
        }
        return {
            "id": resource_id,
            "name": job.name,
            "type": f"{WORKSPACE_TYPE}/jobs",
            "properties": properties,
            "systemData": {
                "createdAt": isoformat(job.created),
                "createdBy": "id-pipeline-gateway",
                "createdByType": "Application",
                "lastModifiedAt": isoformat(job.modified),
                "lastModifiedBy": "id-pipeline-gateway",
                "lastModifiedByType": "Application",
            },
        }


def _definition(body: Any) -> dict[str, Any]:
    """The JobBaseResource body's ``properties``, checked as the spec requires, nulls and read-only fields gone."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ApiError(
            400, "BadRequest", "The request body must be a JobBaseResource with 'properties'.", target="properties"
        )
    definition: dict[str, Any] = _strip(body["properties"])
    for key in READ_ONLY:
        if key == "services":
            continue  # services are create/read in the spec: the caller's are kept, Studio/Tracking added
        definition.pop(key, None)
    services = definition.get("services")
    if isinstance(services, dict):
        definition["services"] = {k: v for k, v in services.items() if k not in ("Studio", "Tracking")} or None
        if definition["services"] is None:
            del definition["services"]
    job_type = definition.get("jobType")
    if job_type not in ("Command", "Pipeline"):
        raise ApiError(
            400,
            "BadRequest",
            f"The jobType '{job_type}' is not supported here: the emulator runs Command and Pipeline jobs.",
            target="properties.jobType",
        )
    if job_type == "Command":
        for name in ("command", "environmentId"):
            value = definition.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ApiError(
                    400, "BadRequest", f"The field '{name}' is required for a Command job.", target=f"properties.{name}"
                )
    for name in ("tags", "properties"):
        value = definition.get(name)
        if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise ApiError(400, "BadRequest", f"'{name}' must be an object of strings.", target=f"properties.{name}")
    return definition


def _template(workspace: MlWorkspaceSpec, definition: Mapping[str, Any]) -> JobTemplateSpec:
    job_type = definition["jobType"]
    candidates = [t for t in workspace.templates if t.job_type == job_type]
    for key in ("experimentName", "displayName"):
        wanted = str(definition.get(key) or "").lower()
        for template in candidates:
            if template.name.lower() == wanted:
                return template
    if not candidates:
        raise ApiError(
            400,
            "BadRequest",
            f"Workspace '{workspace.name}' has no {job_type} job template in the emulator's configuration.",
            target="properties.jobType",
        )
    return candidates[0]


def _property_filter(raw: str) -> dict[str, str | None]:
    """``prop1,prop2=value2`` (Jobs_List's ``properties``): names that must be set, optionally to a value."""
    wanted: dict[str, str | None] = {}
    for part in raw.split(","):
        if part.strip():
            name, sep, value = part.partition("=")
            wanted[name.strip()] = value if sep else None
    return wanted
