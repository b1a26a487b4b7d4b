"""Automatic retries (issue #18): a failed run is rerun by its policy, and on-call hears one story.

Besides the sample's pipeline that fails once with a SystemError then succeeds (``load_inventory``)
and its UserError (``copy_sales``), the stack here has one that always fails with a SystemError
(``sync_partners``), one that runs long (``slow_export``) and a Synapse pipeline that fails once in its
middle activity (``load_events``). The poller's clock is injected where a delay matters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from offline.emulator import ActivitySpec, EmulatorConfig, PipelineSpec
from offline.emulator.config import FailureSpec
from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext, set_app_context
from shared.kinds.synapse import SYNAPSE
from shared.poller.poller import Poller
from shared.poller.retries import Retries
from shared.runs.model import RetryState, Run, RunStatus, utcnow
from shared.runs.service import RunService
from tests.conftest import body_of, install, own_stack, start
from tests.integration.test_spark_cancel_rerun import BATCH, get, post, submit

FINISH = 30
TIMED_OUT = (
    "Error calling the endpoint 'https://erp.contoso.example/api/partners'. Response status code: 'NA - Unknown'. "
    "More details: Exception message: 'NA - Unknown [ClientSideException] The operation has timed out.'"
)
SYSTEM_ERROR = {"failureTypes": ["SystemError"]}


def retry_config() -> EmulatorConfig:
    sample = EmulatorConfig.default()
    factory, workspace = sample.factories[0], sample.workspaces[0]
    broken = PipelineSpec(
        "sync_partners",
        outcome="Failed",
        activities=(ActivitySpec("SyncPartners", "Copy"),),
        failure=FailureSpec("SyncPartners", "2108", TIMED_OUT, "SystemError"),
        recover_on_rerun=False,
    )
    slow = PipelineSpec("slow_export", queue_s=5, duration_s=600, activities=(ActivitySpec("Export", "Copy"),))
    events = PipelineSpec(
        "load_events",
        outcome="Failed",
        activities=(
            ActivitySpec("Ingest", "SynapseNotebook"),
            ActivitySpec("Transform", "SynapseNotebook"),
            ActivitySpec("Publish", "SynapseNotebook"),
        ),
        failure=FailureSpec("Transform", "6002", "Spark session lost its executors.", "SystemError"),
        failures=1,
    )
    return replace(
        sample,
        factories=(replace(factory, pipelines=(*factory.pipelines, broken, slow)),),
        workspaces=(replace(workspace, pipelines=(*workspace.pipelines, events)),),
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("retry-stack"), retry_config()) as started:
        yield started


def with_retry(stack: OfflineStack, names: dict[str, str], **policy: Any) -> AppContext:
    """A context whose every pipeline and Spark pool has ``policy`` (the targets' default)."""
    catalog = catalog_for(stack.emulator.info)
    for target in catalog["targets"]:
        target["retry"] = policy
    return install(stack, names, catalog)


@pytest.fixture(autouse=True)
def clean(stack: OfflineStack) -> Iterator[None]:
    stack.emulator.faults.clear()
    yield
    set_app_context(None)


def started(target: str, pipeline: str, **body: Any) -> dict[str, Any]:
    response = start(target, pipeline, body)
    assert response.status_code == 202, response.get_body()
    return dict(body_of(response))


def azure_runs(stack: OfflineStack, pipeline: str) -> list[dict[str, Any]]:
    return [r for r in stack.emulator.runs() if r.get("pipeline") == pipeline]


def clock_at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_a_matching_failure_is_rerun_from_the_failure_and_nobody_is_paged(
    stack: OfflineStack, names: dict[str, str], adf: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0, on=SYSTEM_ERROR)
    first = started(adf, "load_inventory", parameters={"store": "17"})
    assert (first["attempt"], first["maxAttempts"], first["nextRetryAt"]) == (1, 3, None)
    stack.emulator.clock.advance(FINISH)

    with caplog.at_level(logging.WARNING, logger="shared.poller.retries"):
        Poller(context).tick()

    root = context.registry.get(first["id"])
    assert (root.status, root.retry_state) == (RunStatus.FAILED, RetryState.RETRIED)
    retrying = [r for r in caplog.records if getattr(r, "gateway_retry", None) == "scheduled"]
    assert len(retrying) == 1 and "failed (attempt 1 of 3); retrying at" in retrying[0].getMessage()
    assert root.failure.startswith("CopyInventory (SystemError 2108): Error calling the endpoint")
    retry = context.registry.get(root.rerun_by or "")
    assert (retry.attempt, retry.max_attempts, retry.retry_root, retry.rerun_of) == (2, 3, root.id, root.id)
    assert retry.options == {
        "referencePipelineRunId": root.upstream_run_id,
        "isRecovery": True,
        "startFromFailure": True,
    }
    assert retry.correlation_id == f"{root.correlation_id}.retry2" and retry.caller == root.caller
    original, recovery = azure_runs(stack, "load_inventory")
    assert recovery["runGroupId"] == original["runGroupId"] and recovery["createCorrelationId"] == retry.correlation_id
    assert context.registry.is_live(retry) and not context.registry.is_live(root)

    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    assert context.alerts.peek() == []
    view = get(root.id)
    assert view["finalStatus"] == RunStatus.SUCCEEDED and [link["id"] for link in view["chain"]] == [root.id, retry.id]
    assert (get(retry.id)["attempt"], get(retry.id)["status"]) == (2, RunStatus.SUCCEEDED)
    assert len(azure_runs(stack, "load_inventory")) == 2


def test_a_failure_the_policy_does_not_retry_is_paged_at_once(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0, on=SYSTEM_ERROR)
    failed = started(adf, "copy_sales")  # UserError
    stack.emulator.clock.advance(FINISH)

    Poller(context).tick()
    Poller(context).tick()

    (alert,) = context.alerts.peek()
    assert alert["alertId"] == f"{failed['id']}:failed" and "failed at activity CopySales" in alert["summary"]
    assert (alert["attempt"], alert["maxAttempts"], len(alert["attempts"])) == (1, 3, 1)
    assert alert["attempts"][0]["failure"].startswith("CopySales (UserError 2200): ErrorCode=SqlFailedToConnect")
    assert context.registry.get(failed["id"]).rerun_by is None and get(failed["id"])["finalStatus"] == "Failed"
    assert len([r for r in azure_runs(stack, "copy_sales") if r["runId"] == failed["upstreamRunId"]]) == 1


def test_each_retry_waits_its_backoff(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=10, backoff=3, maxDelaySeconds=20)
    first = started(adf, "sync_partners")
    stack.emulator.clock.advance(FINISH)
    failed_at = utcnow()

    Poller(context, now=clock_at(failed_at)).tick()

    scheduled = context.registry.get(first["id"])
    assert scheduled.retry_state == RetryState.SCHEDULED and scheduled.next_retry_at == failed_at + timedelta(
        seconds=10
    )
    assert get(first["id"])["nextRetryAt"] is not None and "finalStatus" not in get(first["id"])
    Poller(context, now=clock_at(failed_at + timedelta(seconds=9))).tick()
    assert context.registry.get(first["id"]).rerun_by is None and len(azure_runs(stack, "sync_partners")) == 1

    Poller(context, now=clock_at(failed_at + timedelta(seconds=10))).tick()
    second = context.registry.get(context.registry.get(first["id"]).rerun_by or "")
    stack.emulator.clock.advance(FINISH)
    failed_again = failed_at + timedelta(minutes=1)
    Poller(context, now=clock_at(failed_again)).tick()

    again = context.registry.get(second.id)
    assert again.next_retry_at == failed_again + timedelta(seconds=20), "10 s x 3 is capped at maxDelaySeconds"
    assert context.alerts.peek() == []


def test_exhausted_retries_page_once_listing_every_attempt(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0, on=SYSTEM_ERROR)
    first = started(adf, "sync_partners", parameters={"region": "emea"})
    for _ in range(3):
        stack.emulator.clock.advance(FINISH)
        Poller(context).tick()
    Poller(context).tick()

    (alert,) = context.alerts.peek()
    chain = get(first["id"])["chain"]
    last = chain[-1]["id"]
    assert len(chain) == 3 and alert["runId"] == last and alert["alertId"] == f"{first['id']}:failed"
    assert " failed 3 times, last at activity SyncPartners on " in alert["summary"]
    assert [a["attempt"] for a in alert["attempts"]] == [1, 2, 3]
    assert [a["runId"] for a in alert["attempts"]] == [link["id"] for link in chain]
    assert all(a["failure"].startswith("SyncPartners (SystemError 2108): Error calling") for a in alert["attempts"])
    assert alert["previousRuns"] == [] and alert["firstFailure"] is True, "the chain's own runs are not history"
    assert get(first["id"])["finalStatus"] == RunStatus.FAILED
    groups = {r["runGroupId"] for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "emea"}}
    assert len(groups) == 1


