"""Microsoft Fabric through the official microsoft-fabric-api client (0.1.0b30, a beta), unchanged.

The SDK takes its host as ``base_url`` (it appends ``v1/``), so it reaches the emulator with
``base_url`` = ``info["fabric"]["api_endpoint"]`` minus ``v1``; tokens come from azure-identity's
ManagedIdentityCredential for ``https://api.fabric.microsoft.com/.default``. Plain calls check what
the SDK hides (headers, error bodies, the older ``?jobType=`` form, the activity-run query).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import ManagedIdentityCredential
from microsoft_fabric_api import FabricClient
from microsoft_fabric_api.generated.core.models import RunOnDemandItemJobRequest

from offline.emulator import (
    Emulator,
    EmulatorConfig,
    FabricActivitySpec,
    FabricFailureSpec,
    FabricPipelineSpec,
    Fault,
)
from offline.emulator.fabric_config import SAMPLE_FABRIC_WORKSPACE

from .conftest import ARM, SYNAPSE, RawClient, iso_window

FABRIC = "https://api.fabric.microsoft.com"
SLOW_ID = "0d9c8b7a-6f5e-4d3c-8b2a-1f0e9d8c7b6a"
FAILS_ID = "2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"
DEDUPE_ID = "3f4a5b6c-7d8e-4f9a-8b1c-2d3e4f5a6b7c"
QUICK_ID = "4a5b6c7d-8e9f-4a0b-9c2d-3e4f5a6b7c8d"


def fabric_config() -> EmulatorConfig:
    """The sample Fabric workspace plus slow pipelines, so no run moves unless a test moves the clock."""
    slow = {"queue_s": 30.0, "duration_s": 60.0}
    workspace = replace(
        SAMPLE_FABRIC_WORKSPACE,
        pipelines=(
            *SAMPLE_FABRIC_WORKSPACE.pipelines,
            FabricPipelineSpec(
                SLOW_ID,
                "slow_ok",
                activities=(FabricActivitySpec("Extract", "Copy"), FabricActivitySpec("Load", "Copy")),
                **slow,
            ),
            FabricPipelineSpec(
                FAILS_ID,
                "slow_fail",
                outcome="Failed",
                activities=(FabricActivitySpec("Extract", "Copy"), FabricActivitySpec("Transform", "TridentNotebook")),
                failure=FabricFailureSpec("Transform", "RequestExecutionFailed", "Notebook raised ValueError"),
                **slow,
            ),
            FabricPipelineSpec(DEDUPE_ID, "singleton", dedupe=True, **slow),
            FabricPipelineSpec(QUICK_ID, "quick", queue_s=0.0, duration_s=0.0),
        ),
    )
    return replace(EmulatorConfig.default(), fabric_workspaces=(workspace,))


@pytest.fixture(scope="module")
def emu(tls_dir: Path) -> Iterator[Emulator]:
    with Emulator(fabric_config(), tls_dir=tls_dir) as emulator:
        yield emulator


@pytest.fixture
def fabric(info: dict[str, Any], credential: ManagedIdentityCredential) -> FabricClient:
    """The SDK pointed at the emulator through its own ``base_url`` option."""
    base_url = info["fabric"]["api_endpoint"].removesuffix("v1")
    return FabricClient(credential, base_url=base_url, connection_verify=info["ca_bundle"])


@pytest.fixture
def ws(info: dict[str, Any]) -> str:
    return str(info["fabric"]["workspaces"][0]["id"])


def start(fabric: FabricClient, ws: str, item: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Runs a pipeline and returns the 202's headers (the SDK hands them to ``cls``)."""
    body = RunOnDemandItemJobRequest(execution_data={"parameters": parameters}) if parameters is not None else None
    return fabric.core.job_scheduler.run_on_demand_item_job(
        ws, item, "Pipeline", body, cls=lambda response, _, __: response.http_response.headers, **kwargs
    )


def error_code(error: HttpResponseError) -> str:
    """The ErrorResponse's errorCode as the SDK received it (its error map raises before reading the model)."""
    assert error.response is not None
    return str(error.response.json()["errorCode"])


def job_id(headers: Any) -> str:
    return str(headers["Location"]).rsplit("/", 1)[1]


