"""The poller: bulk status per target, outcomes recorded, one alert per failure, state repaired."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.context import AppContext
from shared.errors import StorageUnavailable
from shared.functions.index import user_function
from shared.kinds.datafactory import DATAFACTORY
from shared.poller.poller import Poller
from shared.runs.model import Run, RunStatus, utcnow
from shared.runs.registry import RunRegistry
from tests.conftest import body_of, install_context, start

FINISH = 30  # emulated seconds after which the sample pipelines have ended


def started(target: str, pipeline: str, **body: Any) -> str:
    response = start(target, pipeline, body)
    assert response.status_code == 202, response.get_body()
    return str(body_of(response)["id"])


def alerts(context: AppContext) -> list[dict[str, Any]]:
    return context.alerts.peek()


def test_a_tick_records_outcomes_and_alerts_each_failure_once(
    context: AppContext, stack: OfflineStack, adf: str, synapse: str
) -> None:
    ok = started(adf, "daily_load")
    failed = started(adf, "copy_sales", parameters={"day": "2026-11-21"})
    syn_ok = started(synapse, "refresh_lake")
    syn_failed = started(synapse, "build_marts")
    stack.emulator.clock.advance(FINISH)

    report = Poller(context).tick()

    registry = context.registry
    assert [registry.get(i).status for i in (ok, failed, syn_ok, syn_failed)] == [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
    ]
    assert sum(t.alerts for t in report.targets) == 2
    assert list(registry.live_runs(adf)) == [] and list(registry.live_runs(synapse)) == []
    messages = {m["runId"]: m for m in alerts(context)}
    assert set(messages) == {failed, syn_failed}

    adf_alert = messages[failed]
    assert adf_alert["schemaVersion"] == 1 and adf_alert["alertId"] == f"{failed}:failed"
    assert adf_alert["summary"].startswith(f"ADF {adf}/copy_sales run ")
    assert "failed at activity CopySales on 20" in adf_alert["summary"]
    assert " UTC after " in adf_alert["summary"]
    assert "SqlFailedToConnect" in adf_alert["summary"]
    activity = adf_alert["failedActivities"][0]
    assert (activity["name"], activity["type"], activity["errorCode"], activity["failureType"]) == (
        "CopySales",
        "Copy",
        "2200",
        "UserError",
    )
    assert adf_alert["links"]["studio"].startswith("https://adf.azure.com/en/monitoring/pipelineruns/")
    assert adf_alert["upstreamRunId"] and adf_alert["correlationId"] and adf_alert["start"] and adf_alert["end"]
    assert adf_alert["firstFailure"] is True

    syn_alert = messages[syn_failed]
    assert syn_alert["summary"].startswith(f"Synapse {synapse}/build_marts run ")
    assert syn_alert["failedActivities"][0]["name"] == "BuildSalesMart"
    assert "TABLE_OR_VIEW_NOT_FOUND" in syn_alert["summary"]

    Poller(context).tick()
    assert len(alerts(context)) == 2


def test_a_repeat_failure_says_so(context: AppContext, stack: OfflineStack, adf: str) -> None:
    first = started(adf, "copy_sales")
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    second = started(adf, "copy_sales")
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    latest = next(m for m in alerts(context) if m["runId"] == second)
    assert latest["firstFailure"] is False
    assert latest["previousRuns"][0] == {
        "id": first,
        "status": RunStatus.FAILED,
        "createdAt": latest["previousRuns"][0]["createdAt"],
    }


def test_upstream_calls_grow_with_pages_not_runs(context: AppContext, stack: OfflineStack, adf: str) -> None:
    stack.emulator.set_page_size(10)
    try:
        for index in range(45):
            started(adf, "ingest_orders", parameters={"i": index})
        stack.emulator.clock.advance(FINISH)
        in_window = sum(1 for r in stack.emulator.runs() if r.get("pipeline") == "ingest_orders")
        stack.emulator.reset_counters()
        Poller(context).tick()
        counters = stack.emulator.counters
    finally:
        stack.emulator.set_page_size(100)
    assert counters.get("PipelineRuns_Get", 0) == 0
    assert counters["PipelineRuns_QueryByFactory"] <= math.ceil(in_window / 10) + 1
    assert all(r.status == RunStatus.SUCCEEDED for r in context.registry.list_runs(target=adf, limit=200)[0])


def test_a_crash_between_send_and_flag_resends_the_same_alert(
    context: AppContext, stack: OfflineStack, adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = started(adf, "copy_sales")
    stack.emulator.clock.advance(FINISH)
    original = RunRegistry.save
    crashes = []

    def crash_when_flagging(self: RunRegistry, run: Run, **kwargs: Any) -> Run:
        if run.alerted_at is not None and not crashes:
            crashes.append(run.id)
            raise StorageUnavailable("storage went away")
        return original(self, run, **kwargs)

    monkeypatch.setattr(RunRegistry, "save", crash_when_flagging)
    Poller(context).tick()
    assert crashes == [failed]
    Poller(context).tick()  # another poller leaves the claim of the one that crashed alone...
    assert [m["alertId"] for m in alerts(context)] == [f"{failed}:failed"]
    after_claim = Poller(context, now=lambda: utcnow() + context.settings.alert_claim_ttl + timedelta(seconds=1))
    after_claim.tick()  # ...until it expires, and takes it over with the same alert id
    after_claim.tick()
    ids = [m["alertId"] for m in alerts(context)]
    assert ids == [f"{failed}:failed", f"{failed}:failed"]
    assert context.registry.get(failed).alerted_at is not None


def test_a_lost_create_answer_is_reconciled_without_a_second_run(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    run_id = started(adf, "ingest_customers", parameters={"batch": "b-17"})
    assert context.registry.get(run_id).upstream_run_id is None
    upstream = [r for r in stack.emulator.runs() if r.get("pipeline") == "ingest_customers"]
    Poller(context, submit_grace=timedelta(0)).tick()
    run = context.registry.get(run_id)
    assert run.upstream_run_id == upstream[-1]["runId"]
    assert len([r for r in stack.emulator.runs() if r.get("pipeline") == "ingest_customers"]) == len(upstream)


def test_a_create_that_never_reached_azure_becomes_unknown_and_alerts(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="before", count=1))
    run_id = started(adf, "daily_load", parameters={"never": "started"})
    poller = Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0))
    poller.tick()
    assert context.registry.get(run_id).status == RunStatus.UNKNOWN
    (alert,) = alerts(context)
    assert alert["kind"] == "unknown" and "may not have started" in alert["summary"]


def test_overdue_runs_raise_one_alert_each(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str
) -> None:
    app = install_context(stack, names, pipelines=[{"match": "long_running", "maxDurationMinutes": 1}, "*"])
    run_id = started(adf, "long_running")
    azure_now = lambda: datetime.fromtimestamp(stack.emulator.clock.now(), UTC)  # noqa: E731
    later = Poller(app, now=lambda: azure_now() + timedelta(minutes=2))
    later.tick()
    later.tick()
    (alert,) = alerts(app)
    assert alert["kind"] == "overdue" and "limit 1 min" in alert["summary"]
    assert app.registry.get(run_id).in_flight


@pytest.mark.parametrize("alert_on_cancel", [True, False])
def test_cancelled_runs_alert_as_the_catalog_says(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str, alert_on_cancel: bool
) -> None:
    app = install_context(stack, names, alertOnCancelled=alert_on_cancel)
    run_id = started(adf, "long_running")
    upstream_id = app.registry.get(run_id).upstream_run_id
    assert upstream_id
    DATAFACTORY.client(app, app.catalog.get(adf)).cancel_run(upstream_id, recursive=False)
    stack.emulator.clock.advance(5)
    Poller(app).tick()
    assert app.registry.get(run_id).status == RunStatus.CANCELLED
    assert [m["kind"] for m in alerts(app)] == (["cancelled"] if alert_on_cancel else [])


def test_fan_out_queues_one_message_per_target_and_polls_each(
    stack: OfflineStack, names: dict[str, str], context: AppContext, adf: str
) -> None:
    from function_app import app as function_app

    app = install_context(stack, names, settings={"GATEWAY_POLL_FANOUT": "true"})
    run_id = started(adf, "daily_load")
    stack.emulator.clock.advance(FINISH)
    user_function(function_app, "poll_runs")(object())
    work = app.poll_queue.peek()
    assert sorted(m["target"] for m in work) == sorted(t.name for t in app.catalog.targets)
    assert app.registry.get(run_id).status == RunStatus.QUEUED
    message = func.QueueMessage(id="1", body=json.dumps({"target": adf}).encode())
    user_function(function_app, "poll_target")(message)
    assert app.registry.get(run_id).status == RunStatus.SUCCEEDED


def test_an_alert_goes_out_even_when_activity_details_cannot_be_read(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    failed = started(adf, "copy_sales")
    stack.emulator.clock.advance(FINISH)
    stack.emulator.faults.add(Fault(route="ActivityRuns_QueryByPipelineRun", kind="status", status=403))
    try:
        Poller(context).tick()
    finally:
        stack.emulator.faults.clear()
    (alert,) = alerts(context)
    assert alert["runId"] == failed and alert["failedActivities"] == []
    assert "Operation on target CopySales failed" in alert["summary"]


def test_a_crash_after_azure_accepted_the_run_is_repaired_by_the_next_tick(
    context: AppContext, stack: OfflineStack, adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process records Submitting, Azure starts the run, then storage fails before the record is
    completed: the caller still gets the run, and the poller completes the record."""
    original = RunRegistry.save

    def storage_gone(self: RunRegistry, run: Run, **kwargs: Any) -> Run:
        raise StorageUnavailable("storage went away")

    monkeypatch.setattr(RunRegistry, "save", storage_gone)
    response = start(adf, "ingest_customers", {"parameters": {"batch": "after-crash"}})
    monkeypatch.setattr(RunRegistry, "save", original)
    assert response.status_code == 202
    answered = body_of(response)
    assert answered["upstreamRunId"]
    recorded = context.registry.get(answered["id"])
    assert recorded.status == RunStatus.SUBMITTING and recorded.upstream_run_id is None
    Poller(context, submit_grace=timedelta(0)).tick()
    assert context.registry.get(answered["id"]).upstream_run_id == answered["upstreamRunId"]


def test_a_tick_out_of_time_changes_nothing_and_the_next_tick_finishes(
    context: AppContext, stack: OfflineStack, adf: str, synapse: str
) -> None:
    runs = [started(adf, "daily_load"), started(adf, "copy_sales"), started(synapse, "refresh_lake")]
    stack.emulator.clock.advance(FINISH)
    report = Poller(context).tick(budget_seconds=0)
    assert report.out_of_time or sum(t.skipped for t in report.targets) > 0
    assert [context.registry.get(i).status for i in runs] == [RunStatus.QUEUED] * 3
    assert alerts(context) == []
    Poller(context).tick()
    assert [context.registry.get(i).status for i in runs] == [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
    ]
    assert len(alerts(context)) == 1
