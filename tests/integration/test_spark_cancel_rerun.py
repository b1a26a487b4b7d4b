"""Spark batches, cancel and rerun through the HTTP API, followed to the end by the poller."""

from __future__ import annotations

import json
from typing import Any

import pytest

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.context import AppContext
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.conftest import body_of, call, http_request, install_context, start
from tests.integration.test_start_runs import problem

FINISH = 30
BATCH = {
    "name": "nightly-aggregates",
    "file": "abfss://jobs@lake.dfs.core.windows.net/aggregate.py",
    "args": ["--day", "2026-11-21"],
    "conf": {"spark.dynamicAllocation.enabled": "false"},
    "driverMemory": "4g",
    "driverCores": 4,
    "executorMemory": "8g",
    "executorCores": 4,
    "numExecutors": 2,
    "tags": {"team": "finance"},
}


def submit(target: str, pool: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return call(
        "start_spark_batch",
        http_request(
            "POST",
            f"targets/{target}/sparkpools/{pool}/batches",
            body,
            headers,
            route_params={"target": target, "pool": pool},
        ),
    )


def post(function: str, run_id: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    action = "rerun" if function == "rerun" else "cancel"
    return call(function, http_request("POST", f"runs/{run_id}/{action}", body, headers, route_params={"id": run_id}))


def batches(stack: OfflineStack, pool: str, batch_id: str) -> list[dict[str, Any]]:
    return [b for b in stack.emulator.runs() if b.get("pool") == pool and str(b.get("batchId")) == batch_id]


def get(run_id: str) -> dict[str, Any]:
    return dict(body_of(call("get_run", http_request("GET", f"runs/{run_id}", route_params={"id": run_id}))))


def test_a_spark_batch_is_submitted_and_followed_to_success(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    response = submit(synapse, "small", BATCH)
    assert response.status_code == 202, response.get_body()
    run = body_of(response)
    assert run["kind"] == "spark" and run["sparkPool"] == "small" and run["pipeline"] == "nightly-aggregates"
    assert run["upstreamRunId"].isdigit() and run["status"] == RunStatus.QUEUED
    assert run["parameters"] == BATCH
    assert [b["name"] for b in batches(stack, "small", run["upstreamRunId"])] == ["nightly-aggregates"]
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    finished = get(run["id"])
    assert finished["status"] == RunStatus.SUCCEEDED and finished["upstreamStatus"] == "success"
    assert finished["appId"]
    assert context.alerts.peek() == []


def test_a_failed_batch_alerts_with_livy_errors_and_the_driver_log_tail(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    fragile = {**BATCH, "name": "fragile", "file": "abfss://jobs@lake.dfs.core.windows.net/fail_job.py"}
    run = body_of(submit(synapse, "small", fragile))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert get(run["id"])["status"] == RunStatus.FAILED
    (alert,) = context.alerts.peek()
    assert alert["summary"].startswith(f"Spark {synapse}/small batch fragile (id {run['upstreamRunId']}) failed on ")
    assert alert["appId"] and alert["errors"] and alert["driverLogTail"]
    assert any("Traceback" in line for line in alert["driverLogTail"])
    studio = alert["links"]["studio"]
    assert studio.startswith("https://web.azuresynapse.net/en/monitoring/sparkapplication/" + alert["appId"])
    assert "sparkPoolName=small" in studio and f"livyId={run['upstreamRunId']}" in studio


def test_spark_pools_are_checked_against_the_catalog_and_azure(
    stack: OfflineStack, names: dict[str, str], context: AppContext, synapse: str, adf: str
) -> None:
    problem(submit(adf, "small", BATCH), 404, "not-found")
    problem(submit(synapse, "bad-pool!", BATCH), 422, "invalid-name")
    problem(submit(synapse, "nosuchpool", BATCH), 404, "upstream-not-found")
    problem(submit(synapse, "small", {"file": "x.py"}), 422, "validation")
    problem(submit(synapse, "small", {**BATCH, "driverMemory": "lots"}), 422, "validation")
    problem(submit(synapse, "small", {**BATCH, "numExecutors": 0}), 422, "validation")

    catalog = {
        "targets": [
            {
                "name": synapse,
                "kind": "synapse",
                "workspaceName": synapse,
                "endpoint": stack.emulator.workspace_endpoint(synapse),
                "sparkPools": [{"match": "large", "products": ["analytics"]}],
            }
        ]
    }
    install_context(stack, names, settings={"GATEWAY_CATALOG": json.dumps(catalog)})
    problem(submit(synapse, "small", BATCH), 403, "not-allowed")
    problem(submit(synapse, "large", BATCH, {"x-apim-product-id": "bi"}), 403, "not-allowed")
    assert submit(synapse, "large", BATCH, {"x-apim-product-id": "analytics"}).status_code == 202


def test_a_batch_survives_being_submitted_twice_with_one_key(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    headers = {"Idempotency-Key": "batch-1"}
    first, again = (body_of(submit(synapse, "large", BATCH, headers)) for _ in range(2))
    assert first["id"] == again["id"]
    assert len(batches(stack, "large", first["upstreamRunId"])) == 1


@pytest.mark.parametrize("recursive", [False, True])
def test_cancel_moves_a_pipeline_run_to_cancelled(
    context: AppContext, stack: OfflineStack, adf: str, recursive: bool
) -> None:
    run = body_of(start(adf, "long_running"))
    response = post("cancel_run", run["id"], {"recursive": recursive})
    assert response.status_code == 202
    assert body_of(response)["status"] == RunStatus.CANCELING and body_of(response)["cancelRequestedAt"]
    assert post("cancel_run", run["id"]).status_code == 202  # twice is harmless
    stack.emulator.clock.advance(5)
    Poller(context).tick()
    assert get(run["id"])["status"] == RunStatus.CANCELLED


def test_cancel_of_a_spark_batch_kills_it(context: AppContext, stack: OfflineStack, synapse: str) -> None:
    run = body_of(submit(synapse, "small", {**BATCH, "name": "to-cancel"}))
    assert post("cancel_run", run["id"]).status_code == 202
    stack.emulator.clock.advance(5)
    Poller(context).tick()
    cancelled = get(run["id"])
    assert cancelled["status"] == RunStatus.CANCELLED and cancelled["upstreamStatus"] == "killed"


def test_cancelling_a_finished_run_says_how_it_ended(context: AppContext, stack: OfflineStack, adf: str) -> None:
    run = body_of(start(adf, "daily_load"))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    document = problem(post("cancel_run", run["id"]), 409, "run-finished")
    assert "Succeeded" in document["detail"]


def test_cancel_errors(context: AppContext, stack: OfflineStack, adf: str) -> None:
    problem(post("cancel_run", f"{adf}.0000000000000aaaaaaaa"), 404, "run-not-found")
    run = body_of(start(adf, "long_running"))
    problem(post("cancel_run", run["id"], {"recursive": "yes"}), 422, "validation")
    problem(post("cancel_run", run["id"], b"{"), 400, "malformed-body")
    stack.emulator.faults.add(Fault(route="PipelineRuns_Cancel", kind="status", status=403, count=1))
    document = problem(post("cancel_run", run["id"]), 502, "upstream-forbidden")
    assert "Data Factory Contributor" in document["detail"]
    assert get(run["id"])["status"] != RunStatus.CANCELING


def test_a_refused_synapse_pipeline_cancel_names_the_role_and_how_the_deployment_grants_it(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    run = body_of(start(synapse, "refresh_lake"))
    stack.emulator.faults.add(Fault(route="PipelineRun_CancelPipelineRun", kind="status", status=403, count=1))

    document = problem(post("cancel_run", run["id"]), 502, "upstream-forbidden")

    assert f"Synapse Contributor role on workspace {synapse}" in document["detail"]
    assert "synapsePipelineCancel" in document["detail"]


def test_rerun_from_failure_succeeds_and_links_both_runs(context: AppContext, stack: OfflineStack, adf: str) -> None:
    failed = body_of(start(adf, "copy_sales", {"parameters": {"day": "2026-11-21"}}))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    problem(
        post("rerun", failed["id"], {"startFromFailure": True, "startActivityName": "CopySales"}), 422, "validation"
    )
    response = post("rerun", failed["id"], {"startFromFailure": True}, {"Idempotency-Key": "rerun-1"})
    assert response.status_code == 202
    rerun = body_of(response)
    assert rerun["rerunOf"] == failed["id"] and response.headers["Location"].endswith(rerun["id"])
    assert rerun["options"] == {
        "referencePipelineRunId": failed["upstreamRunId"],
        "isRecovery": True,
        "startFromFailure": True,
    }
    original = next(r for r in stack.emulator.runs() if r.get("runId") == failed["upstreamRunId"])
    recovery = next(r for r in stack.emulator.runs() if r.get("runId") == rerun["upstreamRunId"])
    assert recovery["runGroupId"] == original["runGroupId"]
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert get(rerun["id"])["status"] == RunStatus.SUCCEEDED
    chain = [link["id"] for link in get(failed["id"])["chain"]]
    assert chain == [failed["id"], rerun["id"]] == [link["id"] for link in get(rerun["id"])["chain"]]
    assert get(failed["id"])["rerunBy"] == rerun["id"]
    retried = post("rerun", failed["id"], {"startFromFailure": True}, {"Idempotency-Key": "rerun-1"})
    assert body_of(retried)["id"] == rerun["id"] and retried.headers["Idempotent-Replayed"] == "true"
    problem(post("rerun", failed["id"]), 409, "run-already-rerun")  # rerun the latest of the chain instead


def test_synapse_rerun_supports_start_activity_but_not_start_from_failure(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    failed = body_of(start(synapse, "build_marts"))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    problem(post("rerun", failed["id"], {"startFromFailure": True}), 422, "validation")
    rerun = body_of(post("rerun", failed["id"], {"startActivityName": "BuildSalesMart"}))
    assert rerun["options"]["startActivityName"] == "BuildSalesMart" and rerun["kind"] == "synapse"
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert get(rerun["id"])["status"] == RunStatus.SUCCEEDED


def test_rerun_of_a_spark_batch_resubmits_its_definition(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    first = body_of(submit(synapse, "small", {**BATCH, "name": "again"}))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    problem(post("rerun", first["id"], {"startFromFailure": True}), 422, "validation")
    rerun = body_of(post("rerun", first["id"]))
    assert rerun["kind"] == "spark" and rerun["parameters"] == first["parameters"]
    assert rerun["upstreamRunId"] != first["upstreamRunId"]


def test_rerun_refuses_runs_still_going_or_never_started(context: AppContext, stack: OfflineStack, adf: str) -> None:
    running = body_of(start(adf, "long_running"))
    problem(post("rerun", running["id"]), 409, "run-in-progress")
    problem(
        start(adf, "not_deployed"),
        404,
        "upstream-not-found",
    )
    rejected = context.registry.list_runs(target=adf, pipeline="not_deployed")[0][0]
    problem(post("rerun", rejected.id), 409, "run-not-started")
    problem(post("rerun", f"{adf}.0000000000000aaaaaaaa"), 404, "run-not-found")


def test_a_product_that_may_not_start_a_pipeline_may_not_cancel_or_rerun_it(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str
) -> None:
    app = install_context(stack, names, pipelines=[{"match": "*", "products": ["erp"]}])
    erp = {"x-apim-product-id": "erp"}
    run = body_of(start(adf, "long_running", {}, erp))
    # Another product's run is not even found (tests/integration/test_product_isolation.py).
    problem(post("cancel_run", run["id"], headers={"x-apim-product-id": "marketing"}), 404, "run-not-found")
    install_context(stack, names, pipelines=[{"match": "*", "products": ["finance"]}])  # erp's access revoked
    problem(post("cancel_run", run["id"], headers=erp), 403, "not-allowed")
    app = install_context(stack, names, pipelines=[{"match": "*", "products": ["erp"]}])
    assert post("cancel_run", run["id"], headers=erp).status_code == 202
    assert app.registry.get(run["id"]).cancel_requested_by == "direct"


def test_a_batch_accepted_without_a_readable_answer_is_reconciled_not_lost(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    from datetime import timedelta

    stack.emulator.faults.add(
        Fault(route="SparkBatch_CreateSparkBatchJob", kind="malformed", status=200, when="after", count=1)
    )
    response = submit(synapse, "large", {**BATCH, "name": "answer-lost"})
    assert response.status_code == 202
    run = body_of(response)
    assert run["status"] == RunStatus.SUBMITTING and run["upstreamRunId"] is None
    (batch,) = [b for b in stack.emulator.runs() if b.get("name") == "answer-lost"]
    Poller(context, submit_grace=timedelta(0)).tick()
    assert get(run["id"])["upstreamRunId"] == str(batch["batchId"])
