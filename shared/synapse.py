"""Azure Synapse pipelines through the workspace data plane (api-version 2020-12-01)."""

from __future__ import annotations

from typing import Any

from shared.catalog import SynapseTarget
from shared.pipeline_client import PipelineClient
from shared.upstream import Operation, UpstreamClient


class SynapsePipelineClient(PipelineClient):
    api_version = "2020-12-01"
    # Synapse's createRun has no startFromFailure (artifacts spec 2020-12-01).
    supports_start_from_failure = False

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, scope: str) -> None:
        super().__init__(upstream, base_url=target.endpoint, scope=scope, target=target.name)
        workspace = target.workspace_name
        self.read_role = f"the Synapse Artifact User (or Synapse User) role on workspace {workspace}"
        self.run_role = (
            f"the Synapse Credential User and Synapse Artifact User roles on workspace "
            f"{workspace} (Synapse RBAC, not Azure RBAC)"
        )

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        return f"/pipelines/{pipeline}/pipelineruns/{run_id}/queryActivityruns"


class SynapseWorkspaceClient:
    """The workspace's ARM resource (Microsoft.Synapse, Workspaces_Get 2021-06-01), for diagnostics."""

    api_version = "2021-06-01"

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, arm_endpoint: str, scope: str) -> None:
        self._upstream = upstream
        self._target = target
        self._url = arm_endpoint + (target.resource_id or "")
        self._scope = scope

    def get_workspace(self) -> dict[str, Any]:
        role = f"Reader on {self._target.resource_id}"
        response = self._upstream.call(
            Operation("getWorkspace", self._target.name, role),
            "GET",
            self._url,
            scope=self._scope,
            params={"api-version": self.api_version},
        )
        return response.body if isinstance(response.body, dict) else {}
