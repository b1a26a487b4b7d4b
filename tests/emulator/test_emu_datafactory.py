"""ADF through the official azure-mgmt-datafactory client, unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory.models import RunFilterParameters, RunQueryFilter, RunQueryOrderBy

from offline.emulator import Emulator

from .conftest import RawClient, factory_path, window


def filters(emu: Emulator, *query: RunQueryFilter, **kwargs: Any) -> RunFilterParameters:
    after, before = window(emu)
    return RunFilterParameters(last_updated_after=after, last_updated_before=before, filters=list(query), **kwargs)


def test_run_moves_only_with_the_clock(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    created = adf.pipelines.create_run(rg, name, "slow_ok", parameters={"day": "2024-06-01", "ids": [1, 2], "n": 5})
    run = adf.pipeline_runs.get(rg, name, created.run_id)
    assert (run.status, run.run_end, run.duration_in_ms) == ("Queued", None, None)
    assert run.parameters == {"day": "2024-06-01", "ids": "[1,2]", "n": "5"}
    assert run.run_group_id == run.run_id and run.is_latest is True
    assert run.invoked_by.name == "Manual" and run.invoked_by.invoked_by_type == "Manual"
    assert run.run_dimensions == {} and run.message == ""
    emu.clock.advance(31)
    run = adf.pipeline_runs.get(rg, name, created.run_id)
    assert run.status == "InProgress" and run.last_updated > run.run_start
    emu.clock.advance(60)
    run = adf.pipeline_runs.get(rg, name, created.run_id)
    assert run.status == "Succeeded" and run.message == ""
    assert run.run_end is not None and run.duration_in_ms == 90_000
    assert run.last_updated == run.run_end


def test_failed_run_reports_the_failing_activity(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    run_id = adf.pipelines.create_run(rg, name, "copy_sales").run_id
    emu.clock.advance(10)
    run = adf.pipeline_runs.get(rg, name, run_id)
    assert run.status == "Failed"
    assert run.message.startswith("Operation on target CopySales failed: ErrorCode=SqlFailedToConnect")
    activities = adf.activity_runs.query_by_pipeline_run(rg, name, run_id, filters(emu)).value
    assert [(a.activity_name, a.status) for a in activities] == [("CheckSource", "Succeeded"), ("CopySales", "Failed")]
    failed = activities[1]
    assert failed.activity_type == "Copy"
    assert failed.error["errorCode"] == "2200" and failed.error["failureType"] == "UserError"
    assert failed.error["target"] == "CopySales" and "sales-db.database.windows.net" in failed.error["message"]
    assert activities[0].error == {"errorCode": "", "message": "", "failureType": "", "target": "CheckSource"}
    assert failed.pipeline_run_id == run_id and failed.activity_run_start <= failed.activity_run_end


def test_recovery_rerun_succeeds_from_the_failed_activity(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    first = adf.pipelines.create_run(rg, name, "slow_fail", parameters={"day": "d1"}).run_id
    emu.clock.advance(200)
    assert adf.pipeline_runs.get(rg, name, first).status == "Failed"
    rerun = adf.pipelines.create_run(
        rg,
        name,
        "slow_fail",
        reference_pipeline_run_id=first,
        is_recovery=True,
        start_from_failure=True,
        parameters={"ignored": "yes"},
    ).run_id
    emu.clock.advance(200)
    new, old = adf.pipeline_runs.get(rg, name, rerun), adf.pipeline_runs.get(rg, name, first)
    assert new.status == "Succeeded"
    assert new.run_group_id == old.run_group_id == first
    assert (new.is_latest, old.is_latest) == (True, False)
    assert new.parameters == {"day": "d1"}
    names = [a.activity_name for a in adf.activity_runs.query_by_pipeline_run(rg, name, rerun, filters(emu)).value]
    assert names == ["Transform", "Load"]
    latest = adf.pipeline_runs.query_by_factory(
        rg,
        name,
        filters(
            emu,
            RunQueryFilter(operand="RunGroupId", operator="Equals", values_property=[first]),
            RunQueryFilter(operand="LatestOnly", operator="Equals", values_property=["true"]),
        ),
    ).value
    assert [r.run_id for r in latest] == [rerun]
    from_load = adf.pipelines.create_run(
        rg, name, "slow_fail", reference_pipeline_run_id=first, is_recovery=True, start_activity_name="Load"
    ).run_id
    emu.clock.advance(200)
    assert [
        a.activity_name for a in adf.activity_runs.query_by_pipeline_run(rg, name, from_load, filters(emu)).value
    ] == ["Load"]


def test_unknown_reference_run_is_refused(adf: DataFactoryManagementClient, factory: dict[str, Any]) -> None:
    with pytest.raises(HttpResponseError) as raised:
        adf.pipelines.create_run(
            factory["resource_group"], factory["name"], "daily_load", reference_pipeline_run_id="nope"
        )
    error = raised.value.error
    assert raised.value.status_code == 400 and error is not None
    assert error.code == "ReferencedPipelineRunNotValid"
    assert error.message == "Referenced pipeline run id nope is not a valid run id."
    assert error.target == "pipeline/daily_load/"


def test_query_filters_order_and_pages(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    created = [adf.pipelines.create_run(rg, name, "paged", parameters={"i": i}).run_id for i in range(7)]
    emu.set_page_size(2)
    query = filters(
        emu,
        RunQueryFilter(operand="PipelineName", operator="In", values_property=["paged"]),
        RunQueryFilter(operand="Status", operator="NotIn", values_property=["Succeeded", "Failed"]),
        order_by=[RunQueryOrderBy(order_by="RunStart", order="ASC")],
    )
    seen: list[str] = []
    pages = 0
    while True:
        page = adf.pipeline_runs.query_by_factory(rg, name, query)
        pages += 1
        seen += [r.run_id for r in page.value]
        assert len(page.value) <= 2
        if not page.continuation_token:
            break
        query.continuation_token = page.continuation_token
    assert pages == 4 and seen == created
    emu.set_page_size(100)
    cancelled = adf.pipeline_runs.query_by_factory(
        rg,
        name,
        filters(emu, RunQueryFilter(operand="PipelineName", operator="Equals", values_property=["copy_sales"])),
    )
    assert all(r.pipeline_name == "copy_sales" for r in cancelled.value)


def test_query_window_is_inclusive_exclusive(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    run_id = raw("POST", factory_path(factory, "/pipelines/paged/createRun"), {}).body["runId"]
    updated = raw("GET", factory_path(factory, f"/pipelineruns/{run_id}")).body["lastUpdated"]
    mine = [{"operand": "PipelineName", "operator": "Equals", "values": ["paged"]}]
    inside = raw(
        "POST",
        factory_path(factory, "/queryPipelineRuns"),
        {"lastUpdatedAfter": updated, "lastUpdatedBefore": "2999-01-01T00:00:00Z", "filters": mine},
    ).body
    outside = raw(
        "POST",
        factory_path(factory, "/queryPipelineRuns"),
        {"lastUpdatedAfter": "2000-01-01T00:00:00Z", "lastUpdatedBefore": updated, "filters": mine},
    ).body
    assert run_id in [r["runId"] for r in inside["value"]]
    assert run_id not in [r["runId"] for r in outside["value"]]
    assert inside["continuationToken"] is None


def test_cancel_then_cancelled_and_recursive(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    parent = adf.pipelines.create_run(rg, name, "parent").run_id
    emu.clock.advance(15)  # the ExecutePipeline activity has started its child
    children = [r for r in emu.runs() if r.get("parentRunId") == parent]
    assert len(children) == 1 and children[0]["pipeline"] == "slow_ok"
    child = adf.pipeline_runs.get(rg, name, children[0]["runId"])
    assert child.invoked_by.invoked_by_type == "PipelineActivity"
    adf.pipeline_runs.cancel(rg, name, parent, is_recursive=True)
    assert adf.pipeline_runs.get(rg, name, parent).status == "Canceling"
    emu.clock.advance(1.5)
    assert adf.pipeline_runs.get(rg, name, parent).status == "Cancelled"
    assert adf.pipeline_runs.get(rg, name, child.run_id).status == "Cancelled"
    with pytest.raises(HttpResponseError) as raised:
        adf.pipeline_runs.cancel(rg, name, parent)
    assert raised.value.status_code == 400 and raised.value.error.code == "PipelineRunNotRunning"


def test_non_recursive_cancel_leaves_children_running(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    parent = adf.pipelines.create_run(rg, name, "parent").run_id
    emu.clock.advance(15)
    child = next(r["runId"] for r in emu.runs() if r.get("parentRunId") == parent)
    adf.pipeline_runs.cancel(rg, name, parent)
    emu.clock.advance(2)
    assert adf.pipeline_runs.get(rg, name, child).status in ("Queued", "InProgress")


def test_cancel_while_queued_has_no_end(
    adf: DataFactoryManagementClient, factory: dict[str, Any], emu: Emulator
) -> None:
    rg, name = factory["resource_group"], factory["name"]
    run_id = adf.pipelines.create_run(rg, name, "slow_ok").run_id
    adf.pipeline_runs.cancel(rg, name, run_id)
    emu.clock.advance(5)
    run = adf.pipeline_runs.get(rg, name, run_id)
    assert (run.status, run.run_end, run.duration_in_ms) == ("Cancelled", None, None)


def test_factory_get_and_etag(adf: DataFactoryManagementClient, factory: dict[str, Any], info: dict[str, Any]) -> None:
    got = adf.factories.get(factory["resource_group"], factory["name"])
    assert got.type == "Microsoft.DataFactory/factories" and got.location == factory["location"]
    assert got.id.endswith(
        f"/resourceGroups/{factory['resource_group']}/providers/Microsoft.DataFactory/factories/contoso-adf"
    )
    assert got.provisioning_state == "Succeeded" and got.version == "2018-06-01"
    assert got.identity.tenant_id == info["tenant_id"] and got.e_tag.startswith('"')
    unchanged = adf.factories.get(
        factory["resource_group"], factory["name"], etag=got.e_tag, match_condition=MatchConditions.IfModified
    )
    assert unchanged is None


def test_not_found_wording(adf: DataFactoryManagementClient, factory: dict[str, Any]) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        adf.factories.get(factory["resource_group"], "missing-adf")
    assert raised.value.error.code == "ResourceNotFound"
    assert raised.value.error.message.startswith(
        "The Resource 'Microsoft.DataFactory/factories/missing-adf' under resource group 'rg-data' was not found."
    )
    with pytest.raises(ResourceNotFoundError) as raised:
        adf.factories.get("rg-missing", factory["name"])
    assert raised.value.error.code == "ResourceGroupNotFound"
    assert raised.value.error.message == "Resource group 'rg-missing' could not be found."
    with pytest.raises(ResourceNotFoundError):
        adf.pipelines.create_run(factory["resource_group"], factory["name"], "no_such_pipeline")
    with pytest.raises(ResourceNotFoundError):
        adf.pipeline_runs.get(factory["resource_group"], factory["name"], "00000000-0000-0000-0000-000000000000")


def test_runs_are_scoped_to_their_factory(adf: DataFactoryManagementClient, factory: dict[str, Any]) -> None:
    run_id = adf.pipelines.create_run(factory["resource_group"], factory["name"], "daily_load").run_id
    with pytest.raises(ResourceNotFoundError):
        adf.pipeline_runs.get("rg-other", "other-adf", run_id)