def test_info_workspace_and_items_resolve_a_pipeline_by_name(
    fabric: FabricClient, info: dict[str, Any], ws: str
) -> None:
    summary = info["fabric"]
    assert summary["api_endpoint"] == f"{info['arm_endpoint']}/v1"
    sample = summary["workspaces"][0]["pipelines"][:2]
    assert [(p["name"], p["outcome"]) for p in sample] == [
        ("load_sales_fabric", "Succeeded"),
        ("refresh_warehouse", "Failed"),
    ]
    workspace = fabric.core.workspaces.get_workspace(ws)
    assert (workspace.id, workspace.display_name, workspace.type) == (ws, "contoso-fabric", "Workspace")
    items = {i.display_name: i for i in fabric.core.items.list_items(ws, type="DataPipeline")}
    assert items["slow_ok"].id == SLOW_ID and items["slow_ok"].type == "DataPipeline"
    assert items["slow_ok"].workspace_id == ws
    assert list(fabric.core.items.list_items(ws, type="Notebook")) == []
    item = fabric.core.items.get_item(ws, SLOW_ID)
    assert (item.id, item.display_name, item.type, item.workspace_id) == (SLOW_ID, "slow_ok", "DataPipeline", ws)
    with pytest.raises(ResourceNotFoundError) as raised:
        fabric.core.items.get_item(ws, "9e9e9e9e-0000-4000-8000-000000000000")
    assert error_code(raised.value) == "ItemNotFound"
    with pytest.raises(ResourceNotFoundError) as raised:
        fabric.core.workspaces.get_workspace("9e9e9e9e-0000-4000-8000-000000000000")
    assert error_code(raised.value) == "WorkspaceNotFound"


def test_job_instance_moves_with_the_clock_and_records_parameters(
    fabric: FabricClient, emu: Emulator, info: dict[str, Any], ws: str
) -> None:
    headers = start(
        fabric, ws, SLOW_ID, {"day": "2024-06-01", "tables": ["a", "b"]}, headers={"x-ms-correlation-request-id": "c-1"}
    )
    assert headers["Location"].startswith(f"{info['fabric']['api_endpoint']}/workspaces/{ws}/items/{SLOW_ID}/jobs/")
    assert headers["Retry-After"] == "1"
    jobs = fabric.core.job_scheduler
    job = jobs.get_item_job_instance(ws, SLOW_ID, job_id(headers))
    assert (job.status, job.job_type, job.invoke_type, job.item_id) == ("NotStarted", "Pipeline", "Manual", SLOW_ID)
    assert job.start_time_utc is None and job.end_time_utc is None and job.failure_reason is None
    emu.clock.advance(31)
    job = jobs.get_item_job_instance(ws, SLOW_ID, job_id(headers))
    assert job.status == "InProgress" and job.start_time_utc is not None and job.end_time_utc is None
    emu.clock.advance(60)
    job = jobs.get_item_job_instance(ws, SLOW_ID, job_id(headers))
    assert job.status == "Completed" and job.end_time_utc is not None and job.failure_reason is None
    assert not job.end_time_utc.endswith("Z") and len(job.end_time_utc.rsplit(".", 1)[1]) == 7
    record = next(r for r in emu.runs() if r["runId"] == job.id)
    assert record["service"] == "fabric" and record["pipeline"] == "slow_ok"
    assert record["parameters"] == {"day": "2024-06-01", "tables": ["a", "b"]}
    assert record["createCorrelationId"] == "c-1"


def test_failed_instance_carries_failure_reason(fabric: FabricClient, emu: Emulator, ws: str) -> None:
    jid = job_id(start(fabric, ws, FAILS_ID))
    emu.clock.advance(91)
    job = fabric.core.job_scheduler.get_item_job_instance(ws, FAILS_ID, jid)
    assert job.status == "Failed" and job.failure_reason is not None
    assert job.failure_reason.error_code == "RequestExecutionFailed"
    assert job.failure_reason.message == "Notebook raised ValueError"
    record = next(r for r in emu.runs() if r["runId"] == jid)
    assert record["parameters"] is None and record["createCorrelationId"] is None


