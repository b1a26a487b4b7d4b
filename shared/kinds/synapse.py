"""Azure Synapse pipelines through the workspace data plane (api-version 2020-12-01): the catalog entry
(which also lists the workspace's Spark pools and their guardrails, see ``shared.kinds.spark`` and
``shared.kinds.spark_rules``), the clients, the kind."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import field_validator

from shared.azure.transport import TargetClient, UpstreamClient
from shared.config import names
from shared.config.settings import Settings
from shared.config.targets import TargetEntry, as_rules, check_name, optional_name
from shared.kinds.base import Azure
from shared.kinds.checks import Check, resource_facts, run_check, skipped
from shared.kinds.pipeline_kind import PipelineKind
from shared.kinds.pipelines import PipelineClient
from shared.kinds.spark_rules import SparkPoolRule
from shared.kinds.synapse_network import network_checks
from shared.runs.model import Run


class SynapseTarget(TargetEntry):
    kind: Literal["synapse"]
    workspace_name: str
    endpoint: str
    subscription_id: str | None = None
    resource_group: str | None = None
    spark_pools: tuple[SparkPoolRule, ...] = ()

    @field_validator("workspace_name")
    @classmethod
    def _workspace(cls, value: str) -> str:
        return check_name(names.WORKSPACE, value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("https://") or any(c in value for c in "?#@ "):
            raise ValueError("endpoint must be an https:// URL such as https://<workspace>.dev.azuresynapse.net")
        return value.rstrip("/")

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, value: str | None) -> str | None:
        return optional_name(names.SUBSCRIPTION_ID, value)

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, value: str | None) -> str | None:
        return optional_name(names.RESOURCE_GROUP, value)

    @field_validator("spark_pools", mode="before")
    @classmethod
    def _pools(cls, value: Any) -> Any:
        return as_rules(value)

    @property
    def resource_id(self) -> str | None:
        if not (self.subscription_id and self.resource_group):
            return None
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Synapse/workspaces/{self.workspace_name}"
        )

    @property
    def location(self) -> str:
        return f"workspace {self.workspace_name}" + (f" ({self.resource_group})" if self.resource_group else "")

    def described(self) -> dict[str, str]:
        return {"workspaceName": self.workspace_name}


class SynapsePipelineClient(PipelineClient):
    api_version = "2020-12-01"
    # Synapse's createRun has no startFromFailure (artifacts spec 2020-12-01).
    supports_start_from_failure = False

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, scope: str) -> None:
        super().__init__(upstream, base_url=target.endpoint, scope=scope, target=target.name)
        workspace = target.workspace_name
        # The roles the postprovision hook assigns (docs/deploy.md); Synapse RBAC, not Azure RBAC.
        self.read_role = f"the Synapse Monitoring Operator role on workspace {workspace} (Synapse RBAC)"
        self.run_role = (
            f"the Synapse Credential User role on the WorkspaceSystemIdentity credential and the Synapse "
            f"Monitoring Operator role on workspace {workspace} (Synapse RBAC)"
        )
        self._cancel_role = (
            f"the Synapse Contributor role on workspace {workspace} (Synapse RBAC; the deployment assigns it "
            "with the synapsePipelineCancel parameter)"
        )

    @property
    def cancel_role(self) -> str:
        return self._cancel_role

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        return f"/pipelines/{pipeline}/pipelineruns/{run_id}/queryActivityruns"


class SynapseWorkspaceClient(TargetClient):
    """The workspace's ARM resource (Microsoft.Synapse, Workspaces_Get 2021-06-01), for diagnostics."""

    api_version = "2021-06-01"

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, arm_endpoint: str, scope: str) -> None:
        super().__init__(upstream, base_url=arm_endpoint + (target.resource_id or ""), scope=scope, target=target.name)
        self._role = f"Reader on {target.resource_id}"

    def get_workspace(self) -> dict[str, Any]:
        body, _ = self._call("getWorkspace", "GET", "", role=self._role)
        return body if isinstance(body, dict) else {}


class SynapseKind(PipelineKind[SynapseTarget]):
    name = "synapse"
    target_kind = "synapse"
    label = "Synapse"
    studio = "Synapse Studio"
    target_model = SynapseTarget
    start_from_failure: ClassVar[bool] = False

    def client(self, azure: Azure, target: SynapseTarget) -> SynapsePipelineClient:
        return azure.client(
            (self.name, target.name),
            lambda: SynapsePipelineClient(azure.upstream, target, scope=azure.settings.synapse_scope),
        )

    def links(self, target: SynapseTarget, run: Run, *, app_id: str | None, settings: Settings) -> dict[str, str]:
        if not run.upstream_run_id:
            return {}
        workspace = target.resource_id
        suffix = f"?workspace={quote(workspace, safe='')}" if workspace else ""
        return {
            "studio": f"{settings.synapse_studio_url}/en/monitoring/pipelineruns/"
            f"{quote(run.upstream_run_id, safe='')}{suffix}"
        }

    def checks(self, azure: Azure, target: SynapseTarget) -> list[Check]:
        read: list[dict[str, Any]] = []  # the workspace's ARM resource, once read: the network checks use it
        management = self._workspace_check(azure, target, read)
        unreadable = management.skipped or "the call failed: see managementPlane"
        return [
            management,
            self.recent_runs_check(azure, target),
            *self.correlation_checks(azure, target),
            *network_checks(azure, target, read[0] if read else None, unreadable=unreadable),
        ]

    def _workspace_check(self, azure: Azure, target: SynapseTarget, read: list[dict[str, Any]]) -> Check:
        call = "GET Microsoft.Synapse/workspaces"
        if target.resource_id is None:
            return skipped("managementPlane", call, "the catalog entry has no subscriptionId and resourceGroup")
        settings = azure.settings
        client = SynapseWorkspaceClient(
            azure.upstream, target, arm_endpoint=settings.arm_endpoint, scope=settings.arm_scope
        )

        def workspace() -> dict[str, Any]:
            resource = client.get_workspace()
            read.append(resource)
            facts = resource_facts(resource)
            properties = resource.get("properties") or {}
            dev = (properties.get("connectivityEndpoints") or {}).get("dev")
            facts["managedVirtualNetwork"] = properties.get("managedVirtualNetwork")
            facts["devEndpoint"] = dev
            facts["devEndpointMatchesCatalog"] = _same_host(dev, target.endpoint) if dev else None
            return facts

        return run_check("managementPlane", call, workspace)


def _same_host(dev: str, endpoint: str) -> bool:
    """ARM gives the dev endpoint with or without a scheme; compare hosts and paths only."""
    return dev.removeprefix("https://").rstrip("/") == endpoint.removeprefix("https://").rstrip("/")


SYNAPSE = SynapseKind()
