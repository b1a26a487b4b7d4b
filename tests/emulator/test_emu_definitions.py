"""Pipeline definitions: declared parameters in the config, Pipelines_Get (azure-mgmt-datafactory) and
Pipeline_GetPipeline (azure-synapse-artifacts), and what runs keep of undeclared parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory.models import RunFilterParameters as AdfFilters
from azure.mgmt.datafactory.models import RunQueryFilter as AdfFilter
from azure.synapse.artifacts import ArtifactsClient
from azure.synapse.artifacts.models import RunFilterParameters, RunQueryFilter

from offline.emulator import Emulator, EmulatorConfig, Fault, PipelineSpec

from .conftest import SYNAPSE, RawClient, factory_path, window

TYPED = {"day": "String", "tables": "Array", "limit": "Int", "password": "SecureString"}


def test_adf_pipeline_get_round_trips_declared_parameters(
    adf: DataFactoryManagementClient, factory: dict[str, Any]
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    got = adf.pipelines.get(rg, name, "TYPED")  # pipeline names are case-insensitive, like createRun's
    assert got.name == "typed" and got.type == "Microsoft.DataFactory/factories/pipelines"
    assert got.id == (
        f"/subscriptions/{factory['subscription_id']}/resourceGroups/{rg}"
        f"/providers/Microsoft.DataFactory/factories/{name}/pipelines/typed"
    )
    assert {p: spec.type for p, spec in got.properties.parameters.items()} == TYPED
    activities = got.properties.activities
    assert [(a.name, a.type) for a in activities] == [
        ("LookupWatermark", "Lookup"),
        ("RunChild", "ExecutePipeline"),
        ("Settle", "Wait"),
    ]
    assert activities[0].depends_on == []
    assert activities[2].depends_on[0].activity == "RunChild"
    assert activities[2].depends_on[0].dependency_conditions == ["Succeeded"]
    # azure-mgmt-datafactory 10 leaves grandchild activity types undeserialized; the JSON is still there.
    assert activities[1]["typeProperties"]["pipeline"] == {"referenceName": "slow_ok", "type": "PipelineReference"}
    assert activities[0]["typeProperties"]["dataset"]["type"] == "DatasetReference"
    assert got.etag and adf.pipelines.get(rg, name, "typed").etag == got.etag
    unchanged = adf.pipelines.get(rg, name, "typed", etag=got.etag, match_condition=MatchConditions.IfModified)
    assert unchanged is None
    legacy = adf.pipelines.get(rg, name, "copy_sales")
    assert legacy.properties.parameters == {} and legacy.etag != got.etag
    assert [a.type for a in legacy.properties.activities] == ["GetMetadata", "Copy", "Copy"]
    assert legacy.properties.activities[1]["typeProperties"] == {
        "source": {"type": "BlobSource"},
        "sink": {"type": "BlobSink"},
    }


def test_synapse_get_pipeline_round_trips_declared_parameters(
    artifacts: ArtifactsClient, workspace: dict[str, Any]
) -> None:
    got = artifacts.pipeline.get_pipeline("typed")
    assert got.name == "typed" and got.type == "Microsoft.Synapse/workspaces/pipelines"
    assert got.id == (
        f"/subscriptions/{workspace['subscription_id']}/resourceGroups/{workspace['resource_group']}"
        f"/providers/Microsoft.Synapse/workspaces/{workspace['name']}/pipelines/typed"
    )
    assert {p: spec.type for p, spec in got.parameters.items()} == TYPED
    child, wait = got.activities[1], got.activities[2]
    assert type(child).__name__ == "ExecutePipelineActivity" and child.pipeline.reference_name == "slow_ok"
    assert child.wait_on_completion is True and child.depends_on[0].activity == "LookupWatermark"
    assert type(wait).__name__ == "WaitActivity" and wait.wait_time_in_seconds == 20  # 60 s over 3 activities
    assert artifacts.pipeline.get_pipeline("typed", if_none_match=got.etag) is None
    assert artifacts.pipeline.get_pipeline("typed", if_none_match="*") is None
    notebooks = artifacts.pipeline.get_pipeline("build_marts")
    assert notebooks.parameters == {}
    assert [a.notebook.reference_name for a in notebooks.activities] == ["LoadDimensions", "BuildSalesMart"]
    assert notebooks.activities[0].notebook.type == "NotebookReference"


def test_unknown_pipeline_answers_like_create_run(
    adf: DataFactoryManagementClient,
    artifacts: ArtifactsClient,
    factory: dict[str, Any],
    workspace: dict[str, Any],
    raw: RawClient,
) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        adf.pipelines.get(factory["resource_group"], factory["name"], "no_such_pipeline")
    assert raised.value.error.code == "EntityNotFound"
    got = raw("GET", factory_path(factory, "/pipelines/no_such_pipeline"))
    created = raw("POST", factory_path(factory, "/pipelines/no_such_pipeline/createRun"), {})
    assert got.status == created.status == 404 and got.body == created.body
    with pytest.raises(HttpResponseError) as synapse_raised:
        artifacts.pipeline.get_pipeline("no_such_pipeline")
    assert synapse_raised.value.status_code == 404
    base = f"/synapse/{workspace['name']}/pipelines/no_such_pipeline"
    got = raw("GET", f"{base}?api-version=2020-12-01", auth=SYNAPSE)
    created = raw("POST", f"{base}/createRun?api-version=2020-12-01", {}, auth=SYNAPSE)
    assert got.status == created.status == 404 and got.body == created.body
    assert got.body["error"]["code"] == "PipelineNotFound"
    assert raw("GET", factory_path(factory, "/pipelines/a%3Fb")).status == 400  # the name rule, before lookup


def test_pipeline_gets_are_counted_and_faulted(
    adf: DataFactoryManagementClient, artifacts: ArtifactsClient, factory: dict[str, Any], emu: Emulator
) -> None:
    adf.pipelines.get(factory["resource_group"], factory["name"], "typed")  # tokens fetched outside the count
    artifacts.pipeline.get_pipeline("typed")
    emu.reset_counters()
    emu.faults.add(Fault(route="Pipelines_Get", kind="status", status=503, retry_after=0, count=1))
    emu.faults.add(Fault(route="Pipeline_GetPipeline", kind="status", status=429, retry_after=0, count=1))
    assert adf.pipelines.get(factory["resource_group"], factory["name"], "typed").name == "typed"
    assert artifacts.pipeline.get_pipeline("typed").name == "typed"
    assert emu.counters["Pipelines_Get"] == 2 and emu.counters["Pipeline_GetPipeline"] == 2
    emu.faults.add(Fault(route="Pipeline_GetPipeline", kind="status", status=400, code="Nope", count=1))
    with pytest.raises(HttpResponseError) as raised:
        artifacts.pipeline.get_pipeline("typed")
    assert raised.value.status_code == 400


def test_runs_keep_only_declared_parameters(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    given = {"day": "2024-06-01", "tables": ["a", "b"], "Day": "wrong case", "extra": 1}
    run_id = adf.pipelines.create_run(rg, name, "typed", parameters=given).run_id
    declared = {"day": "2024-06-01", "tables": '["a","b"]'}
    assert adf.pipeline_runs.get(rg, name, run_id).parameters == declared
    after, before = window(emu)
    query = AdfFilters(
        last_updated_after=after,
        last_updated_before=before,
        filters=[AdfFilter(operand="PipelineName", operator="Equals", values_property=["typed"])],
    )
    found = {r.run_id: r.parameters for r in adf.pipeline_runs.query_by_factory(rg, name, query).value}
    assert found[run_id] == declared
    emu.clock.advance(200)
    rerun = adf.pipelines.create_run(rg, name, "typed", reference_pipeline_run_id=run_id).run_id
    assert adf.pipeline_runs.get(rg, name, rerun).parameters == declared
    nothing = adf.pipelines.create_run(rg, name, "declares_nothing", parameters=given).run_id
    assert adf.pipeline_runs.get(rg, name, nothing).parameters == {}
    legacy = adf.pipelines.create_run(rg, name, "slow_ok", parameters=given).run_id
    assert set(adf.pipeline_runs.get(rg, name, legacy).parameters) == set(given)


def test_synapse_runs_keep_only_declared_parameters(artifacts: ArtifactsClient, emu: Emulator) -> None:
    run_id = artifacts.pipeline.create_pipeline_run("typed", parameters={"limit": 5, "undeclared": "x"}).run_id
    assert artifacts.pipeline_run.get_pipeline_run(run_id).parameters == {"limit": "5"}
    after, before = window(emu)
    query = RunFilterParameters(
        last_updated_after=after,
        last_updated_before=before,
        filters=[RunQueryFilter(operand="PipelineName", operator="Equals", values=["typed"])],
    )
    found = artifacts.pipeline_run.query_pipeline_runs_by_workspace(query).value
    assert {r.run_id: r.parameters for r in found}[run_id] == {"limit": "5"}


def test_config_declares_parameters_in_json() -> None:
    data = {
        "factories": [
            {
                "name": "typed-adf",
                "pipelines": [
                    {"name": "p", "parameters": {"day": "String", "n": "Int"}},
                    {"name": "q", "parameters": None},
                    {"name": "r"},
                ],
            }
        ]
    }
    config = EmulatorConfig.from_dict(json.loads(json.dumps(data)))
    p, q, r = config.factories[0].pipelines
    assert p.parameters == {"day": "String", "n": "Int"} and q.parameters is None and r.parameters is None
    assert EmulatorConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["factories"][0]["pipelines"][0]["parameters"] == {"day": "String", "n": "Int"}
    assert p.run_parameters({"day": "d", "x": "1"}) == {"day": "d"}
    assert r.run_parameters({"day": "d", "x": "1"}) == {"day": "d", "x": "1"}
    with pytest.raises(ValueError, match="'day' has type 'string'"):
        PipelineSpec("bad", parameters={"day": "string"})
    with pytest.raises(ValueError, match="non-empty"):
        PipelineSpec("bad", parameters={" ": "String"})
    with pytest.raises(ValueError, match="at most 50"):
        PipelineSpec("bad", parameters={f"p{i}": "String" for i in range(51)})
    with pytest.raises(ValueError, match="map names to types"):
        EmulatorConfig.from_dict({"factories": [{"name": "typed-adf", "pipelines": [{"name": "p", "parameters": []}]}]})
