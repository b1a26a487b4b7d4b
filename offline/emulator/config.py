"""What the emulator pretends exists: tenant, identity, factories, workspaces, pipelines, pools.

The configuration is declarative so the same file drives the CLI (``--config FILE.json``) and the
in-process API (``Emulator(EmulatorConfig(...))``). JSON format (every key optional except names;
omitted keys take the defaults of the dataclasses below)::

    {
      "tenant_id": "<uuid>",
      "identity": {"client_id": "<uuid>", "principal_id": "<uuid>", "name": "id-pipeline-gateway",
                   "subscription_id": "<uuid>", "resource_group": "rg-gateway"},
      "token_lifetime_s": 86400,
      "page_size": 100,
      "factories": [
        {"name": "contoso-adf", "subscription_id": "<uuid>", "resource_group": "rg-data",
         "location": "West Europe", "tags": {"env": "dev"},
         "pipelines": [
           {"name": "copy_sales", "outcome": "Failed", "queue_s": 1, "duration_s": 3,
            "recover_on_rerun": true, "failures": null, "parameters": {"day": "String", "tables": "Array"},
            "activities": [{"name": "CopySales", "type": "Copy"},
                           {"name": "RunChild", "type": "ExecutePipeline", "pipeline": "daily_load"}],
            "failure": {"activity": "CopySales", "error_code": "2200", "failure_type": "UserError",
                        "message": "ErrorCode=SqlFailedToConnect,..."}}]}],
      "workspaces": [
        {"name": "contoso-syn", "subscription_id": "<uuid>", "resource_group": "rg-synapse",
         "location": "westeurope", "pipelines": [...same as above...],
         "spark_pools": [{"name": "small", "node_size": "Small", "node_count": 3, "queue_s": 1,
                          "startup_s": 1, "duration_s": 3, "outcome": "Succeeded"}],
         "managed_virtual_network": true, "exfiltration_protection": false,
         "managed_private_endpoints": [{"name": "mpe-aml", "group_id": "amlworkspace", "state": "Pending",
                                        "private_link_resource_id": "/subscriptions/.../workspaces/contoso-aml"}],
         "linked_services": [{"name": "AzureMLService1", "type": "AzureMLService",
                              "type_properties": {"subscriptionId": "<uuid>", "resourceGroupName": "rg-ml",
                                                  "mlWorkspaceName": "contoso-aml", "authentication": "MSI"}}]}],
      "ml_workspaces": [
        {"name": "contoso-aml", "subscription_id": "<uuid>", "resource_group": "rg-ml", "location": "westeurope",
         "public_network_access": "Disabled", "isolation_mode": "AllowOnlyApprovedOutbound",
         "private_endpoint_connections": [{"name": "pe-gateway", "state": "Approved"}],
         "templates": [
           {"name": "train", "job_type": "Command", "outcome": "Failed", "start_s": 0.5, "prepare_s": 1,
            "queue_s": 1, "duration_s": 3, "error_code": "UserError", "error_message": "...",
            "log_lines": ["Traceback ...", "ValueError: bad row"]},
           {"name": "score", "job_type": "Pipeline", "outcome": "Failed", "steps": ["prep", "score"],
            "failing_step": "score", "error_code": "UserError", "error_message": "...", "log_lines": [...]}]}]
    }

Timelines: a pipeline run is ``Queued`` for ``queue_s`` then ``InProgress`` while its activities run
one after another (``duration_s`` shared equally; an ``ExecutePipeline`` activity lasts as long as
its child run), then ``Succeeded`` or ``Failed`` at the failing activity. A Spark batch is
``not_started`` for ``queue_s``, ``starting`` for ``startup_s``, ``running`` for ``duration_s``.
An Azure ML job is ``NotStarted`` for ``start_s``, ``Preparing`` for ``prepare_s``, ``Queued`` for
``queue_s``, ``Running`` for ``duration_s`` (a pipeline's steps share it, one after another), then
``Completed`` or ``Failed``; which template a submitted job follows is described in machinelearning.py.

Networking (Synapse managed virtual network, managed private endpoints, linked services; Azure ML public
access, managed network and private endpoint connections) is described in synapse_network.py.

Fabric workspaces and their pipelines (``fabric_workspaces``, named by GUID) are described in
fabric_config.py.

Pipeline ``parameters`` declare names and types (what Pipelines_Get reports); when present, a run
keeps only the declared names of what createRun was given. Left out (``null``), the pipeline declares
nothing and its runs report every parameter they were given, as all pipelines did before declarations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from .fabric_config import (
    SAMPLE_FABRIC_WORKSPACE,
    FabricActivitySpec,
    FabricFailureSpec,
    FabricPipelineSpec,
    FabricWorkspaceSpec,
)

_T = TypeVar("_T")
Outcome = Literal["Succeeded", "Failed"]
OUTCOMES: tuple[str, ...] = ("Succeeded", "Failed")
# ParameterSpecification.type in both specs (ADF datafactory.json, Synapse artifacts.json).
PARAMETER_TYPES: tuple[str, ...] = ("String", "Int", "Float", "Bool", "Array", "Object", "SecureString")
MAX_PARAMETERS = 50  # Data Factory's documented limit per pipeline (rest-contracts §7)

# The ADF spec's name rules (rest-contracts §1); Synapse artifacts use the same pipeline rule.
PIPELINE_NAME = re.compile(r"^[A-Za-z0-9_][^<>*#.%&:\\+?/]*$")
FACTORY_NAME = re.compile(r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$")
RESOURCE_GROUP_NAME = re.compile(r"^[-\w\._\(\)]+$")
WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")
# The 2025-09-01 spec's WorkspaceNameParameter pattern (machineLearningServices.json).
ML_WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
# Jobs_CreateOrUpdate's ``id`` pattern (mfe.json); also the rule for template and step names.
ML_JOB_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")
JOB_TYPES: tuple[str, ...] = ("Command", "Pipeline")
SPARK_POOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,14}$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

SAMPLE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


def _check(pattern: re.Pattern[str], value: str, what: str, max_len: int, min_len: int = 1) -> None:
    if not pattern.match(value) or not min_len <= len(value) <= max_len:
        raise ValueError(f"{what} {value!r} breaks Azure's naming rule {pattern.pattern}")


@dataclass(frozen=True)
class ActivitySpec:
    """One activity of a pipeline; ``pipeline`` names the child of an ``ExecutePipeline`` activity."""

    name: str
    type: str = "Copy"
    pipeline: str | None = None

    def __post_init__(self) -> None:
        if (self.type == "ExecutePipeline") != (self.pipeline is not None):
            raise ValueError(f"activity {self.name!r}: 'pipeline' goes with type ExecutePipeline only")


@dataclass(frozen=True)
class FailureSpec:
    """How a failing pipeline fails: the activity and the error ADF reports for it."""

    activity: str
    error_code: str = "2200"
    message: str = "Failure happened on 'Sink' side."
    failure_type: str = "UserError"


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline: how its runs go, and optionally the parameters it declares.

    ``parameters`` maps each declared name to its ADF/Synapse type. ``None`` (the default) is the
    legacy pipeline that declares nothing yet reports every parameter a run was given; a mapping, even
    an empty one, makes runs keep only the declared names (see ``run_parameters``).
    """

    name: str
    outcome: Outcome = "Succeeded"
    queue_s: float = 1.0
    duration_s: float = 3.0
    activities: Sequence[ActivitySpec] = ()
    failure: FailureSpec | None = None
    recover_on_rerun: bool = True
    parameters: Mapping[str, str] | None = None
    # A transient failure: the first ``failures`` runs of a run group (a run and its recovery reruns)
    # fail as ``failure`` says, later ones succeed; set, it decides instead of ``recover_on_rerun``.
    failures: int | None = None

    def __post_init__(self) -> None:
        _check(PIPELINE_NAME, self.name, "pipeline name", 260)
        if self.outcome not in OUTCOMES:
            raise ValueError(f"pipeline {self.name!r}: outcome must be one of {OUTCOMES}")
        if self.failures is not None and (self.failures < 1 or self.outcome != "Failed"):
            raise ValueError(f"pipeline {self.name!r}: failures (at least 1) goes with outcome Failed")
        if self.queue_s < 0 or self.duration_s < 0:
            raise ValueError(f"pipeline {self.name!r}: durations cannot be negative")
        activities = tuple(self.activities) or (ActivitySpec(self.failure.activity if self.failure else "Run"),)
        failure = self.failure
        if self.outcome == "Failed" and failure is None:
            failure = FailureSpec(activities[-1].name)
        if failure is not None and failure.activity not in {a.name for a in activities}:
            raise ValueError(f"pipeline {self.name!r}: failing activity {failure.activity!r} is not declared")
        if len({a.name for a in activities}) != len(activities):
            raise ValueError(f"pipeline {self.name!r}: activity names must be unique")
        object.__setattr__(self, "activities", activities)
        object.__setattr__(self, "failure", failure if self.outcome == "Failed" else None)
        if self.parameters is not None:
            object.__setattr__(self, "parameters", _declared_parameters(self.name, self.parameters))

    def run_parameters(self, given: Mapping[str, str]) -> dict[str, str]:
        """What a run of this pipeline reports of the parameters createRun was ``given``.

        The specs type createRun's body as an open map and say nothing about names the pipeline does
        not declare; the emulator takes the conservative reading that the service drops them silently
        (no error), matching names exactly. A pipeline that declares nothing (``None``) keeps them all.
        """
        if self.parameters is None:
            return dict(given)
        return {name: value for name, value in given.items() if name in self.parameters}


