"""Microsoft Fabric data pipelines through the gateway, against the emulator: start, replay, watch in
bulk, Deduped, alerts as on-call reads them, cancel, rerun, lost create answers, diagnostics, products.

The module has a stack of its own: its Fabric workspace adds pipelines that run for an hour (cancel),
skip overlapping runs (Deduped), or are started by no other test (ownership: a Fabric job instance
reports no parameters, so a test that reconciles a lost answer needs an item no other test runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from microsoft_fabric_api import FabricClient

from offline.emulator import EmulatorConfig, FabricActivitySpec, FabricPipelineSpec, Fault
from offline.emulator.fabric_config import SAMPLE_FABRIC_WORKSPACE
from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from shared.kinds.fabric import DEDUPED_MESSAGE
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.conftest import body_of, call, http_request, install, integration_config, own_stack, start
from tests.integration.test_start_runs import problem

WORKSPACE = SAMPLE_FABRIC_WORKSPACE.id
TARGET = SAMPLE_FABRIC_WORKSPACE.name
LOAD, REFRESH = "load_sales_fabric", "refresh_warehouse"  # the sample's: succeeds, fails at RefreshModel
LONG = "long_fabric"
SINGLETON = "singleton_fabric"
FINISH = 30  # emulated seconds after which the short pipelines have ended
ERP = {"x-apim-subscription-id": "sub-erp", "x-apim-product-id": "erp"}
BI = {"x-apim-subscription-id": "sub-bi", "x-apim-product-id": "bi"}


def _pipeline(number: int, name: str, **spec: Any) -> FabricPipelineSpec:
    return FabricPipelineSpec(f"7e000000-0000-4000-8000-{number:012d}", name, **spec)


LONG_SPEC = {"queue_s": 5.0, "duration_s": 3600.0, "activities": (FabricActivitySpec("WaitForPartner", "Wait"),)}
EXTRA = (
    _pipeline(1, LONG, **LONG_SPEC),
    _pipeline(2, SINGLETON, dedupe=True, **LONG_SPEC),
    _pipeline(3, "bulk_a"),
    _pipeline(4, "bulk_b"),
    _pipeline(5, "lost_answer"),
    _pipeline(6, "contested"),
    _pipeline(7, "foreign"),
    _pipeline(8, "never_reached"),
)
ITEM = {spec.name: spec.id for spec in (*SAMPLE_FABRIC_WORKSPACE.pipelines, *EXTRA)}


def fabric_config() -> EmulatorConfig:
    workspace = replace(SAMPLE_FABRIC_WORKSPACE, pipelines=(*SAMPLE_FABRIC_WORKSPACE.pipelines, *EXTRA))
    return replace(integration_config(), fabric_workspaces=(workspace,))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("fabric-stack"), fabric_config()) as started:
        yield started


def fabric_target(stack: OfflineStack, pipelines: list[Any] | None = None) -> dict[str, Any]:
    document = catalog_for(stack.emulator.info)
    (target,) = [t for t in document["targets"] if t["kind"] == "fabric"]
    if pipelines is not None:
        target["pipelines"] = pipelines
    return {**document, "targets": [target]}


def use_catalog(stack: OfflineStack, names: dict[str, str], pipelines: list[Any]) -> AppContext:
    return install(stack, names, fabric_target(stack, pipelines))


def started(pipeline: str, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    response = start(TARGET, pipeline, body, headers)
    assert response.status_code == 202, response.get_body()
    run: dict[str, Any] = body_of(response)
    return run


def job(stack: OfflineStack, job_id: str | None) -> dict[str, Any]:
    (found,) = [r for r in stack.emulator.runs() if r.get("runId") == job_id]
    return found


def jobs_of(stack: OfflineStack, pipeline: str) -> list[dict[str, Any]]:
    return [r for r in stack.emulator.runs() if r.get("service") == "fabric" and r["pipeline"] == pipeline]


def act(run_id: str, action: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = http_request("POST", f"runs/{run_id}/{action}", body or {}, headers, route_params={"id": run_id})
    return call({"cancel": "cancel_run", "rerun": "rerun"}[action], request)


def someone_elses_sdk(stack: OfflineStack) -> FabricClient:
    """A person's (or another tool's) client: the official SDK, with the same identity as the app."""
    info = stack.emulator.info
    credential = ManagedIdentityCredential(client_id=info["client_id"], connection_verify=info["ca_bundle"])
    return FabricClient(
        credential, base_url=info["fabric"]["api_endpoint"].removesuffix("v1"), connection_verify=info["ca_bundle"]
    )


# --- Start -------------------------------------------------------------------------------------------


def test_a_start_is_202_with_the_job_instance_named_by_location(context: AppContext, stack: OfflineStack) -> None:
    response = start(TARGET, LOAD, {"parameters": {"day": "2026-11-21", "regions": ["eu"]}})
    assert response.status_code == 202
    run = body_of(response)
    assert response.headers["Location"] == f"/api/runs/{run['id']}"
    assert (run["kind"], run["status"], run["upstreamStatus"]) == ("fabric", RunStatus.QUEUED, "NotStarted")
    assert run["options"] == {"itemId": ITEM[LOAD]}
    upstream = job(stack, run["upstreamRunId"])
    assert (upstream["pipeline"], upstream["jobType"], upstream["itemId"]) == (LOAD, "Pipeline", ITEM[LOAD])
    assert upstream["parameters"] == {"day": "2026-11-21", "regions": ["eu"]}  # executionData.parameters, as given
    assert upstream["createCorrelationId"] == run["correlationId"]
    assert run["links"]["studio"] == (
        "https://app.fabric.microsoft.com/workloads/data-pipeline/monitoring/workspaces/"
        f"{WORKSPACE}/pipelines/{ITEM[LOAD]}/{run['upstreamRunId']}"
    )


def test_a_keyed_retry_returns_the_same_run_and_starts_nothing(context: AppContext, stack: OfflineStack) -> None:
    key = {"Idempotency-Key": "fabric-close-2026-11"}
    first = started(LOAD, key, parameters={"day": "2026-11-30"})
    before = len(jobs_of(stack, LOAD))
    again = start(TARGET, LOAD, {"parameters": {"day": "2026-11-30"}}, key)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert body_of(again)["id"] == first["id"] and len(jobs_of(stack, LOAD)) == before
    problem(start(TARGET, LOAD, {"parameters": {"day": "2026-12-01"}}, key), 409, "idempotency-key-reused")


def test_a_pipeline_named_only_by_its_name_is_resolved_once_per_process(
    stack: OfflineStack, names: dict[str, str]
) -> None:
    use_catalog(stack, names, [LOAD, "bulk_*"])
    stack.emulator.reset_counters()
    first, second = started(LOAD), started("BULK_A")
    assert first["options"] == {"itemId": ITEM[LOAD]} and second["options"] == {"itemId": ITEM["bulk_a"]}
    assert second["pipeline"] == "bulk_a"  # recorded as Fabric spells it
    started(LOAD)
    assert stack.emulator.counters["Items_ListItems"] == 1
    missing = problem(start(TARGET, "bulk_nothing"), 404, "upstream-not-found")
    assert "no data pipeline named 'bulk_nothing'" in missing["detail"]


def test_recovery_options_are_refused_naming_each_field(context: AppContext, stack: OfflineStack) -> None:
    before = len(jobs_of(stack, LOAD))
    body = {"referencePipelineRunId": "4e50a182-43d5-473c-a0a1-1ed5a9d2827d", "startActivityName": "RunMerge"}
    refused = problem(start(TARGET, LOAD, body), 422, "validation")
    assert {e["field"] for e in refused["errors"]} == {"referencePipelineRunId", "startActivityName"}
    assert len(jobs_of(stack, LOAD)) == before


# --- Watch and alert ---------------------------------------------------------------------------------


def test_the_poller_records_outcomes_and_the_failure_alert_reads_as_fabric_reported_it(
    context: AppContext, stack: OfflineStack
) -> None:
    ok, failed = started(LOAD), started(REFRESH, parameters={"day": "2026-11-21"})
    stack.emulator.clock.advance(FINISH)

    Poller(context).tick()

    registry = context.registry
    done, broken = registry.get(ok["id"]), registry.get(failed["id"])
    assert (done.status, done.upstream_status) == (RunStatus.SUCCEEDED, "Completed")
    assert done.run_start and done.run_end and done.duration_ms is not None
    assert (broken.status, broken.upstream_status) == (RunStatus.FAILED, "Failed")
    assert broken.message.startswith("RequestExecutionFailed: Operation on target RefreshModel failed")
    (alert,) = [a for a in context.alerts.peek() if a["runId"] == failed["id"]]
    assert alert["targetKind"] == "fabric" and alert["location"] == f"Fabric workspace {TARGET}"
    assert alert["summary"].startswith(f"Fabric {TARGET}/{REFRESH} run {failed['upstreamRunId'][:8]}… failed ")
    assert "at activity RefreshModel on 20" in alert["summary"] and "TABLE_OR_VIEW_NOT_FOUND" in alert["summary"]
    (activity,) = alert["failedActivities"]
    assert (activity["name"], activity["type"], activity["errorCode"]) == (
        "RefreshModel",
        "TridentNotebook",
        "RequestExecutionFailed",
    )
    assert alert["upstreamStatus"] == "Failed" and alert["upstreamRunId"] == failed["upstreamRunId"]
    assert alert["links"]["studio"].endswith(f"/pipelines/{ITEM[REFRESH]}/{failed['upstreamRunId']}")
    assert [a["runId"] for a in context.alerts.peek()].count(ok["id"]) == 0


def test_an_alert_still_goes_out_with_the_failure_reason_when_activity_runs_do_not_answer(
    context: AppContext, stack: OfflineStack
) -> None:
    failed = started(REFRESH)
    stack.emulator.clock.advance(FINISH)
    stack.emulator.faults.add(Fault(route="DataPipelines_QueryActivityRuns", kind="status", status=500))

    Poller(context).tick()

    (alert,) = [a for a in context.alerts.peek() if a["runId"] == failed["id"]]
    assert alert["failedActivities"] == []
    assert "RequestExecutionFailed: Operation on target RefreshModel failed" in alert["summary"]
    assert alert["message"].startswith("RequestExecutionFailed: ")


def test_the_poller_lists_each_pipeline_with_runs_in_flight_not_each_run(
    stack: OfflineStack, names: dict[str, str]
) -> None:
    context = use_catalog(stack, names, [{"match": n, "itemId": ITEM[n]} for n in ("bulk_a", "bulk_b", LOAD)])
    stack.emulator.set_page_size(5)
    try:
        runs = [started("bulk_a" if index % 2 else "bulk_b", parameters={"i": index}) for index in range(12)]
        stack.emulator.clock.advance(FINISH)
        stack.emulator.reset_counters()
        Poller(context).tick()
        counters = stack.emulator.counters
    finally:
        stack.emulator.set_page_size(100)
    assert counters.get("JobScheduler_GetItemJobInstance", 0) == 0
    # 6 runs of each pipeline, newest first at 5 a page: 2 pages each; the third pipeline has none in flight
    assert counters["JobScheduler_ListItemJobInstances"] == 4
    assert {context.registry.get(run["id"]).status for run in runs} == {RunStatus.SUCCEEDED}


def test_a_run_fabric_skips_as_deduped_ends_cancelled_and_says_why(context: AppContext, stack: OfflineStack) -> None:
    first = started(SINGLETON)
    skipped = started(SINGLETON)
    Poller(context).tick()
    run = context.registry.get(skipped["id"])
    assert (run.status, run.upstream_status, run.message) == (RunStatus.CANCELLED, "Deduped", DEDUPED_MESSAGE)
    assert context.registry.get(first["id"]).status == RunStatus.QUEUED
    assert [a for a in context.alerts.peek() if a["runId"] == skipped["id"]] == []  # alertOnCancelled is off
    act(first["id"], "cancel")


# --- Cancel and rerun --------------------------------------------------------------------------------


def test_cancel_goes_through_the_job_scheduler_and_the_poller_sees_it_through(
    context: AppContext, stack: OfflineStack
) -> None:
    run = started(LONG)
    stack.emulator.clock.advance(10)
    response = act(run["id"], "cancel")
    assert response.status_code == 202 and body_of(response)["status"] == RunStatus.CANCELING
    assert act(run["id"], "cancel").status_code == 202  # twice is harmless
    Poller(context).tick()
    stack.emulator.clock.advance(2)
    Poller(context).tick()
    assert context.registry.get(run["id"]).status == RunStatus.CANCELLED
    assert job(stack, run["upstreamRunId"])["status"] == "Cancelled"
    problem(act(run["id"], "cancel"), 409, "run-finished")


def test_a_rerun_is_a_new_linked_run_with_the_same_parameters(context: AppContext, stack: OfflineStack) -> None:
    failed = started(REFRESH, parameters={"day": "2026-11-21"})
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    refused = problem(act(failed["id"], "rerun", {"startFromFailure": True}), 422, "validation")
    assert refused["errors"][0]["field"] == "startFromFailure"

    response = act(failed["id"], "rerun")

    assert response.status_code == 202
    rerun = body_of(response)
    assert rerun["rerunOf"] == failed["id"] and rerun["parameters"] == {"day": "2026-11-21"}
    assert rerun["upstreamRunId"] != failed["upstreamRunId"]
    assert job(stack, rerun["upstreamRunId"])["parameters"] == {"day": "2026-11-21"}
    assert context.registry.get(failed["id"]).rerun_by == rerun["id"]


def test_a_correlation_parameter_carries_each_runs_own_id_to_the_pipeline(
    stack: OfflineStack, names: dict[str, str]
) -> None:
    context = use_catalog(stack, names, [{"match": REFRESH, "correlationParameter": "gatewayRunId"}])
    failed = started(REFRESH, parameters={"day": "2026-11-21"})
    assert job(stack, failed["upstreamRunId"])["parameters"] == {"day": "2026-11-21", "gatewayRunId": failed["id"]}
    problem(start(TARGET, REFRESH, {"parameters": {"gatewayRunId": "mine"}}), 422, "validation")
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    rerun = body_of(act(failed["id"], "rerun"))
    assert job(stack, rerun["upstreamRunId"])["parameters"] == {"day": "2026-11-21", "gatewayRunId": rerun["id"]}


# --- Lost create answers: reconciled, never attributed to another's run ------------------------------


def test_a_lost_create_answer_is_reconciled_to_its_one_job_instance(context: AppContext, stack: OfflineStack) -> None:
    stack.emulator.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="drop", when="after", count=1))
    response = start(TARGET, "lost_answer")
    assert response.status_code == 202
    lost = body_of(response)
    assert lost["status"] == RunStatus.SUBMITTING and lost["upstreamRunId"] is None
    (its_job,) = jobs_of(stack, "lost_answer")
    stack.emulator.clock.advance(2)  # started: a queued instance has no time to match by

    Poller(context, submit_grace=timedelta(0)).tick()

    run = context.registry.get(lost["id"])
    assert run.upstream_run_id == its_job["runId"] and run.status in (RunStatus.IN_PROGRESS, RunStatus.SUCCEEDED)
    assert len(jobs_of(stack, "lost_answer")) == 1


def test_a_run_started_otherwise_is_never_taken_for_a_lost_start(context: AppContext, stack: OfflineStack) -> None:
    stack.emulator.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="drop", when="before", count=1))
    lost = started("foreign")
    # Meanwhile another tool runs the same pipeline through the data pipeline's own job route.
    someone_elses_sdk(stack).datapipeline.background_jobs.run_on_demand_execute(WORKSPACE, ITEM["foreign"])
    stack.emulator.clock.advance(2)

    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()

    run = context.registry.get(lost["id"])
    assert (run.status, run.upstream_run_id, run.contested) == (RunStatus.UNKNOWN, None, "")
    assert "No run of foreign matching this request appeared" in run.message


def test_two_manual_runs_in_the_window_make_the_lost_start_unknown_naming_both(
    context: AppContext, stack: OfflineStack
) -> None:
    stack.emulator.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="drop", when="after", count=1))
    lost = started("contested")
    someone_elses_sdk(stack).core.job_scheduler.run_on_demand_item_job(WORKSPACE, ITEM["contested"], "Pipeline")
    stack.emulator.clock.advance(2)

    Poller(context, submit_grace=timedelta(0)).tick()

    run = context.registry.get(lost["id"])
    both = sorted(r["runId"] for r in jobs_of(stack, "contested"))
    assert run.status == RunStatus.UNKNOWN and run.upstream_run_id is None
    assert run.contested.split() == both and all(job_id in run.message for job_id in both)
    (alert,) = [a for a in context.alerts.peek() if a["runId"] == lost["id"]]
    assert alert["kind"] == "unknown"


def test_a_start_that_never_reached_fabric_becomes_unknown(context: AppContext, stack: OfflineStack) -> None:
    stack.emulator.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="drop", when="before", count=1))
    lost = started("never_reached")
    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()
    assert context.registry.get(lost["id"]).status == RunStatus.UNKNOWN
    assert jobs_of(stack, "never_reached") == []


# --- Throttling, diagnostics, products ---------------------------------------------------------------


def test_fabric_throttling_is_waited_out_with_its_retry_after(context: AppContext, stack: OfflineStack) -> None:
    stack.emulator.faults.add(
        Fault(route="JobScheduler_RunOnDemandItemJob", kind="status", status=429, retry_after=1, count=1)
    )
    run = started(LOAD)
    assert run["status"] == RunStatus.QUEUED and job(stack, run["upstreamRunId"])
    stack.emulator.faults.add(Fault(route="JobScheduler_RunOnDemandItemJob", kind="status", status=429, retry_after=60))
    throttled = problem(start(TARGET, LOAD), 503, "upstream-throttled")
    assert throttled["retryAfter"] == 60


def diagnose(target: str, headers: dict[str, str] | None = None) -> Any:
    return call("get_target", http_request("GET", f"targets/{target}", None, headers, route_params={"target": target}))


def test_diagnostics_read_the_workspace_and_each_listed_pipeline(stack: OfflineStack, names: dict[str, str]) -> None:
    use_catalog(stack, names, [{"match": LOAD, "itemId": ITEM[LOAD]}, REFRESH, "bulk_*"])
    report = body_of(diagnose(TARGET))
    checks = {check["name"]: check for check in report["checks"]}
    assert report["healthy"] is True and report["target"]["workspaceName"] == TARGET
    assert checks["workspace"]["facts"]["displayName"] == TARGET
    assert checks["workspace"]["facts"]["displayNameMatchesCatalog"] is True
    assert checks[f"pipeline:{LOAD}"]["facts"]["itemId"] == ITEM[LOAD]
    assert checks[f"pipeline:{REFRESH}"]["facts"]["itemId"] == ITEM[REFRESH]
    assert checks["pipelines:bulk_*"]["facts"]["matching"] == ["bulk_a", "bulk_b"]


def test_a_refused_diagnostic_names_the_workspace_role_fabric_says_is_missing(
    stack: OfflineStack, names: dict[str, str]
) -> None:
    use_catalog(stack, names, [LOAD])
    denied = "The caller does not have sufficient permissions to access the item."
    stack.emulator.faults.add(
        Fault(route="Items_GetItem", kind="status", status=403, code="InsufficientPrivileges", message=denied)
    )
    try:
        report = body_of(diagnose(TARGET))
    finally:
        stack.emulator.faults.clear()
    checks = {check["name"]: check for check in report["checks"]}
    refused = checks[f"pipeline:{LOAD}"]
    assert report["healthy"] is False and checks["workspace"]["ok"] is True
    assert (refused["ok"], refused["upstreamStatus"], refused["upstreamCode"]) == (False, 403, "InsufficientPrivileges")
    assert denied in refused["detail"] and "Viewer role (or higher) on Fabric workspace" in refused["detail"]
    assert "not Azure RBAC" in refused["detail"]


def test_another_product_can_neither_start_see_nor_steer_a_fabric_run(
    stack: OfflineStack, names: dict[str, str]
) -> None:
    use_catalog(stack, names, [{"match": LONG, "products": ["erp"]}])
    run = started(LONG, ERP)
    problem(start(TARGET, LONG, {}, BI), 403, "not-allowed")
    seen = call("get_run", http_request("GET", f"runs/{run['id']}", None, BI, route_params={"id": run["id"]}))
    problem(seen, 404, "run-not-found")
    problem(act(run["id"], "cancel", headers=BI), 404, "run-not-found")
    problem(act(run["id"], "rerun", headers=BI), 404, "run-not-found")
    problem(
        call("list_runs", http_request("GET", "runs", None, BI, params={"target": TARGET})), 404, "target-not-found"
    )
    assert body_of(call("list_runs", http_request("GET", "runs", None, BI)))["value"] == []
    assert act(run["id"], "cancel", headers=ERP).status_code == 202


def test_the_catalog_for_make_run_opens_every_fabric_pipeline_by_item_id(stack: OfflineStack) -> None:
    info = stack.emulator.info["fabric"]["workspaces"][0]
    (target,) = fabric_target(stack)["targets"]
    assert (target["workspaceId"], target["workspaceName"]) == (info["id"], info["name"])
    assert [(p["match"], p["itemId"]) for p in target["pipelines"]] == [(p["name"], p["id"]) for p in info["pipelines"]]