def test_cancelling_during_the_delay_cancels_the_retry_and_pages(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=600)
    first = started(adf, "sync_partners", parameters={"region": "apac"})
    stack.emulator.clock.advance(FINISH)
    failed_at = utcnow()
    Poller(context, now=clock_at(failed_at)).tick()
    assert get(first["id"])["nextRetryAt"] is not None

    cancelled = post("cancel_run", first["id"])
    assert cancelled.status_code == 202 and body_of(cancelled)["nextRetryAt"] is None
    assert post("cancel_run", first["id"]).status_code == 202  # twice is harmless
    Poller(context, now=clock_at(failed_at + timedelta(seconds=601))).tick()

    record = context.registry.get(first["id"])
    assert (record.retry_state, record.rerun_by) == (RetryState.CANCELLED, None)
    assert len([r for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "apac"}]) == 1
    (alert,) = context.alerts.peek()
    assert "failed (its retry was cancelled by direct) at activity SyncPartners" in alert["summary"]


def test_a_cancelled_run_is_never_retried(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0)
    run = started(adf, "slow_export")
    assert post("cancel_run", run["id"]).status_code == 202
    stack.emulator.clock.advance(FINISH)

    Poller(context).tick()
    Poller(context).tick()

    record = context.registry.get(run["id"])
    assert (record.status, record.rerun_by, record.retry_state) == (RunStatus.CANCELLED, None, None)
    assert context.alerts.peek() == [] and len(azure_runs(stack, "slow_export")) == 1


