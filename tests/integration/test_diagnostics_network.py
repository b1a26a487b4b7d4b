"""GET /api/targets/{t} for private Synapse setups: the managed virtual network, data exfiltration
protection, each managed private endpoint and its approval, each Azure ML linked service, and the app's
own DNS path to the dev endpoint; each check ok, a warning, an error, or refused with the role named.

One workspace per setup in an emulator of this module's own, all linking the same Azure ML workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from offline.emulator import EmulatorConfig, Fault
from offline.emulator.config import (
    SAMPLE_ML_WORKSPACE,
    SAMPLE_ML_WORKSPACE_ID,
    SAMPLE_SUBSCRIPTION,
    LinkedServiceSpec,
    ManagedPrivateEndpointSpec,
    WorkspaceSpec,
)
from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from shared.kinds import network
from tests.conftest import body_of, call, http_request, install, own_stack

AML_LINK = LinkedServiceSpec(
    "AzureMLService1",
    "AzureMLService",
    {
        "subscriptionId": SAMPLE_SUBSCRIPTION,
        "resourceGroupName": SAMPLE_ML_WORKSPACE.resource_group,
        "mlWorkspaceName": SAMPLE_ML_WORKSPACE.name,
        "authentication": "MSI",
        "servicePrincipalKey": {"type": "SecureString", "value": "never-shown"},
    },
)


def to_aml(state: str) -> tuple[ManagedPrivateEndpointSpec, ...]:
    return (ManagedPrivateEndpointSpec("mpe-aml", SAMPLE_ML_WORKSPACE_ID, "amlworkspace", state=state),)


SETUPS = (
    WorkspaceSpec("syn-approved", managed_private_endpoints=to_aml("Approved"), linked_services=(AML_LINK,)),
    WorkspaceSpec("syn-pending", managed_private_endpoints=to_aml("Pending"), linked_services=(AML_LINK,)),
    WorkspaceSpec("syn-rejected", managed_private_endpoints=to_aml("Rejected"), linked_services=(AML_LINK,)),
    WorkspaceSpec(
        "syn-locked",
        exfiltration_protection=True,
        managed_private_endpoints=to_aml("Approved"),
        linked_services=(AML_LINK,),
    ),
    WorkspaceSpec("syn-nompe", linked_services=(AML_LINK,)),
    WorkspaceSpec("syn-public", managed_virtual_network=False, linked_services=(AML_LINK,)),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    config = EmulatorConfig(workspaces=SETUPS, ml_workspaces=(SAMPLE_ML_WORKSPACE,))
    with own_stack(tmp_path_factory.mktemp("network"), config) as started:
        yield started


@pytest.fixture
def settings() -> dict[str, str]:
    return {}


@pytest.fixture
def context(stack: OfflineStack, names: dict[str, str], settings: dict[str, str]) -> Iterator[AppContext]:
    from shared.context import set_app_context

    stack.emulator.faults.clear()
    yield install(stack, names, catalog_for(stack.emulator.info), settings=settings)
    set_app_context(None)
    stack.emulator.faults.clear()


def report(target: str) -> dict[str, Any]:
    response = call("get_target", http_request("GET", f"targets/{target}", None, route_params={"target": target}))
    assert response.status_code == 200
    body: dict[str, Any] = body_of(response)
    return body


def checks(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in found["checks"]}


def test_an_approved_setup_is_all_ok(context: AppContext) -> None:
    found = report("syn-approved")
    by_name = checks(found)
    assert found["healthy"] is True and found["summary"].startswith("all ") and "ok" in found["summary"]
    assert by_name["managedVirtualNetwork"]["facts"] == {"managedVirtualNetwork": "default"}
    assert by_name["dataExfiltrationProtection"]["facts"] == {"preventDataExfiltration": False}
    endpoint = by_name["managedPrivateEndpoint:mpe-aml"]
    assert endpoint["level"] == "ok" and endpoint["facts"]["approval"] == "Approved"
    assert (
        endpoint["facts"]["groupId"] == "amlworkspace"
        and endpoint["facts"]["privateLinkResourceId"] == SAMPLE_ML_WORKSPACE_ID
    )
    linked = by_name["linkedService:AzureMLService1"]
    assert linked["level"] == "ok" and linked["facts"]["mlWorkspace"] == SAMPLE_ML_WORKSPACE_ID
    assert linked["facts"]["managedPrivateEndpoint"] == "mpe-aml" and linked["facts"]["approval"] == "Approved"
    assert "never-shown" not in str(found)


def test_a_pending_endpoint_is_a_warning_saying_where_to_approve_it(context: AppContext) -> None:
    found = report("syn-pending")
    by_name = checks(found)
    endpoint = by_name["managedPrivateEndpoint:mpe-aml"]
    assert endpoint["level"] == "warning" and endpoint["ok"] is True and endpoint["facts"]["approval"] == "Pending"
    assert endpoint["action"].startswith(
        f"approve it on Azure Machine Learning workspace {SAMPLE_ML_WORKSPACE.name} "
        f"({SAMPLE_ML_WORKSPACE.resource_group}) → Networking → Private endpoint connections"
    )
    linked = by_name["linkedService:AzureMLService1"]
    assert linked["level"] == "warning" and "see managedPrivateEndpoint:mpe-aml" in linked["action"]
    assert found["healthy"] is True
    assert found["summary"] == "2 warnings: managedPrivateEndpoint:mpe-aml, linkedService:AzureMLService1"


def test_a_rejected_endpoint_is_an_error_saying_to_recreate_it(context: AppContext) -> None:
    found = report("syn-rejected")
    endpoint = checks(found)["managedPrivateEndpoint:mpe-aml"]
    assert endpoint["level"] == "error" and endpoint["ok"] is False and "rejected" in endpoint["detail"]
    assert "create it again" in endpoint["action"] and "Private endpoint connections" in endpoint["action"]
    assert checks(found)["linkedService:AzureMLService1"]["level"] == "error"
    assert found["healthy"] is False and found["summary"].startswith("2 errors: ")


def test_an_azure_ml_linked_service_under_exfiltration_protection_is_an_error(context: AppContext) -> None:
    found = report("syn-locked")
    by_name = checks(found)
    assert by_name["dataExfiltrationProtection"]["facts"] == {"preventDataExfiltration": True}
    assert by_name["dataExfiltrationProtection"]["level"] == "ok"  # a fact; what it breaks is the next line
    linked = by_name["linkedService:AzureMLService1"]
    assert linked["level"] == "error" and "not supported" in linked["detail"]
    assert "without data exfiltration protection" in linked["action"]
    assert by_name["managedPrivateEndpoint:mpe-aml"]["level"] == "ok"
    assert found["summary"] == "1 error: linkedService:AzureMLService1"


def test_a_linked_service_without_a_managed_private_endpoint_is_a_warning_saying_how_to_create_one(
    context: AppContext,
) -> None:
    linked = checks(report("syn-nompe"))["linkedService:AzureMLService1"]
    assert linked["level"] == "warning" and "no managed private endpoint" in linked["detail"]
    assert "Managed private endpoints → + New → Azure Machine Learning" in linked["action"]


def test_without_a_managed_network_endpoints_are_skipped_and_the_linked_service_warned(context: AppContext) -> None:
    by_name = checks(report("syn-public"))
    assert by_name["managedVirtualNetwork"]["facts"] == {"managedVirtualNetwork": None}
    assert "off" in by_name["managedVirtualNetwork"]["detail"]
    assert by_name["managedPrivateEndpoints"]["skipped"] == "the workspace has no managed virtual network"
    assert by_name["linkedService:AzureMLService1"]["level"] == "warning"


def test_a_refused_endpoint_list_names_the_role_and_the_rest_of_the_report_stands(
    context: AppContext, stack: OfflineStack
) -> None:
    stack.emulator.faults.add(Fault(route="ManagedPrivateEndpoints_List", kind="status", status=403))
    found = report("syn-pending")
    by_name = checks(found)
    refused = by_name["managedPrivateEndpoints"]
    assert refused["level"] == "error" and refused["upstreamStatus"] == 403
    assert refused["role"] == "the Synapse User role (Synapse RBAC) on workspace syn-pending"
    assert not [name for name in by_name if name.startswith("managedPrivateEndpoint:")]
    linked = by_name["linkedService:AzureMLService1"]
    assert linked["level"] == "ok" and "unknown" in linked["detail"]
    assert by_name["managementPlane"]["level"] == "ok" and by_name["pipelineRuns"]["level"] == "ok"


def test_a_refused_linked_service_list_names_the_role(context: AppContext, stack: OfflineStack) -> None:
    stack.emulator.faults.add(Fault(route="LinkedService_GetLinkedServicesByWorkspace", kind="status", status=403))
    by_name = checks(report("syn-pending"))
    assert by_name["linkedServices"]["level"] == "error" and "Synapse User" in by_name["linkedServices"]["role"]
    assert by_name["managedPrivateEndpoint:mpe-aml"]["level"] == "warning"


def test_a_refused_workspace_read_skips_the_network_facts_but_not_the_endpoints(
    context: AppContext, stack: OfflineStack
) -> None:
    stack.emulator.faults.add(Fault(route="Workspaces_Get", kind="status", status=403))
    by_name = checks(report("syn-locked"))
    assert by_name["managementPlane"]["level"] == "error" and by_name["managementPlane"]["role"].startswith(
        "Reader on "
    )
    assert "see managementPlane" in by_name["dataExfiltrationProtection"]["skipped"]
    assert by_name["managedPrivateEndpoint:mpe-aml"]["level"] == "ok"
    # Exfiltration protection unknown: the linked service is judged by its endpoint alone.
    assert by_name["linkedService:AzureMLService1"]["level"] == "ok"


@pytest.mark.parametrize("settings", [{"GATEWAY_PRIVATE_NETWORKING": "true"}])
def test_with_private_networking_a_public_answer_for_the_dev_endpoint_is_an_error_naming_the_zone(
    context: AppContext,
) -> None:
    dns = checks(report("syn-approved"))["privateDns:dev"]
    # The emulator's endpoint is 127.0.0.1: not a private endpoint's address.
    assert dns["level"] == "error" and dns["facts"]["addresses"] == ["127.0.0.1"]
    assert "privatelink.dev.azuresynapse.net" in dns["action"]


@pytest.mark.parametrize("settings", [{"GATEWAY_PRIVATE_NETWORKING": "true"}])
def test_with_private_networking_a_private_answer_for_the_dev_endpoint_is_ok(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "system_resolver", lambda host: ["10.20.1.4"])
    dns = checks(report("syn-approved"))["privateDns:dev"]
    assert dns["level"] == "ok" and dns["facts"]["addresses"] == ["10.20.1.4"]


def test_without_private_networking_the_dns_check_is_skipped(context: AppContext) -> None:
    dns = checks(report("syn-approved"))["privateDns:dev"]
    assert dns["level"] == "ok" and "GATEWAY_PRIVATE_NETWORKING" in dns["skipped"]
