"""Private targets in the Bicep: private endpoints and DNS zones from the gateway's VNet to each listed
Synapse workspace (Dev) and Azure ML workspace (amlworkspace), approved by the deployment only within
its own subscription, and the zone the diagnostics name is the zone the Bicep links."""

from __future__ import annotations

import re

from shared.kinds.synapse_network import DEV_ZONE
from tests.infra._support import INFRA, MODULES, body, parse_bicep

PRIVATE_ENDPOINTS = MODULES / "private-endpoints.bicep"


def test_each_azure_ml_workspace_gets_an_amlworkspace_endpoint_in_both_of_its_zones() -> None:
    module = parse_bicep(PRIVATE_ENDPOINTS)
    assert {"machineLearningZones", "machineLearningEndpoints"} <= set(module["modules"])
    text = PRIVATE_ENDPOINTS.read_text(encoding="utf-8")
    zones = re.search(r"var machineLearningZoneNames = \[(.*?)\]", text, re.S)
    assert zones and re.findall(r"'([^']+)'", zones.group(1)) == [
        "privatelink.api.azureml.ms",
        "privatelink.notebooks.azure.net",
    ]
    endpoints = text[text.index("module machineLearningEndpoints") :]
    assert endpoints.count("'amlworkspace'") == 2  # automatic and manual connection alike
    assert "machineLearningZones[0].outputs.resourceId" in endpoints
    assert "machineLearningZones[1].outputs.resourceId" in endpoints


def test_the_deployment_approves_only_within_its_own_subscription() -> None:
    text = PRIVATE_ENDPOINTS.read_text(encoding="utf-8")
    for kind, ids in (
        ("dataFactory", "dataFactoryIds"),
        ("synapse", "synapseWorkspaceIds"),
        ("machineLearning", "machineLearningWorkspaceIds"),
    ):
        other_subscription = "split(id, '/')[2] != subscription().subscriptionId"
        rule = f"var {kind}Manual = [for id in {ids}: manualApproval || {other_subscription}]"
        assert rule in text, kind
        assert f"privateLinkServiceConnections: {kind}Manual[i] ? [] : [" in text, kind
        assert f"manualPrivateLinkServiceConnections: {kind}Manual[i] ? [" in text, kind
    assert "output approvals array = concat(dataFactoryApprovals, synapseApprovals, machineLearningApprovals)" in text


def test_main_passes_the_azure_ml_workspaces_and_tells_the_app_it_is_private() -> None:
    main = parse_bicep(INFRA / "main.bicep")
    params = body(main["modules"]["privateEndpoints"])["params"]
    assert params["machineLearningWorkspaceIds"] == "machineLearningWorkspaceIds"
    assert "machineLearningWorkspaces" in main["parameters"]
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "GATEWAY_PRIVATE_NETWORKING: enablePrivateNetworking ? 'true' : 'false'" in text
    assert "Microsoft.MachineLearningServices/workspaces/${target.workspaceName}" in text


def test_the_zone_diagnostics_name_is_the_zone_the_bicep_links() -> None:
    assert f"'{DEV_ZONE}'" in PRIVATE_ENDPOINTS.read_text(encoding="utf-8")