def test_a_crash_between_scheduling_and_submitting_neither_loses_nor_doubles_the_retry(
    stack: OfflineStack, names: dict[str, str], adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0)
    first = started(adf, "sync_partners", parameters={"region": "latam"})
    stack.emulator.clock.advance(FINISH)
    original = RunService.rerun

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the poller's process died")

    monkeypatch.setattr(RunService, "rerun", crash)
    with pytest.raises(RuntimeError):
        Poller(context).tick()
    scheduled = context.registry.get(first["id"])
    assert scheduled.retry_state == RetryState.SCHEDULED and scheduled.rerun_by is None

    monkeypatch.setattr(RunService, "rerun", original)
    Poller(context).tick()  # a new process finds the schedule on the record
    Poller(context).tick()

    ours = [r for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "latam"}]
    assert len(ours) == 2 and len(get(first["id"])["chain"]) == 2


def test_a_crash_after_submitting_resubmits_nothing(
    stack: OfflineStack, names: dict[str, str], adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=0)
    first = started(adf, "sync_partners", parameters={"region": "nordics"})
    stack.emulator.clock.advance(FINISH)
    original = Retries._retire

    def crash(self: Retries, run: Run, rerun_id: str) -> None:
        raise RuntimeError("the poller's process died")

    monkeypatch.setattr(Retries, "_retire", crash)
    with pytest.raises(RuntimeError):
        Poller(context).tick()
    monkeypatch.setattr(Retries, "_retire", original)
    Poller(context).tick()

    root = context.registry.get(first["id"])
    assert root.retry_state == RetryState.RETRIED and not context.registry.is_live(root)
    ours = [r for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "nordics"}]
    assert len(ours) == 2 and [link["id"] for link in get(root.id)["chain"]] == [root.id, root.rerun_by]


def test_two_pollers_at_once_submit_the_retry_once(
    stack: OfflineStack, names: dict[str, str], adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=10)
    first = started(adf, "sync_partners", parameters={"region": "dach"})
    stack.emulator.clock.advance(FINISH)
    failed_at = utcnow()
    Poller(context, now=clock_at(failed_at)).tick()
    both = threading.Barrier(2, timeout=20)
    original = RunService.rerun

    def together(self: RunService, *args: Any, **kwargs: Any) -> Any:
        both.wait()  # both pollers decided to submit: now they race
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunService, "rerun", together)
    due = clock_at(failed_at + timedelta(seconds=11))
    pollers = [threading.Thread(target=Poller(context, now=due).poll_target, args=(adf,)) for _ in range(2)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join(timeout=60)

    ours = [r for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "dach"}]
    assert len(ours) == 2, "the first run and one retry, however the race went"
    reruns, _ = context.registry.list_runs(target=adf, pipeline="sync_partners", limit=50)
    retries = [r for r in reruns if r.rerun_of == first["id"] and r.status != RunStatus.REJECTED]
    assert len(retries) == 1 and context.registry.get(first["id"]).rerun_by == retries[0].id


