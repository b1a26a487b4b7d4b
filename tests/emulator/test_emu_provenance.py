"""Which create call made which run: ``createCorrelationId`` in the admin run listing, from the
``x-ms-correlation-request-id`` the create call sent, and never in what the Azure-facing APIs return."""

from __future__ import annotations

import http.client
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.synapse.artifacts import ArtifactsClient
from azure.synapse.spark import SparkClient
from azure.synapse.spark.models import SparkBatchJobOptions

from offline.emulator import Emulator, Fault

from .conftest import SYNAPSE, RawClient, factory_path, iso_window

CORRELATION = "x-ms-correlation-request-id"


def listed(emu: Emulator, key: str, value: Any) -> dict[str, Any]:
    [item] = [r for r in emu.runs() if r.get(key) == value]
    return item


def test_pipeline_runs_record_the_create_calls_correlation_id(
    adf: DataFactoryManagementClient, artifacts: ArtifactsClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    tagged = adf.pipelines.create_run(rg, name, "slow_fail", headers={CORRELATION: "gw-adf-1"}).run_id
    untagged = adf.pipelines.create_run(rg, name, "slow_fail").run_id
    synapse = artifacts.pipeline.create_pipeline_run("slow_ok", headers={CORRELATION: "gw-syn-1"}).run_id
    assert listed(emu, "runId", tagged)["createCorrelationId"] == "gw-adf-1"
    assert listed(emu, "runId", untagged)["createCorrelationId"] is None
    assert listed(emu, "runId", synapse)["createCorrelationId"] == "gw-syn-1"
    emu.clock.advance(200)
    rerun = adf.pipelines.create_run(
        rg, name, "slow_fail", reference_pipeline_run_id=tagged, is_recovery=True, headers={CORRELATION: "gw-adf-2"}
    ).run_id
    assert listed(emu, "runId", rerun)["createCorrelationId"] == "gw-adf-2"


def test_child_runs_have_no_create_call(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    parent = adf.pipelines.create_run(rg, name, "parent", headers={CORRELATION: "gw-parent"}).run_id
    emu.clock.advance(15)
    assert listed(emu, "runId", parent)["createCorrelationId"] == "gw-parent"
    assert listed(emu, "parentRunId", parent)["createCorrelationId"] is None


def test_only_the_correlation_header_counts(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    path = factory_path(factory, "/pipelines/daily_load/createRun")
    client_only = raw("POST", path, {}, headers={"x-ms-client-request-id": "cli-1"}).body["runId"]
    empty = raw("POST", path, {}, headers={CORRELATION: ""}).body["runId"]
    assert listed(emu, "runId", client_only)["createCorrelationId"] is None
    assert listed(emu, "runId", empty)["createCorrelationId"] is None


def test_azure_facing_answers_do_not_carry_it(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    created = raw("POST", factory_path(factory, "/pipelines/slow_ok/createRun"), {}, headers={CORRELATION: "gw-hidden"})
    run_id = created.body["runId"]
    replies = [
        created,
        raw("GET", factory_path(factory, f"/pipelineruns/{run_id}")),
        raw("POST", factory_path(factory, "/queryPipelineRuns"), iso_window(emu)),
        raw("POST", factory_path(factory, f"/pipelineruns/{run_id}/queryActivityruns"), iso_window(emu)),
    ]
    for reply in replies:
        assert reply.status == 200 and b"gw-hidden" not in reply.raw and b"createCorrelationId" not in reply.raw
    admin = raw("GET", "/_emulator/runs", auth=None).body["value"]
    assert all("createCorrelationId" in item for item in admin)
    assert [r["createCorrelationId"] for r in admin if r.get("runId") == run_id] == ["gw-hidden"]


def test_a_create_whose_answer_was_lost_still_names_its_caller(
    raw: RawClient, factory: dict[str, Any], emu: Emulator
) -> None:
    before = {r.get("runId") for r in emu.runs()}
    emu.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw("POST", factory_path(factory, "/pipelines/ingest_orders/createRun"), {}, headers={CORRELATION: "gw-lost"})
    [created] = [r for r in emu.runs() if r.get("runId") not in before]
    assert (created["pipeline"], created["createCorrelationId"]) == ("ingest_orders", "gw-lost")


def test_spark_batches_record_it_too(
    credential: ManagedIdentityCredential, info: dict[str, Any], raw: RawClient, emu: Emulator
) -> None:
    workspace = info["workspaces"][0]
    client = SparkClient(credential, workspace["endpoint"], "small", connection_verify=info["ca_bundle"])
    options = SparkBatchJobOptions(name="provenance", file="abfss://jobs/p.py")
    tagged = client.spark_batch.create_spark_batch_job(options, headers={CORRELATION: "gw-spark-1"}).id
    untagged = client.spark_batch.create_spark_batch_job(options).id
    batches = {(b["pool"], b["batchId"]): b for b in emu.runs() if b["service"] == "spark"}
    assert batches[("small", tagged)]["createCorrelationId"] == "gw-spark-1"
    assert batches[("small", untagged)]["createCorrelationId"] is None
    path = f"/synapse/{workspace['name']}/livyApi/versions/2019-11-01-preview/sparkPools/small/batches"
    for reply in (raw("GET", f"{path}/{tagged}?detailed=true", auth=SYNAPSE), raw("GET", path, auth=SYNAPSE)):
        assert reply.status == 200 and b"gw-spark-1" not in reply.raw
