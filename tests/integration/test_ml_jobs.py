"""Azure ML jobs through the HTTP API: started from catalog templates, followed in bulk by the poller,
alerted with the failed step and its log, cancelled and rerun, against the emulated workspace."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from offline.emulator import Fault
from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from shared.kinds.machinelearning import job_name
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.conftest import body_of, call, http_request, install_context
from tests.integration.test_start_runs import problem

FINISH = 30  # emulated seconds after which every sample job has ended
DATA = "azureml://datastores/workspaceblobstore/paths/"


def start_job(target: str, template: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return call(
        "start_job_run",
        http_request(
            "POST",
            f"targets/{target}/jobs/{template}/runs",
            body if body is not None else {},
            headers,
            route_params={"target": target, "template": template},
        ),
    )


def get(run_id: str) -> dict[str, Any]:
    return dict(body_of(call("get_run", http_request("GET", f"runs/{run_id}", route_params={"id": run_id}))))


def post(action: str, run_id: str, body: Any = None) -> Any:
    function = "rerun" if action == "rerun" else "cancel_run"
    return call(function, http_request("POST", f"runs/{run_id}/{action}", body, route_params={"id": run_id}))


def jobs(stack: OfflineStack, name: str) -> list[dict[str, Any]]:
    return [r for r in stack.emulator.runs() if r.get("service") == "aml" and r["runId"] == name]


def test_a_command_job_is_put_under_its_run_id_and_followed_to_success(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    response = start_job(aml, "train_model", {"inputs": {"data": DATA + "sales/2026/"}})

    assert response.status_code == 202, response.get_body()
    run = body_of(response)
    assert response.headers["Location"].endswith(f"/runs/{run['id']}")
    assert run["kind"] == "machinelearning" and run["pipeline"] == "train_model"
    assert run["upstreamRunId"] == job_name(run["id"]) and run["parameters"] == {"data": DATA + "sales/2026/"}
    (job,) = jobs(stack, run["upstreamRunId"])
    assert job["tags"] == {"gatewayRunId": run["id"]} and job["template"] == "train_model"

    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    finished = get(run["id"])
    assert finished["status"] == RunStatus.SUCCEEDED and finished["upstreamStatus"] == "Completed"
    assert finished["runStart"] and finished["runEnd"] and finished["durationMs"] > 0
    assert finished["links"]["studio"].startswith(f"https://ml.azure.com/runs/{run['upstreamRunId']}?wsid=")
    assert context.alerts.peek() == []


def test_a_failed_pipeline_job_alerts_with_the_failed_step_its_error_and_its_log(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    run = body_of(start_job(aml, "score_batch"))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    assert get(run["id"])["status"] == RunStatus.FAILED
    (alert,) = context.alerts.peek()
    assert alert["summary"].startswith(f"Azure ML {aml}/score_batch job {run['upstreamRunId']} failed at step score")
    assert "exited with status code 1" in alert["summary"]
    (step,) = alert["failedActivities"]
    assert step["name"] == "score" and step["failureType"] == "UserError" and step["type"] == "pipeline step"
    assert alert["logName"] == "user_logs/std_log.txt of step score"
    assert any("KeyError" in line for line in alert["driverLogTail"])
    assert alert["links"]["studio"].startswith("https://ml.azure.com/runs/")


def test_a_retried_start_with_the_same_key_returns_the_same_job(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    headers = {"Idempotency-Key": "nightly-train-42"}
    first = start_job(aml, "train_model", {"inputs": {"data": DATA + "a/"}}, headers)
    again = start_job(aml, "train_model", {"inputs": {"data": DATA + "a/"}}, headers)
    other = start_job(aml, "train_model", {"inputs": {"data": DATA + "b/"}}, headers)

    assert first.status_code == again.status_code == 202
    assert body_of(first)["id"] == body_of(again)["id"]
    problem(other, 409, "idempotency-key-reused")
    assert len(jobs(stack, body_of(first)["upstreamRunId"])) == 1


def test_a_lost_create_answer_is_found_by_the_job_name_and_never_submitted_twice(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    stack.emulator.faults.add(Fault(route="Jobs_CreateOrUpdate", kind="drop", when="after", count=1))
    response = start_job(aml, "train_model")
    assert response.status_code == 202, response.get_body()
    run = body_of(response)
    assert run["status"] == RunStatus.SUBMITTING and run.get("upstreamRunId") is None

    Poller(context, submit_grace=timedelta(0)).tick()

    reconciled = context.registry.get(run["id"])
    assert reconciled.upstream_run_id == job_name(run["id"])
    assert reconciled.status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS)
    assert len(jobs(stack, job_name(run["id"]))) == 1


def test_a_create_that_never_reached_azure_ends_unknown_and_takes_no_job(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    stack.emulator.faults.add(Fault(route="Jobs_CreateOrUpdate", kind="drop", when="before", count=1))
    run = body_of(start_job(aml, "train_model"))

    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()

    assert context.registry.get(run["id"]).status == RunStatus.UNKNOWN
    assert jobs(stack, job_name(run["id"])) == []


def test_the_poller_lists_jobs_in_pages_not_one_read_per_job(
    context: AppContext, stack: OfflineStack, aml: str
) -> None:
    started = [body_of(start_job(aml, "train_model"))["id"] for _ in range(12)]
    stack.emulator.clock.advance(2)  # all of them queued or running
    stack.emulator.reset_counters()

    Poller(context).tick()

    counters = stack.emulator.counters
    assert counters.get("Jobs_Get", 0) == 0, "no job needed a single read"
    assert 1 <= counters.get("Jobs_List", 0) <= 3
    assert all(get(run_id)["status"] in (RunStatus.QUEUED, RunStatus.IN_PROGRESS) for run_id in started)


def test_a_job_is_cancelled_and_rerun_as_a_new_linked_job(context: AppContext, stack: OfflineStack, aml: str) -> None:
    run = body_of(start_job(aml, "train_model", {"inputs": {"data": DATA + "c/"}}))

    cancelled = post("cancel", run["id"], {})
    assert cancelled.status_code == 202, cancelled.get_body()
    assert body_of(cancelled)["status"] == RunStatus.CANCELING
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert get(run["id"])["status"] == RunStatus.CANCELLED

    rerun = post("rerun", run["id"], {})
    assert rerun.status_code == 202, rerun.get_body()
    second = body_of(rerun)
    assert second["rerunOf"] == run["id"] and second["parameters"] == {"data": DATA + "c/"}
    assert second["upstreamRunId"] == job_name(second["id"]) != run["upstreamRunId"]
    assert get(run["id"])["rerunBy"] == second["id"]
    problem(post("rerun", second["id"], {}), 409, "run-in-progress")
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    refused = problem(post("rerun", second["id"], {"startFromFailure": True}), 422, "validation")
    assert refused["errors"][0]["field"] == "startFromFailure"


def test_inputs_are_checked_against_the_template(context: AppContext, aml: str) -> None:
    cases = [
        ({"inputs": {"data": "azureml://datastores/secret/paths/x/"}}, "inputs.data"),
        ({"inputs": {"data": 3}}, "inputs.data"),
        ({"inputs": {"epochs": 3}}, "inputs.epochs"),
        ({"inputs": {"data": DATA + "../../secret/"}}, "inputs.data"),
        ({"inputs": {"data": DATA + "x/?sig=abc"}}, "inputs.data"),
    ]
    for body, field in cases:
        document = problem(start_job(aml, "train_model", body), 422, "validation")
        assert [e["field"] for e in document["errors"]] == [field], body
    problem(start_job(aml, "train_model", {"inputs": {"bad name": 1}}), 422, "validation")
    problem(start_job(aml, "no_such_template"), 403, "not-allowed")
    problem(start_job(aml, "bad/name"), 422, "invalid-name")


@pytest.fixture
def restricted(context: AppContext, stack: OfflineStack, names: dict[str, str], aml: str) -> AppContext:
    catalog = catalog_for(stack.emulator.info)
    for target in catalog["targets"]:
        if target["name"] == aml:
            for template in target["jobs"]:
                template["products"] = ["data-science"]
    return install_context(stack, names, settings={"GATEWAY_CATALOG": json.dumps(catalog)})


def test_another_product_can_neither_start_nor_see_nor_steer_a_job(
    restricted: AppContext, stack: OfflineStack, aml: str
) -> None:
    science = {"x-apim-product-id": "data-science"}
    problem(start_job(aml, "train_model", None, {"x-apim-product-id": "erp"}), 403, "not-allowed")
    run = body_of(start_job(aml, "train_model", None, science))
    erp = {"x-apim-product-id": "erp"}
    route = {"id": run["id"]}
    seen = call("get_run", http_request("GET", f"runs/{run['id']}", None, erp, route_params=route))
    cancel = call("cancel_run", http_request("POST", f"runs/{run['id']}/cancel", {}, erp, route_params=route))
    rerun = call("rerun", http_request("POST", f"runs/{run['id']}/rerun", {}, erp, route_params=route))

    assert seen.status_code == cancel.status_code == rerun.status_code == 404
    own = body_of(call("get_run", http_request("GET", f"runs/{run['id']}", None, science, route_params=route)))
    assert own["status"] in (RunStatus.QUEUED, RunStatus.IN_PROGRESS), "the job was not touched"


def test_pipeline_rules_show_no_job_template_fields(context: AppContext, adf: str) -> None:
    response = call("get_target", http_request("GET", f"targets/{adf}", route_params={"target": adf}))
    rules = body_of(response)["target"]["pipelines"]
    assert rules and all(set(rule) == {"match", "maxDurationMinutes"} for rule in rules)


def test_the_target_shows_its_templates_and_the_inputs_callers_may_set(context: AppContext, aml: str) -> None:
    response = call("get_target", http_request("GET", f"targets/{aml}", route_params={"target": aml}))
    assert response.status_code == 200, response.get_body()
    document = body_of(response)
    templates = {t["match"]: t for t in document["target"]["jobs"]}
    assert templates["score_batch"]["jobType"] == "Pipeline"
    assert templates["train_model"]["inputs"]["data"] == {
        "type": "uri_folder",
        "default": DATA + "sales/",
        "allowedPrefixes": [DATA],
    }
    checks = {c["name"]: c for c in document["checks"]}
    assert checks["workspace"]["ok"] and checks["workspace"]["facts"]["publicNetworkAccess"] == "Enabled"
    assert checks["jobs"]["ok"] and checks["runHistory"]["ok"]


def test_the_api_version_is_a_setting_and_the_newest_stable_one_works(
    context: AppContext, stack: OfflineStack, names: dict[str, str], aml: str
) -> None:
    install_context(stack, names, settings={"GATEWAY_ML_API_VERSION": "2026-07-01"})
    response = start_job(aml, "train_model")
    assert response.status_code == 202, response.get_body()
    assert jobs(stack, body_of(response)["upstreamRunId"])


def _with_retry(stack: OfflineStack, names: dict[str, str], aml: str, on: dict[str, Any]) -> AppContext:
    catalog = catalog_for(stack.emulator.info)
    for target in catalog["targets"]:
        if target["name"] == aml:
            target["retry"] = {"attempts": 2, "delaySeconds": 0, "on": on}
    return install_context(stack, names, settings={"GATEWAY_CATALOG": json.dumps(catalog)})


def test_a_failed_step_the_retry_policy_matches_is_rerun_as_a_new_job_and_nobody_is_paged(
    context: AppContext, stack: OfflineStack, names: dict[str, str], aml: str
) -> None:
    retrying = _with_retry(stack, names, aml, {"failureTypes": ["UserError"]})
    run = body_of(start_job(aml, "score_batch"))
    stack.emulator.clock.advance(FINISH)

    Poller(retrying).tick()

    first = retrying.registry.get(run["id"])
    assert first.status == RunStatus.FAILED and first.rerun_by
    retry = retrying.registry.get(first.rerun_by)
    assert retry.kind == "machinelearning" and retry.pipeline == "score_batch" and retry.attempt == 2
    assert retry.upstream_run_id == job_name(retry.id) and jobs(stack, retry.upstream_run_id)
    assert retrying.alerts.peek() == [], "retries remain: no page"


def test_a_failed_step_the_policy_does_not_match_is_paged_at_once(
    context: AppContext, stack: OfflineStack, names: dict[str, str], aml: str
) -> None:
    retrying = _with_retry(stack, names, aml, {"failureTypes": ["SystemError"]})
    run = body_of(start_job(aml, "score_batch"))
    stack.emulator.clock.advance(FINISH)

    Poller(retrying).tick()

    assert retrying.registry.get(run["id"]).rerun_by is None
    (alert,) = retrying.alerts.peek()
    assert alert["runId"] == run["id"] and "failed at step score" in alert["summary"]


def test_a_failed_command_job_alerts_with_its_error_and_log_and_its_category_drives_retries(
    context: AppContext, stack: OfflineStack, names: dict[str, str]
) -> None:
    run = body_of(start_job("secure-aml", "fit_model"))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    (alert,) = context.alerts.peek()
    assert alert["summary"].startswith(f"Azure ML secure-aml/fit_model job {run['upstreamRunId']} failed on ")
    assert alert["summary"].endswith("Compute node lost: the job's node was preempted.")
    assert alert["errors"] == ["SystemError: Compute node lost: the job's node was preempted."]
    assert alert["logName"] == "user_logs/std_log.txt" and "Node preempted" in alert["driverLogTail"]

    retrying = _with_retry(stack, names, "secure-aml", {"failureTypes": ["SystemError"]})
    again = body_of(start_job("secure-aml", "fit_model"))
    stack.emulator.clock.advance(FINISH)
    Poller(retrying).tick()
    assert retrying.registry.get(again["id"]).rerun_by, "the job's own error category matched the policy"