def _declared_parameters(pipeline: str, parameters: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(parameters, Mapping):
        raise ValueError(f"pipeline {pipeline!r}: parameters must map names to types")
    if len(parameters) > MAX_PARAMETERS:
        raise ValueError(f"pipeline {pipeline!r}: at most {MAX_PARAMETERS} parameters")
    for name, kind in parameters.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"pipeline {pipeline!r}: parameter names must be non-empty strings")
        if kind not in PARAMETER_TYPES:
            raise ValueError(
                f"pipeline {pipeline!r}: parameter {name!r} has type {kind!r}; use one of {PARAMETER_TYPES}"
            )
    return dict(parameters)


@dataclass(frozen=True)
class SparkPoolSpec:
    """A Spark pool and how its batches behave.

    A batch fails when its ``file`` contains ``fail`` (any case) or its ``conf`` sets
    ``spark.emulator.outcome`` to ``Failed``; ``Succeeded`` there forces success; otherwise
    ``outcome`` decides.
    """

    name: str
    node_size: str = "Small"
    node_count: int = 3
    spark_version: str = "3.4"
    queue_s: float = 1.0
    startup_s: float = 1.0
    duration_s: float = 3.0
    outcome: Outcome = "Succeeded"

    def __post_init__(self) -> None:
        _check(SPARK_POOL_NAME, self.name, "Spark pool name", 15)
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Spark pool {self.name!r}: outcome must be one of {OUTCOMES}")