def test_cancel_then_cancelled_and_completed_jobs_refuse(fabric: FabricClient, emu: Emulator, ws: str) -> None:
    jobs = fabric.core.job_scheduler
    jid = job_id(start(fabric, ws, SLOW_ID))
    emu.clock.advance(40)
    headers = jobs.cancel_item_job_instance(
        ws, SLOW_ID, jid, cls=lambda response, _, __: response.http_response.headers
    )
    assert headers["Location"].endswith(f"/items/{SLOW_ID}/jobs/instances/{jid}") and headers["Retry-After"] == "1"
    assert jobs.get_item_job_instance(ws, SLOW_ID, jid).status == "InProgress"
    emu.clock.advance(1)
    job = jobs.get_item_job_instance(ws, SLOW_ID, jid)
    assert job.status == "Cancelled" and job.end_time_utc is not None and job.failure_reason is None
    jobs.cancel_item_job_instance(ws, SLOW_ID, jid)  # a repeated cancel is accepted again
    done = job_id(start(fabric, ws, "8f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e10"))
    emu.clock.advance(10)
    with pytest.raises(HttpResponseError) as raised:
        jobs.cancel_item_job_instance(ws, "8f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e10", done)
    assert raised.value.status_code == 400 and error_code(raised.value) == "JobAlreadyCompleted"
    with pytest.raises(ResourceNotFoundError):
        jobs.get_item_job_instance(ws, SLOW_ID, "5b218778-e7a5-4d73-8187-f10824047715")


def test_list_pages_newest_first_through_continuation_uri(
    fabric: FabricClient, emu: Emulator, raw: RawClient, ws: str
) -> None:
    item = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    before = {j.id for j in fabric.core.job_scheduler.list_item_job_instances(ws, item)}
    created = [job_id(start(fabric, ws, item)) for _ in range(5)]
    emu.set_page_size(2)
    listed = [j.id for j in fabric.core.job_scheduler.list_item_job_instances(ws, item) if j.id not in before]
    assert listed == created[::-1]
    page = raw("GET", f"/v1/workspaces/{ws}/items/{item}/jobs/instances", auth=FABRIC)
    assert page.status == 200 and len(page.body["value"]) == 2
    assert page.body["continuationUri"].endswith(f"/jobs/instances?continuationToken={page.body['continuationToken']}")
    bad = raw("GET", f"/v1/workspaces/{ws}/items/{item}/jobs/instances?continuationToken=nope", auth=FABRIC)
    assert bad.status == 400 and bad.body["errorCode"] == "InvalidInput"


def test_only_the_last_hundred_completed_instances_are_kept(emu: Emulator, raw: RawClient, ws: str) -> None:
    path = f"/v1/workspaces/{ws}/items/{QUICK_ID}/jobs"
    ids = [
        raw("POST", f"{path}/Pipeline/instances", auth=FABRIC).headers["location"].rsplit("/", 1)[1] for _ in range(103)
    ]
    emu.clock.advance(1)
    listed = raw("GET", f"{path}/instances", auth=FABRIC).body
    assert [j["id"] for j in listed["value"]] == ids[:2:-1] and "continuationToken" not in listed
    gone = raw("GET", f"{path}/instances/{ids[0]}", auth=FABRIC)
    assert gone.status == 404 and gone.body["errorCode"] == "EntityNotFound"
    admin = {r["runId"]: r for r in emu.runs()}
    assert admin[ids[0]]["retained"] is False and admin[ids[-1]]["retained"] is True


def test_dedupe_skips_a_run_while_one_is_active(fabric: FabricClient, emu: Emulator, ws: str) -> None:
    jobs = fabric.core.job_scheduler
    first = job_id(start(fabric, ws, DEDUPE_ID))
    second = job_id(start(fabric, ws, DEDUPE_ID))
    skipped = jobs.get_item_job_instance(ws, DEDUPE_ID, second)
    assert skipped.status == "Deduped" and skipped.end_time_utc is not None
    assert jobs.get_item_job_instance(ws, DEDUPE_ID, first).status == "NotStarted"
    emu.clock.advance(91)
    third = job_id(start(fabric, ws, DEDUPE_ID))
    assert jobs.get_item_job_instance(ws, DEDUPE_ID, third).status == "NotStarted"


