"""Starting runs over HTTP: recorded, forwarded with the managed identity, errors as problems."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.config.settings import Settings
from shared.context import AppContext, set_app_context
from shared.runs.model import RunStatus
from tests.conftest import body_of, call, http_request, install_context, start

PROBLEM = "application/problem+json"


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == PROBLEM
    document = body_of(response)
    assert document["type"].endswith("/" + slug)
    assert document["status"] == status and document["detail"] and document["correlationId"]
    return document


def emulated_runs(stack: OfflineStack, pipeline: str) -> list[dict[str, Any]]:
    return [run for run in stack.emulator.runs() if run.get("pipelineName", run.get("pipeline")) == pipeline]


def test_adf_run_is_started_recorded_and_linked(context: AppContext, stack: OfflineStack, adf: str) -> None:
    response = start(adf, "daily_load", {"parameters": {"date": "2026-11-22", "regions": ["eu"]}})
    assert response.status_code == 202
    run = body_of(response)
    # gateway.example is not the app's own host (WEBSITE_HOSTNAME) nor its public URL: a path, no host
    assert response.headers["Location"] == run["links"]["self"] == f"/api/runs/{run['id']}"
    assert response.headers["x-correlation-id"] == run["correlationId"]
    assert run["kind"] == "datafactory" and run["status"] == RunStatus.QUEUED and run["upstreamRunId"]
    assert run["links"]["studio"].startswith("https://adf.azure.com/en/monitoring/pipelineruns/" + run["upstreamRunId"])
    assert "factory=%2Fsubscriptions%2F" in run["links"]["studio"]
    upstream = [r for r in stack.emulator.runs() if r.get("runId") == run["upstreamRunId"]]
    assert len(upstream) == 1
    assert upstream[0]["parameters"] == {"date": "2026-11-22", "regions": '["eu"]'}
    fetched = body_of(call("get_run", http_request("GET", f"runs/{run['id']}", route_params={"id": run["id"]})))
    assert fetched.pop("chain") == [{"id": run["id"], "status": run["status"], "createdAt": run["createdAt"]}]
    assert fetched == run


def test_synapse_run_uses_the_data_plane_audience(context: AppContext, stack: OfflineStack, synapse: str) -> None:
    before = stack.emulator.counters
    response = start(synapse, "refresh_lake")
    assert response.status_code == 202
    run = body_of(response)
    assert run["kind"] == "synapse" and run["upstreamRunId"]
    assert "workspace=%2Fsubscriptions%2F" in run["links"]["studio"]
    after = stack.emulator.counters
    assert after.get("Pipeline_CreatePipelineRun", 0) == before.get("Pipeline_CreatePipelineRun", 0) + 1


def test_recovery_options_reach_adf(context: AppContext, stack: OfflineStack, adf: str) -> None:
    failed = body_of(start(adf, "copy_sales"))
    response = start(
        adf,
        "copy_sales",
        {"referencePipelineRunId": failed["upstreamRunId"], "isRecovery": True, "startFromFailure": True},
    )
    assert response.status_code == 202
    rerun = body_of(response)
    assert rerun["options"] == {
        "referencePipelineRunId": failed["upstreamRunId"],
        "isRecovery": True,
        "startFromFailure": True,
    }
    upstream = next(r for r in stack.emulator.runs() if r.get("runId") == rerun["upstreamRunId"])
    assert (
        upstream["runGroupId"]
        == next(r for r in stack.emulator.runs() if r.get("runId") == failed["upstreamRunId"])["runGroupId"]
    )


def test_synapse_refuses_start_from_failure(context: AppContext, synapse: str) -> None:
    response = start(synapse, "build_marts", {"referencePipelineRunId": "abc", "startFromFailure": True})
    assert problem(response, 422, "validation")["errors"][0]["field"] == "startFromFailure"


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (b"{not json", 400, "malformed-body"),
        ({"parameters": "nope"}, 422, "validation"),
        ({"surprise": 1}, 422, "validation"),
        (b'{"parameters": {"x": "' + b"a" * 40_000 + b'"}}', 413, "body-too-large"),
    ],
)
def test_bad_bodies_are_refused_before_anything_is_recorded(
    context: AppContext, stack: OfflineStack, adf: str, body: Any, status: int, slug: str
) -> None:
    before = len(stack.emulator.runs())
    problem(start(adf, "daily_load", body), status, slug)
    assert len(stack.emulator.runs()) == before
    assert context.registry.list_runs()[0] == []


@pytest.mark.parametrize(
    ("target", "pipeline", "status", "slug"),
    [
        ("nope", "daily_load", 404, "target-not-found"),
        ("Bad.Target", "daily_load", 422, "invalid-name"),
        ("contoso-adf", "a/../../b", 422, "invalid-name"),
        ("contoso-adf", "x%2Fy", 422, "invalid-name"),
    ],
)
def test_unknown_targets_and_bad_names(context: AppContext, target: str, pipeline: str, status: int, slug: str) -> None:
    problem(start(target, pipeline), status, slug)


def test_catalog_and_products_decide_who_may_start_what(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str
) -> None:
    install_context(stack, names, pipelines=["daily_load", {"match": "copy_*", "products": ["erp"]}])
    problem(start(adf, "ingest_orders"), 403, "not-allowed")
    problem(start(adf, "copy_sales", headers={"x-apim-product-id": "marketing"}), 403, "not-allowed")
    assert start(adf, "copy_sales", headers={"x-apim-product-id": "erp"}).status_code == 202
    targets = body_of(call("list_targets", http_request("GET", "targets", headers={"x-apim-product-id": "bi"})))
    sales = next(t for t in targets["value"] if t["name"] == adf)
    assert [rule["match"] for rule in sales["pipelines"]] == ["daily_load"]
    assert "subscriptionId" not in sales


def test_pipeline_unknown_to_azure_is_404_and_recorded_as_rejected(context: AppContext, adf: str) -> None:
    document = problem(start(adf, "not_deployed_anywhere"), 404, "upstream-not-found")
    assert document["upstreamRequestId"]
    runs, _ = context.registry.list_runs(target=adf)
    assert [r.status for r in runs] == [RunStatus.REJECTED]


def test_forbidden_upstream_is_502_with_the_missing_role(context: AppContext, stack: OfflineStack, adf: str) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=403, count=1))
    document = problem(start(adf, "daily_load"), 502, "upstream-forbidden")
    assert (
        "Pipeline Gateway Data Factory runner role (or Data Factory Contributor) on factory contoso-adf"
        in document["detail"]
    )


def test_throttling_beyond_the_wait_budget_is_503_with_retry_after(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=429, retry_after=120, count=1))
    response = start(adf, "daily_load")
    problem(response, 503, "upstream-throttled")
    assert response.headers["Retry-After"] == "120"


def test_short_throttling_is_waited_out(context: AppContext, stack: OfflineStack, adf: str) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=429, retry_after=1, count=1))
    assert start(adf, "daily_load").status_code == 202


def test_lost_create_answer_is_accepted_and_not_retried(context: AppContext, stack: OfflineStack, adf: str) -> None:
    before = len(emulated_runs(stack, "ingest_customers"))
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    response = start(adf, "ingest_customers")
    assert response.status_code == 202
    run = body_of(response)
    assert run["status"] == RunStatus.SUBMITTING and run["upstreamRunId"] is None
    assert "reconcile" in run["message"]
    assert len(emulated_runs(stack, "ingest_customers")) == before + 1


def test_idempotency_key_returns_the_original_run(context: AppContext, stack: OfflineStack, adf: str) -> None:
    headers = {"Idempotency-Key": "order-42", "x-apim-subscription-id": "sub-a"}
    first = start(adf, "daily_load", {"parameters": {"n": 1}}, headers)
    again = start(adf, "daily_load", {"parameters": {"n": 1}}, headers)
    assert body_of(first)["id"] == body_of(again)["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    problem(start(adf, "daily_load", {"parameters": {"n": 2}}, headers), 409, "idempotency-key-reused")
    other_caller = start(
        adf, "daily_load", {"parameters": {"n": 1}}, {"Idempotency-Key": "order-42", "x-apim-subscription-id": "sub-b"}
    )
    assert body_of(other_caller)["id"] != body_of(first)["id"]


def test_racing_requests_with_one_key_start_one_run(context: AppContext, stack: OfflineStack, adf: str) -> None:
    before = len(emulated_runs(stack, "ingest_orders"))
    headers = {"Idempotency-Key": "race-1"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: start(adf, "ingest_orders", {}, headers), range(8)))
    assert {r.status_code for r in responses} == {202}
    assert len({body_of(r)["id"] for r in responses}) == 1
    assert len(emulated_runs(stack, "ingest_orders")) == before + 1


def test_a_rejected_start_frees_its_idempotency_key(context: AppContext, stack: OfflineStack, adf: str) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=503, count=1))
    headers = {"Idempotency-Key": "retry-me"}
    problem(start(adf, "daily_load", {}, headers), 503, "upstream-unavailable")
    assert start(adf, "daily_load", {}, headers).status_code == 202


def test_starting_100_runs_costs_one_token_per_audience(
    stack: OfflineStack, names: dict[str, str], adf: str, synapse: str
) -> None:
    app = AppContext(Settings({**os.environ, **names}))
    set_app_context(app)
    before = stack.emulator.counters
    for index in range(50):
        assert start(adf, "daily_load", {"parameters": {"i": index}}).status_code == 202
        assert start(synapse, "refresh_lake", {"parameters": {"i": index}}).status_code == 202
    after = stack.emulator.counters
    issued = {
        key.split(":", 1)[1]: after[key] - before.get(key, 0)
        for key in after
        if key.startswith("ManagedIdentity_GetToken:")
    }
    assert issued.get("https://management.azure.com", 0) == 1
    assert issued.get("https://dev.azuresynapse.net", 0) == 1
    assert issued.get("https://storage.azure.com", 0) == 1
    set_app_context(None)


def test_list_runs_filters_and_pages(context: AppContext, adf: str, synapse: str) -> None:
    for _ in range(3):
        start(adf, "daily_load")
    start(synapse, "refresh_lake")
    listed = body_of(call("list_runs", http_request("GET", "runs", params={"target": adf, "limit": "2"})))
    assert len(listed["value"]) == 2 and listed["continuation"]
    assert listed["nextLink"].endswith("continuation=" + listed["continuation"])
    rest = body_of(
        call(
            "list_runs",
            http_request("GET", "runs", params={"target": adf, "limit": "2", "continuation": listed["continuation"]}),
        )
    )
    ids = [r["id"] for r in listed["value"] + rest["value"]]
    assert len(ids) == len(set(ids)) == 3
    created = [r["createdAt"] for r in listed["value"]]
    assert created == sorted(created, reverse=True)
    only_synapse = body_of(call("list_runs", http_request("GET", "runs", params={"pipeline": "refresh_lake"})))
    assert [r["target"] for r in only_synapse["value"]] == [synapse]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "Done"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"continuation": "garbage!"}, "continuation"),
        ({"pipeline": "a/b"}, "pipeline"),
    ],
)
def test_list_runs_validates_its_query(context: AppContext, params: dict[str, str], field: str) -> None:
    document = problem(
        call("list_runs", http_request("GET", "runs", params=params)),
        422,
        "invalid-name" if field == "pipeline" else "validation",
    )
    assert document["errors"][0]["field"] == field


def test_unknown_run_is_404(context: AppContext, adf: str) -> None:
    for run_id in (f"{adf}.0000000000000aaaaaaaa", "garbage", "../../etc"):
        problem(
            call("get_run", http_request("GET", f"runs/{run_id}", route_params={"id": run_id})), 404, "run-not-found"
        )


def test_health_is_cheap_and_discreet(context: AppContext, stack: OfflineStack) -> None:
    before = stack.emulator.counters
    response = call("health", http_request("GET", "health"))
    assert response.status_code == 200 and body_of(response) == {"status": "ok"}
    assert stack.emulator.counters == before


def test_identity_endpoint_down_is_503_naming_the_identity(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    app = AppContext(Settings({**os.environ, **names}))
    set_app_context(app)
    before = len(stack.emulator.runs())
    stack.emulator.faults.add(Fault(route="ManagedIdentity_GetToken", kind="status", status=500))
    try:
        response = start(adf, "daily_load")
    finally:
        stack.emulator.faults.clear()
        set_app_context(None)
    document = problem(response, 503, "identity-unavailable")
    assert f"Managed identity {stack.emulator.info['client_id']}" in document["detail"]
    assert "attached to the function app" in document["detail"]
    assert len(stack.emulator.runs()) == before


def test_list_runs_refuses_empty_filters(context: AppContext) -> None:
    document = problem(
        call("list_runs", http_request("GET", "runs", params={"since": "", "limit": ""})), 422, "validation"
    )
    assert [error["field"] for error in document["errors"]] == ["since", "limit"]
    document = problem(call("list_runs", http_request("GET", "runs", params={"statsu": "Failed"})), 422, "validation")
    assert "statsu" in document["detail"] and "status" in document["detail"]