# Private Link approval states (the Synapse data plane types connectionState.status as a string; these
# are the values AML's PrivateEndpointServiceConnectionStatus enum lists, less Timeout).
APPROVAL_STATES: tuple[str, ...] = ("Pending", "Approved", "Rejected", "Disconnected")
# Azure ML's IsolationMode and the workspaces' publicNetworkAccess (workspaceRP 2025-09-01).
ISOLATION_MODES: tuple[str, ...] = ("Disabled", "AllowInternetOutbound", "AllowOnlyApprovedOutbound")
PUBLIC_NETWORK_ACCESS: tuple[str, ...] = ("Enabled", "Disabled")
ARM_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+/[^/]+/[^/]+", re.IGNORECASE)


@dataclass(frozen=True)
class ManagedPrivateEndpointSpec:
    """A managed private endpoint of a Synapse workspace's managed virtual network, and the approval its
    target's owner gave it (``state``, the connection state's ``status``)."""

    name: str
    private_link_resource_id: str
    group_id: str
    state: str = "Approved"
    provisioning_state: str = "Succeeded"
    fqdns: Sequence[str] = ()

    def __post_init__(self) -> None:
        _check(PIPELINE_NAME, self.name, "managed private endpoint name", 260)
        if not ARM_ID.match(self.private_link_resource_id):
            raise ValueError(f"managed private endpoint {self.name!r}: private_link_resource_id must be an ARM id")
        if self.state not in APPROVAL_STATES:
            raise ValueError(f"managed private endpoint {self.name!r}: state must be one of {APPROVAL_STATES}")
        object.__setattr__(self, "fqdns", tuple(self.fqdns))


