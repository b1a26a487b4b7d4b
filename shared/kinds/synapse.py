"""Azure Synapse pipelines through the workspace data plane (api-version 2020-12-01)."""

from __future__ import annotations

from typing import Any

from shared.azure.transport import TargetClient, UpstreamClient
from shared.config.catalog import SynapseTarget
from shared.kinds.pipeline_client import PipelineClient


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


class SynapseWorkspaceClient(TargetClient):
    """The workspace's ARM resource (Microsoft.Synapse, Workspaces_Get 2021-06-01), for diagnostics."""

    api_version = "2021-06-01"

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, arm_endpoint: str, scope: str) -> None:
        super().__init__(upstream, base_url=arm_endpoint + (target.resource_id or ""), scope=scope, target=target.name)
        self._role = f"Reader on {target.resource_id}"

    def get_workspace(self) -> dict[str, Any]:
        body, _ = self._call("getWorkspace", "GET", "", role=self._role)
        return body if isinstance(body, dict) else {}
