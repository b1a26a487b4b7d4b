"""The Fabric kind without a server: its catalog entry (errors name the field), its settings, how a run
answer's Location names the job instance, how job instances become our statuses, and which instances
may be a lost start's. Answers are the spec's examples (fabric-platform-v1.json, dataPipeline-v1.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.config.catalog import parse_catalog
from shared.config.settings import Settings
from shared.errors import ConfigurationError, OutcomeUnknown, UpstreamForbidden
from shared.kinds.base import Match
from shared.kinds.fabric import DEDUPED_MESSAGE, FabricSource, FabricTarget, observed
from shared.kinds.fabric_client import FabricClient, job_instance_id, parse_job_instance
from shared.runs.model import Run, RunStatus
from tests.unit.test_upstream import ScriptedSession, client, response

WORKSPACE = "4b218778-e7a5-4d73-8187-f10824047715"
ITEM = "431e8d7b-4a95-4c02-8ccd-6faef5ba1bd7"
ENDPOINT = "https://api.fabric.microsoft.com/v1"


def fabric(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "bi",
        "kind": "fabric",
        "workspaceId": WORKSPACE.upper(),
        "workspaceName": "Contoso BI",
        "pipelines": ["load_sales", {"match": "refresh", "itemId": ITEM, "products": ["erp"]}, "nightly_*"],
        **overrides,
    }


def parse(target: dict[str, Any]) -> Any:
    return parse_catalog(json.dumps({"targets": [target]}), "App setting GATEWAY_CATALOG").targets[0]


def test_an_entry_names_pipelines_by_name_or_by_item_id() -> None:
    target = parse(fabric())
    assert isinstance(target, FabricTarget)
    assert target.workspace_id == WORKSPACE  # GUIDs compare as Fabric writes them, lower case
    assert [(rule.match, rule.item_id) for rule in target.pipelines] == [
        ("load_sales", None),
        ("refresh", ITEM),
        ("nightly_*", None),
    ]
    assert target.location == "Fabric workspace Contoso BI" and target.resource_id is None
    assert target.described() == {"workspaceName": "Contoso BI"}


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"workspaceId": "contoso-bi"}, "targets[0].workspaceId", "Fabric id 'contoso-bi' is invalid: a GUID"),
        ({"workspaceName": "bi\u202e"}, "targets[0].workspaceName", "printable"),
        ({"pipelines": [{"match": "load", "itemId": "load"}]}, "targets[0].pipelines[0].itemId", "a GUID"),
        ({"pipelines": [{"match": "load_*", "itemId": ITEM}]}, "targets[0].pipelines[0]", "not a glob"),
        (
            {"pipelines": [{"match": "a", "itemId": ITEM}, {"match": "b", "itemId": ITEM}]},
            "targets[0].pipelines",
            "each itemId may be listed once",
        ),
        ({"pipelines": ["load/../x"]}, "targets[0].pipelines", "Pipeline name"),
        ({"workspace": WORKSPACE}, "targets[0].workspace", "Extra inputs"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field(change: dict[str, Any], field: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse(fabric(**change))
    assert f"{field}: " in refused.value.detail and why in refused.value.detail


def test_an_entry_without_a_workspace_id_is_refused() -> None:
    target = fabric()
    del target["workspaceId"]
    with pytest.raises(ConfigurationError, match=r"targets\[0\]\.workspaceId: Field required"):
        parse(target)


def test_fabric_settings_default_to_the_public_cloud_and_refuse_plain_http() -> None:
    settings = Settings({})
    assert settings.fabric_endpoint == ENDPOINT
    assert settings.fabric_scope == "https://api.fabric.microsoft.com/.default"
    assert settings.fabric_portal_url == "https://app.fabric.microsoft.com"
    with pytest.raises(ConfigurationError, match="GATEWAY_FABRIC_ENDPOINT"):
        _ = Settings({"GATEWAY_FABRIC_ENDPOINT": "http://api.fabric.microsoft.com/v1"}).fabric_endpoint


def test_the_job_instance_comes_from_location_and_only_from_a_job_instance_url() -> None:
    # RunOnDemandItemJob.json, and RunOnDemandItemJob2.json (the older form, pointing at the list)
    named = f"{ENDPOINT}/workspaces/{WORKSPACE}/items/{ITEM}/jobs/instances/f2d65699-dd22-4889-980c-15226deb0e1b"
    assert job_instance_id(named, ITEM) == "f2d65699-dd22-4889-980c-15226deb0e1b"
    assert (
        job_instance_id(f"{ENDPOINT}/workspaces/{WORKSPACE}/items/{ITEM}/jobs/instances?jobType=Execute", ITEM) is None
    )
    other_item = named.replace(ITEM, "dddddddd-9999-0000-1111-eeeeeeeeeeee")
    assert job_instance_id(other_item, ITEM) is None
    assert job_instance_id(None, ITEM) is None


def fabric_client(session: ScriptedSession) -> FabricClient:
    upstream, _ = client(session)
    return FabricClient(
        upstream, endpoint=ENDPOINT, workspace_id=WORKSPACE, workspace="Contoso BI", scope="s", target="bi"
    )


def test_a_run_accepted_without_naming_its_job_instance_is_reconciled_not_refused() -> None:
    older_form = f"{ENDPOINT}/workspaces/{WORKSPACE}/items/{ITEM}/jobs/instances?jobType=Pipeline"
    session = ScriptedSession(response(202, None, {"Location": older_form, "Retry-After": "60"}))
    with pytest.raises(OutcomeUnknown, match="without naming its job instance"):
        fabric_client(session).run_on_demand_item_job(ITEM, {"day": "2026-11-21"})
    assert json.loads(session.calls[0]["data"]) == {"executionData": {"parameters": {"day": "2026-11-21"}}}
    assert session.calls[0]["url"].endswith(f"/workspaces/{WORKSPACE}/items/{ITEM}/jobs/Pipeline/instances")
    assert session.calls[0]["params"] is None  # no api-version: Fabric's is in the path


def test_a_refusal_keeps_fabrics_error_code_and_names_the_workspace_role() -> None:
    refused = {"requestId": "9c1b", "errorCode": "InsufficientPrivileges", "message": "The caller does not have..."}
    session = ScriptedSession(response(403, refused, {"RequestId": "9c1b", "x-ms-request-id": ""}))
    with pytest.raises(UpstreamForbidden) as caught:
        fabric_client(session).get_item(ITEM)
    error = caught.value
    assert (error.upstream_code, error.request_id) == ("InsufficientPrivileges", "9c1b")
    assert "the Viewer role (or higher) on Fabric workspace Contoso BI" in error.detail


def instance(**changes: Any) -> dict[str, Any]:
    """GetItemJobInstance.json's instance."""
    return {
        "id": "f2d65699-dd22-4889-980c-15226deb0e1b",
        "itemId": ITEM,
        "jobType": "Pipeline",
        "invokeType": "Manual",
        "status": "Completed",
        "rootActivityId": "8c2ee553-53a4-7edb-1042-0d8189a9e0ca",
        "startTimeUtc": "2023-04-22T06:35:00.7812154",
        "endTimeUtc": "2023-04-22T06:35:00.8033333",
        "failureReason": None,
        **changes,
    }


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("NotStarted", RunStatus.QUEUED),
        ("InProgress", RunStatus.IN_PROGRESS),
        ("Completed", RunStatus.SUCCEEDED),
        ("Failed", RunStatus.FAILED),
        ("Cancelled", RunStatus.CANCELLED),
        ("Deduped", RunStatus.CANCELLED),
        ("Paused", RunStatus.IN_PROGRESS),  # "additional statuses may be added over time"
    ],
)
def test_job_statuses_map_onto_ours_and_the_raw_status_is_kept(status: str, ours: str) -> None:
    seen = observed(parse_job_instance(instance(status=status), "get"), "load_sales")
    assert (seen.status, seen.upstream_status) == (ours, status)
    assert (seen.message == DEDUPED_MESSAGE) == (status == "Deduped")
    assert (seen.run_end is not None) == (ours in RunStatus.TERMINAL)