def test_data_pipeline_twins_and_older_query_form(fabric: FabricClient, emu: Emulator, raw: RawClient, ws: str) -> None:
    background = fabric.datapipeline.background_jobs
    headers = background.run_on_demand_execute(ws, SLOW_ID, cls=lambda response, _, __: response.http_response.headers)
    jid = job_id(headers)
    job = background.get_execute_job_instance(ws, SLOW_ID, jid)
    assert (job.id, job.job_type, job.status) == (jid, "Execute", "NotStarted")
    assert jid in {j.id for j in background.list_execute_job_instances(ws, SLOW_ID)}
    older = raw(
        "POST",
        f"/v1/workspaces/{ws}/items/{SLOW_ID}/jobs/instances?jobType=Pipeline",
        {"executionData": {"parameters": {"n": 1}}},
        auth=FABRIC,
    )
    assert older.status == 202 and older.raw == b"" and "/jobs/instances/" in older.headers["location"]
    wrong = raw("POST", f"/v1/workspaces/{ws}/items/{SLOW_ID}/jobs/Refresh/instances", auth=FABRIC)
    assert wrong.status == 400 and wrong.body["errorCode"] == "InvalidJobType"
    listed = raw(
        "POST", f"/v1/workspaces/{ws}/items/{SLOW_ID}/jobs/Pipeline/instances", {"parameters": []}, auth=FABRIC
    )
    assert listed.status == 400 and listed.body["errorCode"] == "FeatureNotAvailable"
    unknown = raw("POST", f"/v1/workspaces/{ws}/items/{DEDUPE_ID[:-1]}0/jobs/Pipeline/instances", auth=FABRIC)
    assert unknown.status == 404 and unknown.body["errorCode"] == "ItemNotFound"
    assert set(unknown.body) == {"requestId", "errorCode", "message"}
    assert unknown.headers["x-ms-public-api-error-code"] == "ItemNotFound"


def test_query_activity_runs_best_known_shape(fabric: FabricClient, emu: Emulator, raw: RawClient, ws: str) -> None:
    jid = job_id(start(fabric, ws, FAILS_ID))
    emu.clock.advance(61)
    path = f"/v1/workspaces/{ws}/datapipelines/pipelineruns/{jid}/queryactivityruns"
    running = raw("POST", path, iso_window(emu), auth=FABRIC).body["value"]
    assert [(a["activityName"], a["status"]) for a in running] == [
        ("Extract", "Succeeded"),
        ("Transform", "InProgress"),
    ]
    emu.clock.advance(30)
    body = {**iso_window(emu), "orderBy": [{"orderBy": "ActivityRunStart", "order": "DESC"}]}
    done = raw("POST", path, body, auth=FABRIC).body["value"]
    assert [(a["activityName"], a["status"]) for a in done] == [("Transform", "Failed"), ("Extract", "Succeeded")]
    failed = done[0]
    assert failed["pipelineRunId"] == jid and failed["activityType"] == "TridentNotebook"
    assert failed["error"]["errorCode"] == "RequestExecutionFailed" and failed["error"]["target"] == "Transform"
    assert failed["durationInMs"] == 30_000
    missing = raw("POST", path, {}, auth=FABRIC)
    assert missing.status == 400 and missing.body["errorCode"] == "BadRequest"


@pytest.mark.parametrize("audience", [ARM, SYNAPSE])
def test_tokens_for_other_services_are_refused(raw: RawClient, ws: str, audience: str) -> None:
    refused = raw("GET", f"/v1/workspaces/{ws}", auth=audience)
    assert refused.status == 401 and refused.body["errorCode"] == "Unauthorized"
    assert audience in refused.body["message"] and "requestId" in refused.body
    assert refused.headers["www-authenticate"].startswith("Bearer ")
    assert raw("GET", f"/v1/workspaces/{ws}", auth=None).status == 401


def test_expired_token_is_refused_as_fabric_does(emu: Emulator, fabric: FabricClient, raw: RawClient, ws: str) -> None:
    token = raw.token(FABRIC)
    emu.clock.advance(emu.authority.lifetime_s + 60)
    expired = raw("GET", f"/v1/workspaces/{ws}", auth=f"Bearer {token}")
    assert expired.status == 401 and expired.body["errorCode"] == "TokenExpired"
    assert fabric.core.workspaces.get_workspace(ws).id == ws  # the SDK's fresh token still works


def test_faults_counters_and_latency_apply(fabric: FabricClient, emu: Emulator, ws: str) -> None:
    emu.reset_counters()
    emu.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="status", status=429, retry_after=7, count=1))
    with pytest.raises(HttpResponseError) as raised:
        start(fabric, ws, SLOW_ID, retry_total=0)
    assert raised.value.status_code == 429 and raised.value.response.headers["Retry-After"] == "7"
    assert error_code(raised.value) == "TooManyRequests"
    emu.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="drop", when="after", count=1))
    runs_before = len(emu.runs())
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        start(fabric, ws, SLOW_ID, retry_total=0, headers={"x-ms-correlation-request-id": "lost-1"})
    lost = emu.runs()[runs_before:]
    assert [r["createCorrelationId"] for r in lost] == ["lost-1"]
    assert emu.counters["JobScheduler_RunOnDemandItemJob"] == 2
