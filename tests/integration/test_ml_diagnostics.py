"""What GET /api/targets/{t} tells an operator about an Azure ML workspace: its network posture, each
private endpoint connection's state with what to do, run history's reach, and the role a refusal needs."""

from __future__ import annotations

from typing import Any

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.context import AppContext
from tests.conftest import body_of, call, http_request, install_context

SECURE = "secure-aml"


def report(target: str) -> dict[str, Any]:
    response = call("get_target", http_request("GET", f"targets/{target}", route_params={"target": target}))
    assert response.status_code == 200, response.get_body()
    return dict(body_of(response))


def checks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in document["checks"]}


def test_a_private_workspace_reports_its_network_and_each_connection_with_what_to_do(context: AppContext) -> None:
    document = report(SECURE)
    found = checks(document)

    workspace = found["workspace"]
    assert workspace["level"] == "ok"
    assert workspace["facts"]["publicNetworkAccess"] == "Disabled"
    assert workspace["facts"]["managedNetwork"] == "AllowOnlyApprovedOutbound"
    assert found["privateEndpoint:pe-gateway"]["level"] == "ok"
    pending = found["privateEndpoint:pe-analytics"]
    assert pending["level"] == "warning" and pending["facts"]["status"] == "Pending"
    assert pending["action"] == f"approve it on Azure ML workspace {SECURE} → Networking → Private endpoint connections"
    rejected = found["privateEndpoint:pe-old-vnet"]
    assert rejected["level"] == "error" and "Rejected" in rejected["detail"] and rejected["action"]
    assert document["healthy"] is False
    assert document["summary"].startswith("1 error, 1 warning")


def test_a_refused_listing_names_the_role_and_leaves_the_other_checks_standing(
    context: AppContext, stack: OfflineStack
) -> None:
    stack.emulator.faults.add(
        Fault(route="PrivateEndpointConnections_List", status=403, code="AuthorizationFailed", count=1)
    )
    found = checks(report(SECURE))

    refused = found["privateEndpointConnections"]
    assert refused["level"] == "error" and refused["upstreamStatus"] == 403
    assert refused["role"] == (
        f"the Pipeline Gateway ML job runner role (or AzureML Data Scientist) on Azure ML workspace {SECURE}"
    )
    assert found["workspace"]["level"] == found["jobs"]["level"] == found["runHistory"]["level"] == "ok"


def test_with_private_networking_run_historys_host_must_resolve_privately(
    context: AppContext, stack: OfflineStack, names: dict[str, str]
) -> None:
    assert checks(report(SECURE))["privateDns:api"]["skipped"], "private networking off: nothing to check"

    install_context(stack, names, settings={"GATEWAY_PRIVATE_NETWORKING": "true"})
    dns = checks(report(SECURE))["privateDns:api"]

    # The emulator answers on 127.0.0.1: a loopback address is no private endpoint's.
    assert dns["level"] == "error" and dns["facts"]["zone"] == "privatelink.api.azureml.ms"
    assert "privatelink.api.azureml.ms" in dns["action"]
