"""Azure Data Factory pipelines through ARM (api-version 2018-06-01): the catalog entry, the client, the kind."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import field_validator

from shared.azure.transport import UpstreamClient
from shared.config import names
from shared.config.settings import Settings
from shared.config.targets import ArmTargetEntry, check_name
from shared.kinds.base import Azure
from shared.kinds.checks import Check, resource_facts, run_check
from shared.kinds.pipeline_kind import PipelineKind
from shared.kinds.pipelines import PipelineClient
from shared.runs.model import Run


class DataFactoryTarget(ArmTargetEntry):
    kind: Literal["datafactory"]
    factory_name: str

    @field_validator("factory_name")
    @classmethod
    def _factory(cls, value: str) -> str:
        if len(value) < 3:
            raise ValueError("Factory name must be at least 3 characters.")
        return check_name(names.FACTORY, value)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.DataFactory/factories/{self.factory_name}"
        )

    @property
    def location(self) -> str:
        return f"factory {self.factory_name} ({self.resource_group})"

    def described(self) -> dict[str, str]:
        return {"factoryName": self.factory_name}


class DataFactoryClient(PipelineClient):
    api_version = "2018-06-01"
    supports_start_from_failure = True

    def __init__(self, upstream: UpstreamClient, target: DataFactoryTarget, *, arm_endpoint: str, scope: str) -> None:
        super().__init__(upstream, base_url=arm_endpoint + target.resource_id, scope=scope, target=target.name)
        factory = target.factory_name
        # The role infra assigns (docs/deploy.md); the built-in one that also covers it, for hand-made setups.
        self.read_role = self.run_role = (
            f"the Pipeline Gateway Data Factory runner role (or Data Factory Contributor) on factory {factory}"
        )

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        return f"/pipelineruns/{run_id}/queryActivityruns"

    def get_factory(self) -> dict[str, Any]:
        """The factory's ARM resource (Factories_Get), for diagnostics."""
        body, _ = self._call("getFactory", "GET", "", role=self.read_role)
        return body if isinstance(body, dict) else {}


class DataFactoryKind(PipelineKind[DataFactoryTarget]):
    name = "datafactory"
    target_kind = "datafactory"
    label = "ADF"
    studio = "ADF Studio"
    target_model = DataFactoryTarget
    start_from_failure = True

    def client(self, azure: Azure, target: DataFactoryTarget) -> DataFactoryClient:
        settings = azure.settings
        return azure.client(
            (self.name, target.name),
            lambda: DataFactoryClient(
                azure.upstream, target, arm_endpoint=settings.arm_endpoint, scope=settings.arm_scope
            ),
        )

    def links(self, target: DataFactoryTarget, run: Run, *, app_id: str | None, settings: Settings) -> dict[str, str]:
        if not run.upstream_run_id:
            return {}
        factory = quote(target.resource_id, safe="")
        return {
            "studio": f"{settings.adf_studio_url}/en/monitoring/pipelineruns/"
            f"{quote(run.upstream_run_id, safe='')}?factory={factory}"
        }

    def checks(self, azure: Azure, target: DataFactoryTarget) -> list[Check]:
        client = self.client(azure, target)
        management = run_check(
            "managementPlane", "GET Microsoft.DataFactory/factories", lambda: resource_facts(client.get_factory())
        )
        return [management, self.recent_runs_check(azure, target), *self.correlation_checks(azure, target)]


DATAFACTORY = DataFactoryKind()