def test_a_failed_instance_carries_its_failure_reason_and_times_in_utc() -> None:
    reason = {"requestId": "r", "errorCode": "RequestExecutionFailed", "message": "Operation on target Load failed."}
    seen = observed(parse_job_instance(instance(status="Failed", failureReason=reason), "get"), "load_sales")
    assert seen.message == "RequestExecutionFailed: Operation on target Load failed."
    assert seen.run_start == datetime(2023, 4, 22, 6, 35, 0, 781215, tzinfo=UTC)
    assert seen.duration_ms == 22


def run_of(created: datetime) -> Run:
    return Run(
        id="bi.8203924436125700000000",
        target="bi",
        kind="fabric",
        pipeline="load_sales",
        status=RunStatus.SUBMITTING,
        created_at=created,
        updated_at=created,
        options={"itemId": ITEM},
    )


def test_only_a_manual_pipeline_run_of_the_item_may_be_a_lost_starts_and_never_provably() -> None:
    """ListExecuteJobInstances.json's two instances (a manual Execute run, a scheduled one) and one manual
    run of the Pipeline job type: the gateway starts pipelines as the last, so only it is possible."""
    execute = instance(id="aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", jobType="Execute")
    scheduled = instance(id="cccccccc-3333-4444-5555-dddddddddddd", jobType="Execute", invokeType="Scheduled")
    scheduled_pipeline = instance(id="eeeeeeee-3333-4444-5555-dddddddddddd", invokeType="Scheduled")
    manual = instance(id="bbbbbbbb-1111-2222-3333-cccccccccccc")
    page = {"value": [manual, scheduled_pipeline, scheduled, execute]}
    source = FabricSource(fabric_client(ScriptedSession(response(200, page))), ITEM)
    lost = run_of(datetime(2023, 4, 22, 6, 34, tzinfo=UTC))

    observation = source.observe([lost], datetime(2023, 4, 22, 6, 40, tzinfo=UTC))

    verdicts = {job_id: source.matches(lost, seen) for job_id, seen in observation.runs.items()}
    assert verdicts == {
        manual["id"]: Match.POSSIBLE,
        scheduled_pipeline["id"]: Match.NO,
        scheduled["id"]: Match.NO,
        execute["id"]: Match.NO,
    }


def test_paging_stops_at_a_page_older_than_the_oldest_live_run() -> None:
    token = "LDEsMTAwMDAwLDA%3D"  # ListItemJobInstancesWithContinuation.json's
    queued = instance(
        id="bbbbbbbb-1111-2222-3333-cccccccccccc", status="NotStarted", startTimeUtc=None, endTimeUtc=None
    )
    newest = {"value": [queued], "continuationToken": token}
    older = {"value": [instance()], "continuationToken": token}  # 2023: before the live run was created
    session = ScriptedSession(response(200, newest), response(200, older))
    source = FabricSource(fabric_client(session), ITEM)

    source.observe([run_of(datetime(2024, 6, 22, tzinfo=UTC))], datetime(2024, 6, 22, 0, 5, tzinfo=UTC))

    assert len(session.calls) == 2 and session.calls[1]["params"] == {"continuationToken": token}
