"""A run in Azure is attributed to a gateway record only when it provably is that record's; alerts are
sent once however many pollers overlap; a lost write race is not an outage.

Each test gives its starts a parameter value of its own: the emulator outlives the test, and runs of
the same pipeline other tests started must not be mistaken for this test's.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.azure.queues import JsonQueue
from shared.azure.storage import AlreadyExists, ConcurrentUpdate
from shared.context import AppContext
from shared.kinds.datafactory import DATAFACTORY
from shared.kinds.pipelines import StartOptions
from shared.kinds.spark import RUN_ID_TAG, SPARK
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from shared.runs.registry import RunRegistry
from tests.conftest import body_of, call, http_request, install_context, start

FINISH = 30  # emulated seconds after which the sample pipelines have ended
BATCH = {"name": "enrich", "file": "abfss://jobs@lake.dfs.core.windows.net/enrich.py"}


def started(target: str, pipeline: str, **body: Any) -> str:
    response = start(target, pipeline, body)
    assert response.status_code == 202, response.get_body()
    return str(body_of(response)["id"])


def upstream_runs(stack: OfflineStack, pipeline: str, parameters: dict[str, str]) -> list[str]:
    return [
        str(r["runId"])
        for r in stack.emulator.runs()
        if r.get("pipeline") == pipeline and all(r.get("parameters", {}).get(k) == v for k, v in parameters.items())
    ]


def probe() -> dict[str, str]:
    return {"probe": uuid.uuid4().hex}


def test_a_lost_create_answer_takes_its_own_run_not_an_earlier_finished_one(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    parameters = probe()
    first = started(adf, "copy_sales", parameters=parameters)
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert not context.registry.is_live(context.registry.get(first)), "the first run ended and was alerted"
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))

    second = started(adf, "copy_sales", parameters=parameters)
    (_, its_run) = upstream_runs(stack, "copy_sales", parameters)
    Poller(context, submit_grace=timedelta(0)).tick()

    assert context.registry.get(second).upstream_run_id == its_run
    assert context.registry.get(first).upstream_run_id != its_run


def test_a_start_that_never_reached_azure_is_not_given_an_earlier_run(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    parameters = probe()
    first = started(synapse, "refresh_lake", parameters=parameters)
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert context.registry.get(first).status == RunStatus.SUCCEEDED
    stack.emulator.faults.add(Fault(route="Pipeline_CreatePipelineRun", kind="drop", when="before", count=1))

    lost = started(synapse, "refresh_lake", parameters=parameters)
    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()

    run = context.registry.get(lost)
    assert run.status == RunStatus.UNKNOWN and run.upstream_run_id is None
    assert len(upstream_runs(stack, "refresh_lake", parameters)) == 1


def test_a_start_without_parameters_matches_only_runs_without_parameters(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    parameters = probe()
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="before", count=1))
    lost = started(adf, "ingest_customers", parameters=parameters)
    client = DATAFACTORY.client(context, context.catalog.get(adf))
    client.create_run("ingest_customers", {**parameters, "extra": "1"}, StartOptions())  # a superset: not ours

    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()

    assert context.registry.get(lost).upstream_run_id is None


def test_several_matching_runs_make_the_record_unknown_naming_them(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    parameters = probe()
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="before", count=1))
    lost = started(adf, "ingest_customers", parameters=parameters)
    client = DATAFACTORY.client(context, context.catalog.get(adf))
    rivals = [client.create_run("ingest_customers", parameters, StartOptions()).run_id for _ in range(2)]

    Poller(context, submit_grace=timedelta(0)).tick()

    run = context.registry.get(lost)
    assert run.status == RunStatus.UNKNOWN and run.upstream_run_id is None
    assert all(rival in run.message for rival in rivals), run.message
    (alert,) = [a for a in context.alerts.peek() if a["runId"] == lost]
    assert alert["kind"] == "unknown" and all(rival in alert["summary"] for rival in rivals)


def test_a_correlation_parameter_proves_which_run_is_the_records(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    app = install_context(
        stack, names, pipelines=[{"match": "ingest_customers", "correlationParameter": "gatewayRunId"}, "*"]
    )
    parameters = probe()
    client = DATAFACTORY.client(app, app.catalog.get(adf))
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    lost = started(adf, "ingest_customers", parameters=parameters)
    rivals = [client.create_run("ingest_customers", parameters, StartOptions()).run_id for _ in range(2)]
    (its_run,) = upstream_runs(stack, "ingest_customers", {**parameters, "gatewayRunId": lost})

    Poller(app, submit_grace=timedelta(0)).tick()

    run = app.registry.get(lost)
    assert run.upstream_run_id == its_run and its_run not in rivals
    assert run.correlation_parameter == "gatewayRunId" and run.parameters["gatewayRunId"] == lost
    refused = start(adf, "ingest_customers", {"parameters": {"gatewayRunId": "mine"}})
    assert refused.status_code == 422 and "set by the gateway" in body_of(refused)["detail"]


def test_a_lost_spark_batch_in_the_middle_of_a_busy_pool_is_found_by_its_tag(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    client = SPARK.client(context, context.catalog.get(synapse), "small")
    for index in range(30):
        client.create_batch({**BATCH, "name": f"other-{index}"})
    stack.emulator.faults.add(Fault(route="SparkBatch_CreateSparkBatchJob", kind="drop", when="after", count=1))
    response = call(
        "start_spark_batch",
        http_request(
            "POST",
            f"targets/{synapse}/sparkpools/small/batches",
            BATCH,
            route_params={"target": synapse, "pool": "small"},
        ),
    )
    assert response.status_code == 202, response.get_body()
    lost = body_of(response)["id"]
    for index in range(41):
        client.create_batch({**BATCH, "name": f"later-{index}"})
    _, total = client.list_batches(0)
    pool = [batch for start in range(0, total, 20) for batch in client.list_batches(start)[0]]
    (its_batch,) = [batch for batch in pool if batch.tags.get(RUN_ID_TAG) == lost]
    assert 20 <= pool.index(its_batch) < total - 20, "neither on the first page nor on the last"

    Poller(context, submit_grace=timedelta(0)).tick()

    assert context.registry.get(lost).upstream_run_id == str(its_batch.id)


def test_a_poller_leaves_an_alert_another_poller_is_sending(
    context: AppContext, stack: OfflineStack, adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = started(adf, "copy_sales", parameters=probe())
    stack.emulator.clock.advance(FINISH)
    send = JsonQueue.send
    overlapped: list[str] = []

    def send_while_another_polls(self: JsonQueue, message: dict[str, object]) -> None:
        if not overlapped:
            overlapped.append(str(message["alertId"]))
            Poller(context).tick()  # a second poller, while the first is between claim and send
        send(self, message)

    monkeypatch.setattr(JsonQueue, "send", send_while_another_polls)
    Poller(context).tick()

    assert overlapped == [f"{failed}:failed"]
    assert [a["alertId"] for a in context.alerts.peek() if a["runId"] == failed] == [f"{failed}:failed"]


def test_a_row_another_writer_moved_is_a_lost_race_not_an_outage(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    run_id = started(adf, "daily_load", parameters=probe())
    stale = context.registry.get(run_id)
    context.registry.save(stale.evolve(status=RunStatus.SUCCEEDED), keep_live=False)

    with pytest.raises(ConcurrentUpdate):
        context.registry.save(stale.evolve(message="written from an old read"))


def test_a_tick_goes_on_with_its_other_runs_when_another_poller_moved_one(
    context: AppContext, stack: OfflineStack, adf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = started(adf, "daily_load", parameters=probe())
    failed = started(adf, "copy_sales", parameters=probe())
    stack.emulator.clock.advance(FINISH)
    snapshot = list(context.registry.live_runs(adf))
    other = context.registry.get(moved)
    context.registry.save(other.evolve(status=RunStatus.SUCCEEDED), keep_live=False)  # another poller's work
    monkeypatch.setattr(RunRegistry, "live_runs", lambda self, target: iter(snapshot))

    report = Poller(context).poll_target(adf)

    assert report.error is None and report.skipped >= 1
    assert [a["alertId"] for a in context.alerts.peek() if a["runId"] == failed] == [f"{failed}:failed"]


def test_a_declared_correlation_parameter_proves_the_run_even_when_azure_drops_other_parameters(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    app = install_context(stack, names, pipelines=[{"match": "correlated", "correlationParameter": "gatewayRunId"}])
    parameters = probe()
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    lost = started(adf, "correlated", parameters={**parameters, "undeclared": "dropped by Azure"})
    (its_run,) = upstream_runs(stack, "correlated", {**parameters, "gatewayRunId": lost})

    Poller(app, submit_grace=timedelta(0)).tick()

    assert app.registry.get(lost).upstream_run_id == its_run


def test_two_lost_starts_with_the_same_parameters_do_not_take_each_others_run(
    context: AppContext, stack: OfflineStack, adf: str
) -> None:
    """One create never reached Azure, the other did and lost its answer: one Azure run, two records that
    could each own it. Neither takes it, not even after the other has given up: both end Unknown, and
    the one that gave up first holds the run as contested, naming it and the other record."""
    parameters = probe()
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="before", count=1))
    never_reached = started(adf, "ingest_customers", parameters=parameters)
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    answer_lost = started(adf, "ingest_customers", parameters=parameters)
    (the_run,) = upstream_runs(stack, "ingest_customers", parameters)

    Poller(context, submit_grace=timedelta(0)).tick()
    assert [context.registry.get(r).upstream_run_id for r in (never_reached, answer_lost)] == [None, None]

    Poller(context, submit_grace=timedelta(0), unknown_after=timedelta(0)).tick()
    records = [context.registry.get(r) for r in (never_reached, answer_lost)]
    assert [(r.status, r.upstream_run_id) for r in records] == [(RunStatus.UNKNOWN, None)] * 2
    (holder,) = [r for r in records if r.contested == the_run]
    (other,) = [r for r in records if r is not holder]
    assert the_run in holder.message and other.id in holder.message, holder.message
    key = DATAFACTORY.ownership_key(holder, the_run)
    assert context.registry.owner_of(adf, key) == holder.id


def test_an_azure_answer_outranks_another_records_contest(context: AppContext, stack: OfflineStack, adf: str) -> None:
    contesting = context.registry.get(started(adf, "daily_load", parameters=probe()))
    answered = context.registry.get(started(adf, "daily_load", parameters=probe()))
    key = DATAFACTORY.ownership_key(answered, "9f0e2c1a-0000-4000-8000-000000000001")
    context.registry.save(contesting.evolve(status=RunStatus.UNKNOWN), keep_live=True, owns=[key], contests=True)

    context.registry.save(answered.evolve(message="Azure said so"), owns=key)

    assert context.registry.owner_of(adf, key) == answered.id
    with pytest.raises(AlreadyExists):  # an owner, unlike a contest, is never displaced
        context.registry.save(context.registry.get(contesting.id).evolve(message="guess"), owns=key)


def test_a_correlation_proof_outranks_another_records_contest(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    app = install_context(stack, names, pipelines=[{"match": "correlated", "correlationParameter": "gatewayRunId"}])
    parameters = probe()
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when="after", count=1))
    lost = started(adf, "correlated", parameters=parameters)
    (its_run,) = upstream_runs(stack, "correlated", {**parameters, "gatewayRunId": lost})
    guesser = app.registry.get(started(adf, "correlated", parameters=probe()))
    key = DATAFACTORY.ownership_key(guesser, its_run)
    app.registry.save(guesser.evolve(status=RunStatus.UNKNOWN), keep_live=True, owns=[key], contests=True)

    Poller(app, submit_grace=timedelta(0)).tick()

    assert app.registry.get(lost).upstream_run_id == its_run
    assert app.registry.owner_of(adf, key) == lost
