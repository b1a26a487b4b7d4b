"""Azure Data Factory pipelines through ARM (api-version 2018-06-01)."""

from __future__ import annotations

from typing import Any

from shared.azure.transport import UpstreamClient
from shared.config.catalog import DataFactoryTarget
from shared.kinds.pipeline_client import PipelineClient


class DataFactoryClient(PipelineClient):
    api_version = "2018-06-01"
    supports_start_from_failure = True

    def __init__(self, upstream: UpstreamClient, target: DataFactoryTarget, *, arm_endpoint: str, scope: str) -> None:
        super().__init__(upstream, base_url=arm_endpoint + target.resource_id, scope=scope, target=target.name)
        factory = target.factory_name
        self.read_role = f"Data Factory Contributor (or Reader) on factory {factory}"
        self.run_role = f"Data Factory Contributor on factory {factory}"

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        return f"/pipelineruns/{run_id}/queryActivityruns"

    def get_factory(self) -> dict[str, Any]:
        """The factory's ARM resource (Factories_Get), for diagnostics."""
        body, _ = self._call("getFactory", "GET", "", role=self.read_role)
        return body if isinstance(body, dict) else {}
