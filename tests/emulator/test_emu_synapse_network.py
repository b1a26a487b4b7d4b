"""Synapse managed private endpoints (azure-synapse-managedprivateendpoints) and linked services
(azure-synapse-artifacts), unchanged, against the emulator; and the same endpoints as the Azure ML
workspace sees them (its private endpoint connections)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.synapse import SynapseManagementClient
from azure.synapse.artifacts import ArtifactsClient
from azure.synapse.artifacts.models import AzureMLServiceLinkedService
from azure.synapse.managedprivateendpoints import VnetClient

from offline.emulator import Emulator, EmulatorConfig
from offline.emulator.config import (
    SAMPLE_ML_WORKSPACE,
    SAMPLE_ML_WORKSPACE_ID,
    SAMPLE_WORKSPACE,
    LinkedServiceSpec,
    ManagedPrivateEndpointSpec,
    PrivateEndpointConnectionSpec,
    WorkspaceSpec,
)

from .conftest import SYNAPSE, RawClient


@pytest.fixture
def vnet(credential: ManagedIdentityCredential, info: dict[str, Any], workspace: dict[str, Any]) -> VnetClient:
    """azure-synapse-managedprivateendpoints on the sample workspace's endpoint, as documented."""
    return VnetClient(credential, workspace["endpoint"], connection_verify=info["ca_bundle"])


def test_the_sdk_lists_and_gets_managed_private_endpoints_with_their_approval(vnet: VnetClient) -> None:
    endpoints = {e.name: e for e in vnet.managed_private_endpoints.list(managed_virtual_network_name="default")}
    aml = endpoints["mpe-contoso-aml"].properties
    assert aml.private_link_resource_id == SAMPLE_ML_WORKSPACE_ID and aml.group_id == "amlworkspace"
    assert aml.connection_state.status == "Pending" and aml.provisioning_state == "Succeeded"
    assert aml.is_reserved is False
    reserved = endpoints[f"synapse-ws-sql--{SAMPLE_WORKSPACE.name}"].properties
    assert reserved.is_reserved is True and reserved.connection_state.status == "Approved"
    one = vnet.managed_private_endpoints.get("mpe-contoso-aml", managed_virtual_network_name="default")
    assert one.properties.connection_state.status == "Pending"
    assert one.type == "Microsoft.Synapse/workspaces/managedVirtualNetworks/managedPrivateEndpoints"


