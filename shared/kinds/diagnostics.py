"""Target diagnostics: does the gateway's identity reach a target the way the app will use it?

Operators run this right after a deployment. Each check is one cheap, read-only call on the path the
app depends on: the management plane (the factory or workspace resource), the pipeline-run reads the
poller makes, and for Synapse each listed Spark pool. A refused call says which role is missing and
where, instead of failing the whole report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from shared.api.views import target_view
from shared.config.catalog import GLOB_CHARACTERS, DataFactoryTarget, SynapseTarget
from shared.context import AppContext
from shared.errors import GatewayError, UpstreamError
from shared.kinds.pipelines import RunQuery
from shared.kinds.synapse import SynapseWorkspaceClient
from shared.runs.model import utcnow

if TYPE_CHECKING:
    from shared.kinds.datafactory import DataFactoryClient

Target = DataFactoryTarget | SynapseTarget


def diagnose(context: AppContext, target: Target, product: str | None = None) -> dict[str, Any]:
    checks = [_management(context, target), _pipeline_runs(context, target)]
    if isinstance(target, SynapseTarget):
        checks.extend(
            _spark_pool(context, target, rule.match)
            for rule in target.spark_pools
            if not GLOB_CHARACTERS & set(rule.match)
        )
    return {"target": target_view(target, product), "healthy": all(c["ok"] for c in checks), "checks": checks}


def _check(name: str, call: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs one check; its failure is reported, with Azure's status and the role hint, not raised."""
    result: dict[str, Any] = {"name": name, "call": call}
    try:
        facts = action()
    except UpstreamError as exc:
        result.update(
            ok=False,
            detail=exc.detail,
            upstreamStatus=exc.upstream_status,
            upstreamCode=exc.upstream_code,
            upstreamRequestId=exc.request_id,
        )
        return result
    except GatewayError as exc:
        result.update(ok=False, detail=exc.detail)
        return result
    result.update(ok=True, facts=facts)
    return result


def _management(context: AppContext, target: Target) -> dict[str, Any]:
    if isinstance(target, DataFactoryTarget):
        client = cast("DataFactoryClient", context.pipelines(target))

        def factory() -> dict[str, Any]:
            return _resource_facts(client.get_factory())

        return _check("managementPlane", "GET Microsoft.DataFactory/factories", factory)
    if target.resource_id is None:
        return {
            "name": "managementPlane",
            "call": "GET Microsoft.Synapse/workspaces",
            "ok": True,
            "skipped": "the catalog entry has no subscriptionId and resourceGroup",
        }
    workspace_client = SynapseWorkspaceClient(
        context.upstream, target, arm_endpoint=context.settings.arm_endpoint, scope=context.settings.arm_scope
    )

    def workspace() -> dict[str, Any]:
        resource = workspace_client.get_workspace()
        facts = _resource_facts(resource)
        properties = resource.get("properties") or {}
        dev = (properties.get("connectivityEndpoints") or {}).get("dev")
        facts["managedVirtualNetwork"] = properties.get("managedVirtualNetwork")
        facts["devEndpoint"] = dev
        facts["devEndpointMatchesCatalog"] = _same_host(dev, target.endpoint) if dev else None
        return facts

    return _check("managementPlane", "GET Microsoft.Synapse/workspaces", workspace)


def _resource_facts(resource: dict[str, Any]) -> dict[str, Any]:
    properties = resource.get("properties") or {}
    return {
        "name": resource.get("name"),
        "location": resource.get("location"),
        "provisioningState": properties.get("provisioningState"),
        "publicNetworkAccess": properties.get("publicNetworkAccess"),
        "identityType": (resource.get("identity") or {}).get("type"),
    }


def _same_host(dev: str, endpoint: str) -> bool:
    """ARM gives the dev endpoint with or without a scheme; compare hosts and paths only."""
    return dev.removeprefix("https://").rstrip("/") == endpoint.removeprefix("https://").rstrip("/")


def _pipeline_runs(context: AppContext, target: Target) -> dict[str, Any]:
    service = context.pipelines(target)

    def recent_runs() -> dict[str, Any]:
        now = utcnow()
        query = RunQuery(updated_after=now - timedelta(hours=1), updated_before=now + timedelta(minutes=1))
        runs = 0
        for _ in service.query_runs(query):
            runs += 1
            if runs >= 100:
                break
        return {"runsUpdatedInTheLastHour": runs if runs < 100 else "100+"}

    return _check("pipelineRuns", "POST queryPipelineRuns (last hour)", recent_runs)


def _spark_pool(context: AppContext, target: SynapseTarget, pool: str) -> dict[str, Any]:
    client = context.spark(target, pool)

    def batches() -> dict[str, Any]:
        _, total = client.list_batches(0, size=1)
        return {"batches": total}

    return _check(f"sparkPool:{pool}", "GET livyApi .../batches", batches)