@dataclass(frozen=True)
class LinkedServiceSpec:
    """A published linked service: its ``type`` (``AzureMLService``, ``AzureBlobFS``, ...) and its
    ``typeProperties`` as Synapse returns them."""

    name: str
    type: str
    type_properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(PIPELINE_NAME, self.name, "linked service name", 260)  # the spec's linkedServiceName rule
        object.__setattr__(self, "type_properties", dict(self.type_properties))


@dataclass(frozen=True)
class PrivateEndpointConnectionSpec:
    """A private endpoint connection on an Azure ML workspace made by someone else's private endpoint
    (the gateway's own, from infra); connections from Synapse managed private endpoints follow those."""

    name: str
    state: str = "Approved"
    description: str = ""

    def __post_init__(self) -> None:
        if self.state not in APPROVAL_STATES:
            raise ValueError(f"private endpoint connection {self.name!r}: state must be one of {APPROVAL_STATES}")


@dataclass(frozen=True)
class FactorySpec:
    name: str
    subscription_id: str = SAMPLE_SUBSCRIPTION
    resource_group: str = "rg-data"
    location: str = "West Europe"
    tags: Mapping[str, str] = field(default_factory=dict)
    pipelines: Sequence[PipelineSpec] = ()

    def __post_init__(self) -> None:
        _check(FACTORY_NAME, self.name, "factory name", 63, 3)
        _check(RESOURCE_GROUP_NAME, self.resource_group, "resource group name", 90)
        _check(GUID, self.subscription_id, "subscription id", 36)
        object.__setattr__(self, "pipelines", _unique(self.pipelines, f"factory {self.name!r}"))
        object.__setattr__(self, "tags", dict(self.tags))


@dataclass(frozen=True)
class WorkspaceSpec:
    name: str
    subscription_id: str = SAMPLE_SUBSCRIPTION
    resource_group: str = "rg-synapse"
    location: str = "westeurope"
    tags: Mapping[str, str] = field(default_factory=dict)
    pipelines: Sequence[PipelineSpec] = ()
    spark_pools: Sequence[SparkPoolSpec] = ()
    managed_virtual_network: bool = True
    exfiltration_protection: bool = False
    managed_private_endpoints: Sequence[ManagedPrivateEndpointSpec] = ()
    linked_services: Sequence[LinkedServiceSpec] = ()

    def __post_init__(self) -> None:
        _check(WORKSPACE_NAME, self.name, "workspace name", 50)
        _check(RESOURCE_GROUP_NAME, self.resource_group, "resource group name", 90)
        _check(GUID, self.subscription_id, "subscription id", 36)
        object.__setattr__(self, "pipelines", _unique(self.pipelines, f"workspace {self.name!r}"))
        pools = tuple(self.spark_pools)
        if len({p.name.lower() for p in pools}) != len(pools):
            raise ValueError(f"workspace {self.name!r}: Spark pool names must be unique")
        object.__setattr__(self, "spark_pools", pools)
        object.__setattr__(self, "tags", dict(self.tags))
        endpoints, linked = tuple(self.managed_private_endpoints), tuple(self.linked_services)
        if (endpoints or self.exfiltration_protection) and not self.managed_virtual_network:
            raise ValueError(
                f"workspace {self.name!r}: managed private endpoints and exfiltration protection need a managed "
                "virtual network"
            )
        _unique_names(((e.name,) for e in endpoints), f"workspace {self.name!r} managed private endpoint")
        _unique_names(((ls.name,) for ls in linked), f"workspace {self.name!r} linked service")
        object.__setattr__(self, "managed_private_endpoints", endpoints)
        object.__setattr__(self, "linked_services", linked)


