"""GET /api/targets/{target}: what the identity can reach, and which role is missing where it cannot."""

from __future__ import annotations

import json
from typing import Any

from offline.emulator import Fault
from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from tests.conftest import body_of, call, http_request, install_context
from tests.integration.test_start_runs import problem


def diagnose(target: str, headers: dict[str, str] | None = None) -> Any:
    return call("get_target", http_request("GET", f"targets/{target}", None, headers, route_params={"target": target}))


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_a_healthy_factory(context: AppContext, adf: str) -> None:
    response = diagnose(adf)
    assert response.status_code == 200
    report = body_of(response)
    assert report["healthy"] is True and report["target"]["factoryName"] == adf
    management = checks(report)["managementPlane"]
    assert management["facts"]["name"] == adf and management["facts"]["provisioningState"] == "Succeeded"
    assert management["facts"]["location"]
    assert "runsUpdatedInTheLastHour" in checks(report)["pipelineRuns"]["facts"]


def test_a_refused_call_names_the_missing_role_and_scope(context: AppContext, stack: OfflineStack, adf: str) -> None:
    stack.emulator.faults.add(Fault(route="Factories_Get", kind="status", status=403, count=1))
    report = body_of(diagnose(adf))
    management = checks(report)["managementPlane"]
    assert report["healthy"] is False and management["ok"] is False
    assert management["upstreamStatus"] == 403 and management["upstreamRequestId"]
    assert f"on factory {adf}" in management["detail"] and "Data Factory runner role" in management["detail"]
    assert checks(report)["pipelineRuns"]["ok"] is True


def test_a_workspace_its_endpoint_and_spark_pools(
    stack: OfflineStack, names: dict[str, str], context: AppContext, synapse: str
) -> None:
    report = body_of(diagnose(synapse))
    found = checks(report)
    assert report["healthy"] is True
    facts = found["managementPlane"]["facts"]
    assert facts["name"] == synapse and facts["devEndpointMatchesCatalog"] is True
    assert "publicNetworkAccess" in facts and "managedVirtualNetwork" in facts
    assert found["pipelineRuns"]["ok"] is True
    assert not [name for name in found if name.startswith("sparkPool:")]  # "*" in the catalog: no pool to check


def test_each_listed_spark_pool_is_checked(
    stack: OfflineStack, names: dict[str, str], context: AppContext, synapse: str
) -> None:
    catalog = catalog_for(stack.emulator.info)
    catalog["targets"][1]["sparkPools"] = ["small", "ghost"]
    install_context(stack, names, settings={"GATEWAY_CATALOG": json.dumps(catalog)})
    found = checks(body_of(diagnose(synapse)))
    assert found["sparkPool:small"]["ok"] is True and "batches" in found["sparkPool:small"]["facts"]
    assert found["sparkPool:ghost"]["ok"] is False and found["sparkPool:ghost"]["upstreamStatus"] == 404


def test_the_report_shows_only_what_the_product_may_use(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str
) -> None:
    install_context(stack, names, pipelines=["daily_load", {"match": "copy_*", "products": ["erp"]}])
    report = body_of(diagnose(adf, {"x-apim-product-id": "bi"}))
    assert [rule["match"] for rule in report["target"]["pipelines"]] == ["daily_load"]
    assert "subscriptionId" not in report["target"]


def test_unknown_and_invalid_targets(context: AppContext) -> None:
    problem(diagnose("nope"), 404, "target-not-found")
    problem(diagnose("Not.Valid"), 422, "invalid-name")


def test_a_pipeline_must_declare_the_correlation_parameter_the_catalog_gives_it(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    install_context(
        stack,
        names,
        pipelines=[
            {"match": "correlated", "correlationParameter": "gatewayRunId"},
            {"match": "daily_load", "correlationParameter": "gatewayRunId"},
            {"match": "ingest_*", "correlationParameter": "gatewayRunId"},
            "*",
        ],
    )

    report = body_of(diagnose(adf))

    found = checks(report)
    assert found["correlationParameter:correlated"]["ok"] is True
    assert found["correlationParameter:correlated"]["facts"] == {"parameter": "gatewayRunId", "type": "String"}
    missing = found["correlationParameter:daily_load"]
    assert missing["ok"] is False and "does not declare parameter 'gatewayRunId'" in missing["detail"]
    assert "each pipeline it matches must declare" in found["correlationParameter:ingest_*"]["skipped"]
    assert report["healthy"] is False