def test_a_rerun_by_hand_while_a_retry_waits_takes_its_place(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=3, delaySeconds=600)
    first = started(adf, "sync_partners", parameters={"region": "benelux"})
    stack.emulator.clock.advance(FINISH)
    failed_at = utcnow()
    Poller(context, now=clock_at(failed_at)).tick()

    by_hand = body_of(post("rerun", first["id"], {"startFromFailure": True}))
    Poller(context, now=clock_at(failed_at + timedelta(seconds=601))).tick()

    ours = [r for r in azure_runs(stack, "sync_partners") if r["parameters"] == {"region": "benelux"}]
    assert len(ours) == 2 and context.registry.get(first["id"]).rerun_by == by_hand["id"]
    assert by_hand["attempt"] == 1, "a person's rerun begins a chain of its own"


def test_a_synapse_pipeline_is_rerun_from_its_failed_activity(
    stack: OfflineStack, names: dict[str, str], synapse: str
) -> None:
    context = with_retry(stack, names, attempts=2, delaySeconds=0, on=SYSTEM_ERROR)
    first = started(synapse, "load_events")
    stack.emulator.clock.advance(FINISH)

    Poller(context).tick()

    retry = context.registry.get(context.registry.get(first["id"]).rerun_by or "")
    assert retry.options["startActivityName"] == "Transform" and retry.options["isRecovery"] is True
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert context.registry.get(retry.id).status == RunStatus.SUCCEEDED and context.alerts.peek() == []
    target = context.catalog.get(synapse)
    client = SYNAPSE.client(context, target)  # type: ignore[arg-type]
    window = (retry.created_at - timedelta(days=1), utcnow() + timedelta(days=1))
    activities = client.query_activity_runs("load_events", retry.upstream_run_id, *window)
    assert [a.name for a in activities] == ["Transform", "Publish"]


def test_a_spark_batch_is_resubmitted_whole_until_its_attempts_run_out(
    stack: OfflineStack, names: dict[str, str], synapse: str
) -> None:
    context = with_retry(stack, names, attempts=2, delaySeconds=0)
    first = body_of(submit(synapse, "small", {**BATCH, "name": "retried", "file": f"{BATCH['file'][:-3]}_fail.py"}))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    retry = context.registry.get(context.registry.get(first["id"]).rerun_by or "")
    assert retry.parameters == first["parameters"] and retry.options == {} and retry.attempt == 2
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    (alert,) = context.alerts.peek()
    assert alert["alertId"] == f"{first['id']}:failed" and " failed 2 times" in alert["summary"]
    assert alert["errors"] and [a["attempt"] for a in alert["attempts"]] == [1, 2]
    assert alert["attempts"][0]["failure"].startswith("(User Spark_Ambiguous_NonJvmUserApp_ExitWithStatus1): ")


def test_a_policy_that_asks_sends_an_info_alert_for_each_retry(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=2, delaySeconds=0, notify=True)
    first = started(adf, "load_inventory", parameters={"store": "notify"})
    stack.emulator.clock.advance(FINISH)

    Poller(context).tick()  # the notice first...
    Poller(context).tick()  # ...then the retry
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    (notice,) = context.alerts.peek()
    assert notice["kind"] == "retrying" and notice["alertId"] == f"{first['id']}:retrying"
    assert "(attempt 1 of 2); retrying at " in notice["summary"] and notice["nextRetryAt"]
    assert get(first["id"])["finalStatus"] == RunStatus.SUCCEEDED


def test_runs_started_before_the_policy_keep_working(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    context = install(stack, names)
    run = started(adf, "copy_sales")
    assert (run["attempt"], run["maxAttempts"]) == (1, 1)
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    (alert,) = context.alerts.peek()
    assert "attempts" not in alert and alert["alertId"] == f"{run['id']}:failed"