@dataclass(frozen=True)
class JobTemplateSpec:
    """How the Azure ML jobs that follow this template go (see machinelearning.py for the matching).

    A failing ``Command`` job fails with ``error_code``/``error_message`` and ``log_lines`` in its
    ``user_logs/std_log.txt``; a failing ``Pipeline`` job fails at ``failing_step`` (the last step when
    not given), which carries that error and those lines, and the steps after it never start.
    """

    name: str
    job_type: Literal["Command", "Pipeline"] = "Command"
    outcome: Outcome = "Succeeded"
    start_s: float = 0.5
    prepare_s: float = 1.0
    queue_s: float = 1.0
    duration_s: float = 3.0
    steps: Sequence[str] = ()
    failing_step: str | None = None
    error_code: str = "UserError"
    error_message: str = "Execution failed. User process 'python' exited with status code 1."
    log_lines: Sequence[str] = ()

    def __post_init__(self) -> None:
        _check(ML_JOB_NAME, self.name, "job template name", 255)
        if self.job_type not in JOB_TYPES:
            raise ValueError(f"job template {self.name!r}: job_type must be one of {JOB_TYPES}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"job template {self.name!r}: outcome must be one of {OUTCOMES}")
        if min(self.start_s, self.prepare_s, self.queue_s, self.duration_s) < 0:
            raise ValueError(f"job template {self.name!r}: durations cannot be negative")
        steps = tuple(self.steps)
        if self.job_type == "Command" and (steps or self.failing_step is not None):
            raise ValueError(f"job template {self.name!r}: steps and failing_step go with Pipeline templates only")
        if self.job_type == "Pipeline":
            steps = steps or ("step",)
            for step in steps:
                _check(ML_JOB_NAME, step, "pipeline step name", 255)
            if len({s.lower() for s in steps}) != len(steps):
                raise ValueError(f"job template {self.name!r}: step names must be unique")
            if self.failing_step is not None and self.failing_step not in steps:
                raise ValueError(f"job template {self.name!r}: failing step {self.failing_step!r} is not a step")
            if self.outcome == "Failed" and self.failing_step is None:
                object.__setattr__(self, "failing_step", steps[-1])
            if self.outcome == "Succeeded":
                object.__setattr__(self, "failing_step", None)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "log_lines", tuple(str(line) for line in self.log_lines))


@dataclass(frozen=True)
class MlWorkspaceSpec:
    """An Azure Machine Learning workspace and the job templates its submitted jobs follow."""

    name: str
    subscription_id: str = SAMPLE_SUBSCRIPTION
    resource_group: str = "rg-ml"
    location: str = "westeurope"
    tags: Mapping[str, str] = field(default_factory=dict)
    templates: Sequence[JobTemplateSpec] = ()
    public_network_access: str = "Enabled"
    isolation_mode: str = "Disabled"
    private_endpoint_connections: Sequence[PrivateEndpointConnectionSpec] = ()

    def __post_init__(self) -> None:
        _check(ML_WORKSPACE_NAME, self.name, "Azure ML workspace name", 33, 3)
        if self.public_network_access not in PUBLIC_NETWORK_ACCESS:
            raise ValueError(
                f"Azure ML workspace {self.name!r}: public_network_access must be one of {PUBLIC_NETWORK_ACCESS}"
            )
        if self.isolation_mode not in ISOLATION_MODES:
            raise ValueError(f"Azure ML workspace {self.name!r}: isolation_mode must be one of {ISOLATION_MODES}")
        connections = tuple(self.private_endpoint_connections)
        _unique_names(((c.name,) for c in connections), f"Azure ML workspace {self.name!r} private endpoint connection")
        object.__setattr__(self, "private_endpoint_connections", connections)
        _check(RESOURCE_GROUP_NAME, self.resource_group, "resource group name", 90)
        _check(GUID, self.subscription_id, "subscription id", 36)
        templates = tuple(self.templates)
        _unique_names(((t.name.lower(),) for t in templates), f"Azure ML workspace {self.name!r} template")
        object.__setattr__(self, "templates", templates)
        object.__setattr__(self, "tags", dict(self.tags))


