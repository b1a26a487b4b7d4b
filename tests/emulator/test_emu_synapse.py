"""Synapse pipelines (azure-synapse-artifacts) and Workspaces_Get (azure-mgmt-synapse), unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.synapse import SynapseManagementClient
from azure.synapse.artifacts import ArtifactsClient
from azure.synapse.artifacts.models import RunFilterParameters, RunQueryFilter

from offline.emulator import Emulator

from .conftest import SYNAPSE, RawClient, window


def filters(emu: Emulator, *query: RunQueryFilter) -> RunFilterParameters:
    after, before = window(emu)
    return RunFilterParameters(last_updated_after=after, last_updated_before=before, filters=list(query))


def test_pipeline_run_lifecycle(artifacts: ArtifactsClient, emu: Emulator) -> None:
    run_id = artifacts.pipeline.create_pipeline_run("slow_ok", parameters={"table": "sales", "limit": 10}).run_id
    run = artifacts.pipeline_run.get_pipeline_run(run_id)
    assert run.status == "Queued" and run.parameters == {"table": "sales", "limit": "10"}
    emu.clock.advance(95)
    run = artifacts.pipeline_run.get_pipeline_run(run_id)
    assert run.status == "Succeeded" and run.duration_in_ms == 90_000
    found = artifacts.pipeline_run.query_pipeline_runs_by_workspace(
        filters(emu, RunQueryFilter(operand="PipelineName", operator="Equals", values=["slow_ok"]))
    )
    assert run_id in [r.run_id for r in found.value]


def test_failed_run_activity_details(artifacts: ArtifactsClient, emu: Emulator) -> None:
    run_id = artifacts.pipeline.create_pipeline_run("build_marts").run_id
    emu.clock.advance(10)
    run = artifacts.pipeline_run.get_pipeline_run(run_id)
    assert run.status == "Failed" and run.message.startswith(
        "Operation on target BuildSalesMart failed: AnalysisException"
    )
    activities = artifacts.pipeline_run.query_activity_runs("build_marts", run_id, filters(emu)).value
    failed = [a for a in activities if a.status == "Failed"]
    assert [a.activity_name for a in failed] == ["BuildSalesMart"]
    assert failed[0].error["errorCode"] == "6002" and failed[0].error["failureType"] == "UserError"
    assert failed[0].activity_type == "SynapseNotebook"


def test_recovery_and_cancel(artifacts: ArtifactsClient, emu: Emulator) -> None:
    first = artifacts.pipeline.create_pipeline_run("slow_fail").run_id
    emu.clock.advance(200)
    rerun = artifacts.pipeline.create_pipeline_run(
        "slow_fail", reference_pipeline_run_id=first, is_recovery=True, start_activity_name="Transform"
    ).run_id
    assert artifacts.pipeline_run.get_pipeline_run(rerun).run_group_id == first
    artifacts.pipeline_run.cancel_pipeline_run(rerun, is_recursive=True)
    assert artifacts.pipeline_run.get_pipeline_run(rerun).status == "Canceling"
    emu.clock.advance(2)
    assert artifacts.pipeline_run.get_pipeline_run(rerun).status == "Cancelled"
    with pytest.raises(HttpResponseError) as raised:
        artifacts.pipeline_run.cancel_pipeline_run(rerun)
    assert raised.value.status_code == 400


def test_raw_shapes_differ_from_adf_as_the_spec_says(raw: RawClient, workspace: dict[str, Any]) -> None:
    base = f"/synapse/{workspace['name']}"
    created = raw("POST", f"{base}/pipelines/daily_load_missing/createRun?api-version=2020-12-01", {}, auth=SYNAPSE)
    assert created.status == 404
    created = raw("POST", f"{base}/pipelines/refresh_lake/createRun?api-version=2020-12-01", {"p": [1]}, auth=SYNAPSE)
    assert created.status == 202 and set(created.body) == {"runId"}
    run = raw("GET", f"{base}/pipelineruns/{created.body['runId']}?api-version=2020-12-01", auth=SYNAPSE).body
    assert "runDimensions" not in run and run["parameters"] == {"p": "[1]"}
    assert (
        "x-ms-ratelimit-remaining-subscription-reads"
        not in raw("GET", f"{base}/pipelineruns/{run['runId']}?api-version=2020-12-01", auth=SYNAPSE).headers
    )
    unknown = raw("GET", "/synapse/nope-syn/pipelineruns/x?api-version=2020-12-01", auth=SYNAPSE)
    assert unknown.status == 404 and unknown.body["error"]["code"]


def test_workspace_get_gives_the_data_plane_endpoint(
    credential: ManagedIdentityCredential, info: dict[str, Any], workspace: dict[str, Any]
) -> None:
    client = SynapseManagementClient(
        credential, workspace["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
    )
    got = client.workspaces.get(workspace["resource_group"], workspace["name"])
    assert got.connectivity_endpoints["dev"] == workspace["endpoint"]
    assert got.connectivity_endpoints["web"].startswith("https://web.azuresynapse.net?workspace=%2fsubscriptions%2f")
    assert got.provisioning_state == "Succeeded" and got.public_network_access == "Enabled"
    assert got.managed_virtual_network == "default"
    assert got.identity.type == "SystemAssigned,UserAssigned"
    with pytest.raises(HttpResponseError) as raised:
        client.workspaces.get(workspace["resource_group"], "missing-syn")
    assert raised.value.status_code == 404


def test_workspace_get_spec_version(raw: RawClient, workspace: dict[str, Any]) -> None:
    path = (
        f"/subscriptions/{workspace['subscription_id']}/resourceGroups/{workspace['resource_group']}"
        f"/providers/Microsoft.Synapse/workspaces/{workspace['name']}"
    )
    reply = raw("GET", f"{path}?api-version=2021-06-01")
    assert reply.status == 200 and reply.body["type"] == "Microsoft.Synapse/workspaces"
    assert reply.headers["x-ms-ratelimit-remaining-subscription-reads"].isdigit()
    assert raw("GET", f"{path}?api-version=2021-06-01", auth=SYNAPSE).status == 401