def test_unknown_endpoints_and_networks_are_404s_the_sdk_raises(vnet: VnetClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        vnet.managed_private_endpoints.get("nope")
    with pytest.raises(ResourceNotFoundError):
        list(vnet.managed_private_endpoints.list(managed_virtual_network_name="other"))


def test_the_sdk_follows_next_links_across_pages(vnet: VnetClient, emu: Emulator) -> None:
    emu.set_page_size(1)
    names = [e.name for e in vnet.managed_private_endpoints.list(managed_virtual_network_name="default")]
    assert len(names) == 3 and len(set(names)) == 3


def test_the_sdk_reads_an_azure_ml_linked_service(artifacts: ArtifactsClient, emu: Emulator) -> None:
    emu.set_page_size(1)
    listed = list(artifacts.linked_service.get_linked_services_by_workspace())
    assert [ls.name for ls in listed] == ["AzureMLService1"]
    service = artifacts.linked_service.get_linked_service("AzureMLService1")
    assert isinstance(service.properties, AzureMLServiceLinkedService)
    assert service.properties.ml_workspace_name == "contoso-aml"
    assert service.properties.resource_group_name == "rg-ml"
    assert (
        service.etag
        and artifacts.linked_service.get_linked_service("AzureMLService1", if_none_match=service.etag) is None
    )
    with pytest.raises(ResourceNotFoundError):
        artifacts.linked_service.get_linked_service("Missing")


def test_the_workspace_tells_its_managed_network_and_exfiltration_setting(
    credential: ManagedIdentityCredential, info: dict[str, Any], workspace: dict[str, Any]
) -> None:
    client = SynapseManagementClient(
        credential, workspace["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
    )
    found = client.workspaces.get(workspace["resource_group"], workspace["name"])
    assert found.managed_virtual_network == "default"
    assert found.managed_virtual_network_settings.prevent_data_exfiltration is False


def test_the_info_file_lists_each_workspaces_network(info: dict[str, Any]) -> None:
    sample = info["workspaces"][0]
    assert sample["exfiltration_protection"] is False and sample["managed_virtual_network"] is True
    assert {
        "name": "mpe-contoso-aml",
        "group_id": "amlworkspace",
        "private_link_resource_id": SAMPLE_ML_WORKSPACE_ID,
        "state": "Pending",
    } in sample["managed_private_endpoints"]
    assert sample["linked_services"] == [{"name": "AzureMLService1", "type": "AzureMLService"}]


def test_a_workspace_without_managed_network_or_with_exfiltration_protection(tls_dir: Any) -> None:
    isolated = WorkspaceSpec(
        "locked-syn",
        exfiltration_protection=True,
        managed_private_endpoints=(ManagedPrivateEndpointSpec("mpe-aml", SAMPLE_ML_WORKSPACE_ID, "amlworkspace"),),
        linked_services=(LinkedServiceSpec("AzureMLService1", "AzureMLService", {"mlWorkspaceName": "contoso-aml"}),),
    )
    public = WorkspaceSpec("open-syn", managed_virtual_network=False)
    with Emulator(EmulatorConfig(workspaces=(isolated, public)), tls_dir=tls_dir) as emu:
        raw = RawClient(emu)
        workspace = raw("GET", _arm(isolated)).body["properties"]
        assert workspace["managedVirtualNetworkSettings"]["preventDataExfiltration"] is True
        assert "managedVirtualNetwork" not in raw("GET", _arm(public)).body["properties"]
        missing = raw(
            "GET",
            "/synapse/open-syn/managedVirtualNetworks/default/managedPrivateEndpoints?api-version=2020-12-01",
            auth=SYNAPSE,
        )
        assert missing.status == 404 and missing.body["error"]["code"] == "ManagedVirtualNetworkNotFound"
        wrong_audience = raw("GET", "/synapse/locked-syn/linkedservices?api-version=2020-12-01")
        assert wrong_audience.status == 401
    with pytest.raises(ValueError, match="need a managed virtual network"):
        WorkspaceSpec("bad-syn", managed_virtual_network=False, exfiltration_protection=True)
    with pytest.raises(ValueError, match="state must be one of"):
        ManagedPrivateEndpointSpec("x", SAMPLE_ML_WORKSPACE_ID, "amlworkspace", state="Maybe")


def test_the_azure_ml_workspace_lists_the_synapse_endpoint_as_a_connection_in_the_same_state(tls_dir: Any) -> None:
    aml = EmulatorConfig.from_dict(
        {
            "ml_workspaces": [
                {
                    "name": SAMPLE_ML_WORKSPACE.name,
                    "resource_group": SAMPLE_ML_WORKSPACE.resource_group,
                    "public_network_access": "Disabled",
                    "isolation_mode": "AllowOnlyApprovedOutbound",
                    "private_endpoint_connections": [{"name": "pe-gateway", "state": "Approved"}],
                }
            ]
        }
    ).ml_workspaces[0]
    assert aml.private_endpoint_connections == (PrivateEndpointConnectionSpec("pe-gateway"),)
    with Emulator(EmulatorConfig(workspaces=(SAMPLE_WORKSPACE,), ml_workspaces=(aml,)), tls_dir=tls_dir) as emu:
        raw = RawClient(emu)
        path = SAMPLE_ML_WORKSPACE_ID + "/privateEndpointConnections?api-version=2025-09-01"
        connections = {c["name"]: c["properties"] for c in raw("GET", path).body["value"]}
        workspace = raw("GET", SAMPLE_ML_WORKSPACE_ID + "?api-version=2025-09-01").body["properties"]
    state = {name: c["privateLinkServiceConnectionState"]["status"] for name, c in connections.items()}
    assert state == {"pe-gateway": "Approved", "contoso-syn.mpe-contoso-aml": "Pending"}
    assert workspace["publicNetworkAccess"] == "Disabled" and workspace["privateLinkCount"] == 2
    assert workspace["managedNetwork"]["isolationMode"] == "AllowOnlyApprovedOutbound"


def _arm(workspace: WorkspaceSpec) -> str:
    return (
        f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
        f"/providers/Microsoft.Synapse/workspaces/{workspace.name}?api-version=2021-06-01"
    )