@dataclass(frozen=True)
class IdentitySpec:
    """The user-assigned managed identity the function app runs as."""

    client_id: str = "7d2a3b5c-0f4e-4c1a-9b8e-2f6d1c3a4b5e"
    principal_id: str = "a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b"
    name: str = "id-pipeline-gateway"
    subscription_id: str = SAMPLE_SUBSCRIPTION
    resource_group: str = "rg-gateway"

    def __post_init__(self) -> None:
        _check(GUID, self.client_id, "client id", 36)
        _check(GUID, self.principal_id, "principal id", 36)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.name}"
        )


@dataclass(frozen=True)
class EmulatorConfig:
    tenant_id: str = "3b1f9c2e-8d4a-4e6b-9f7c-5a2d1e0b8c4f"
    identity: IdentitySpec = field(default_factory=IdentitySpec)
    factories: Sequence[FactorySpec] = ()
    workspaces: Sequence[WorkspaceSpec] = ()
    fabric_workspaces: Sequence[FabricWorkspaceSpec] = ()
    ml_workspaces: Sequence[MlWorkspaceSpec] = ()
    token_lifetime_s: int = 24 * 3600
    page_size: int = 100

    def __post_init__(self) -> None:
        _check(GUID, self.tenant_id, "tenant id", 36)
        if self.token_lifetime_s < 60:
            raise ValueError("token_lifetime_s must be at least 60 seconds")
        if not 1 <= self.page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        factories, workspaces = tuple(self.factories), tuple(self.workspaces)
        _unique_names(((f.subscription_id, f.resource_group, f.name) for f in factories), "factory")
        _unique_names(((w.name,) for w in workspaces), "workspace")
        object.__setattr__(self, "factories", factories)
        object.__setattr__(self, "workspaces", workspaces)
        fabric = tuple(self.fabric_workspaces)
        _unique_names(((w.id,) for w in fabric), "Fabric workspace id")
        _unique_names(((p.id,) for w in fabric for p in w.pipelines), "Fabric item id")
        object.__setattr__(self, "fabric_workspaces", fabric)
        ml_workspaces = tuple(self.ml_workspaces)
        _unique_names(((w.subscription_id, w.resource_group, w.name) for w in ml_workspaces), "Azure ML workspace")
        object.__setattr__(self, "ml_workspaces", ml_workspaces)
        for owner, pipelines in [(f.name, f.pipelines) for f in factories] + [
            (w.name, w.pipelines) for w in workspaces
        ]:
            names = {p.name.lower() for p in pipelines}
            for pipeline in pipelines:
                for activity in pipeline.activities:
                    if activity.pipeline is not None and activity.pipeline.lower() not in names:
                        raise ValueError(
                            f"{owner}/{pipeline.name}: activity {activity.name!r} runs unknown pipeline "
                            f"{activity.pipeline!r}"
                        )

    @classmethod
    def default(cls) -> EmulatorConfig:
        """The sample estate used by ``make emulator``, the demo and the tests."""
        return cls(
            factories=(SAMPLE_FACTORY,),
            workspaces=(SAMPLE_WORKSPACE,),
            fabric_workspaces=(SAMPLE_FABRIC_WORKSPACE,),
            ml_workspaces=(SAMPLE_ML_WORKSPACE,),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        return _build(cls, data)

    @classmethod
    def load(cls, path: Path) -> EmulatorConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(asdict(self))
        return plain


def _unique(pipelines: Sequence[PipelineSpec], owner: str) -> tuple[PipelineSpec, ...]:
    result = tuple(pipelines)
    _unique_names(((p.name.lower(),) for p in result), f"{owner} pipeline")
    return result


def _unique_names(keys: Any, what: str) -> None:
    seen: set[tuple[str, ...]] = set()
    for key in keys:
        folded = tuple(part.lower() for part in key)
        if folded in seen:
            raise ValueError(f"duplicate {what} {'/'.join(key)!r}")
        seen.add(folded)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Nested types per field, so JSON maps onto the dataclasses without a schema library.
_NESTED: dict[type, dict[str, tuple[type, bool]]] = {
    EmulatorConfig: {
        "identity": (IdentitySpec, False),
        "factories": (FactorySpec, True),
        "workspaces": (WorkspaceSpec, True),
        "fabric_workspaces": (FabricWorkspaceSpec, True),
        "ml_workspaces": (MlWorkspaceSpec, True),
    },
    MlWorkspaceSpec: {
        "templates": (JobTemplateSpec, True),
        "private_endpoint_connections": (PrivateEndpointConnectionSpec, True),
    },
    FactorySpec: {"pipelines": (PipelineSpec, True)},
    WorkspaceSpec: {
        "pipelines": (PipelineSpec, True),
        "spark_pools": (SparkPoolSpec, True),
        "managed_private_endpoints": (ManagedPrivateEndpointSpec, True),
        "linked_services": (LinkedServiceSpec, True),
    },
    PipelineSpec: {"activities": (ActivitySpec, True), "failure": (FailureSpec, False)},
    FabricWorkspaceSpec: {"pipelines": (FabricPipelineSpec, True)},
    FabricPipelineSpec: {"activities": (FabricActivitySpec, True), "failure": (FabricFailureSpec, False)},
}


def _build(cls: type[_T], data: Mapping[str, Any]) -> _T:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        nested = _NESTED.get(cls, {}).get(key)
        if nested is None or value is None:
            kwargs[key] = value
        elif nested[1]:
            kwargs[key] = tuple(_build(nested[0], item) for item in value)
        else:
            kwargs[key] = _build(nested[0], value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from exc


SQL_CONNECT_FAILURE = (
    "ErrorCode=SqlFailedToConnect,'Type=Microsoft.DataTransfer.Common.Shared.HybridDeliveryException,"
    "Message=Cannot connect to SQL Database: 'sales-db.database.windows.net', Database: 'sales', "
    "User: ''. Check the linked service configuration is correct, and make sure the SQL Database "
    "firewall allows the integration runtime to access.,Source=Microsoft.DataTransfer.ClientLibrary,'"
)

ERP_TIMEOUT = (
    "Error calling the endpoint 'https://erp.contoso.example/api/stock'. Response status code: 'NA - Unknown'. "
    "More details: Exception message: 'NA - Unknown [ClientSideException] The operation has timed out.'"
)

SAMPLE_FACTORY = FactorySpec(
    name="contoso-adf",
    resource_group="rg-data",
    tags={"env": "dev", "owner": "data-platform"},
    pipelines=(
        PipelineSpec(
            "daily_load",
            activities=(
                ActivitySpec("LookupWatermark", "Lookup"),
                ActivitySpec("CopyOrders", "Copy"),
                ActivitySpec("MergeOrders", "SqlServerStoredProcedure"),
            ),
        ),
        PipelineSpec(
            "copy_sales",
            outcome="Failed",
            activities=(
                ActivitySpec("CheckSource", "GetMetadata"),
                ActivitySpec("CopySales", "Copy"),
                ActivitySpec("ArchiveSales", "Copy"),
            ),
            failure=FailureSpec("CopySales", "2200", SQL_CONNECT_FAILURE, "UserError"),
        ),
        PipelineSpec("ingest_orders", activities=(ActivitySpec("CopyOrdersToLake", "Copy"),)),
        PipelineSpec("ingest_customers", activities=(ActivitySpec("CopyCustomersToLake", "Copy"),)),
        PipelineSpec(
            "nightly_master",
            queue_s=0.5,
            duration_s=1.0,
            activities=(
                ActivitySpec("RunDailyLoad", "ExecutePipeline", pipeline="daily_load"),
                ActivitySpec("Cooldown", "Wait"),
            ),
        ),
        # Fails once, as a source that timed out does (a SystemError), and succeeds when rerun.
        PipelineSpec(
            "load_inventory",
            outcome="Failed",
            activities=(ActivitySpec("LookupStores", "Lookup"), ActivitySpec("CopyInventory", "Copy")),
            failure=FailureSpec("CopyInventory", "2108", ERP_TIMEOUT, "SystemError"),
            failures=1,
        ),
    ),
)

# The sample Azure ML workspace (SAMPLE_ML_WORKSPACE below), which the sample Synapse workspace links to.
SAMPLE_ML_WORKSPACE_ID = (
    f"/subscriptions/{SAMPLE_SUBSCRIPTION}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices"
    "/workspaces/contoso-aml"
)

# Misconfigured on purpose (the demo's secure-integration story): the Azure ML linked service is there,
# but its managed private endpoint waits for the Azure ML workspace's owner to approve it.
SAMPLE_WORKSPACE = WorkspaceSpec(
    name="contoso-syn",
    resource_group="rg-synapse",
    pipelines=(
        PipelineSpec(
            "refresh_lake",
            activities=(
                ActivitySpec("RefreshBronze", "SynapseNotebook"),
                ActivitySpec("RefreshSilver", "SynapseNotebook"),
            ),
        ),
        PipelineSpec(
            "build_marts",
            outcome="Failed",
            activities=(
                ActivitySpec("LoadDimensions", "SynapseNotebook"),
                ActivitySpec("BuildSalesMart", "SynapseNotebook"),
            ),
            failure=FailureSpec(
                "BuildSalesMart",
                "6002",
                "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `silver`.`sales_orders` "
                "cannot be found. Verify the spelling and correctness of the schema and catalog.",
                "UserError",
            ),
        ),
    ),
    spark_pools=(
        SparkPoolSpec("small", node_size="Small", node_count=3),
        SparkPoolSpec("large", node_size="Large", node_count=10, startup_s=2.0),
    ),
    managed_private_endpoints=(
        ManagedPrivateEndpointSpec("mpe-contoso-aml", SAMPLE_ML_WORKSPACE_ID, "amlworkspace", state="Pending"),
    ),
    linked_services=(
        LinkedServiceSpec(
            "AzureMLService1",
            "AzureMLService",
            {
                "subscriptionId": SAMPLE_SUBSCRIPTION,
                "resourceGroupName": "rg-ml",
                "mlWorkspaceName": "contoso-aml",
                "authentication": "MSI",
            },
        ),
    ),
)


SAMPLE_ML_WORKSPACE = MlWorkspaceSpec(
    name="contoso-aml",
    resource_group="rg-ml",
    tags={"env": "dev", "owner": "data-science"},
    templates=(
        JobTemplateSpec(
            "train_model",
            job_type="Command",
            log_lines=(
                "Loading training data from azureml://datastores/workspaceblobstore/paths/sales/",
                "Epoch 1/3 - loss: 0.412",
                "Epoch 3/3 - loss: 0.087",
                "Model saved to ./outputs/model.pkl",
            ),
        ),
        JobTemplateSpec(
            "score_batch",
            job_type="Pipeline",
            outcome="Failed",
            steps=("prep_data", "score", "publish"),
            failing_step="score",
            error_code="UserError",
            error_message="Execution failed. User process 'python score.py' exited with status code 1. "
            "Please check log file 'user_logs/std_log.txt' for error details.",
            log_lines=(
                "Loading model from azureml:sales-forecast:3",
                "Traceback (most recent call last):",
                '  File "score.py", line 41, in <module>',
                "    features = frame[FEATURES]",
                "KeyError: \"['store_region'] not in index\"",
            ),
        ),
        JobTemplateSpec("refresh_features", job_type="Pipeline", steps=("extract", "build_features")),
    ),
)


def pipeline_summary(pipelines: Sequence[PipelineSpec]) -> list[dict[str, str]]:
    """The ``pipelines`` entries of the info file."""
    return [{"name": p.name, "outcome": cast(str, p.outcome)} for p in pipelines]
