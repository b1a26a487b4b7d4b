"""Storage lost *while* work is under way: Azurite stopped during a start's create call, during a
poller tick, and while an alert is being built. Each time it comes back, and nothing accepted is lost
and no alert is doubled. (Storage down before a start or a tick, and lost between an alert's send and
its flag, are in tests/integration/test_storage_outage.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import pytest
import requests

from offline.emulator import Fault
from offline.localhost import LocalHost
from offline.stack import OfflineStack
from shared.context import AppContext
from shared.poller.poller import Poller, TickReport
from shared.runs.model import RunStatus, utcnow
from tests.conftest import own_stack

T = TypeVar("T")
FINISH = 30  # emulated seconds after which the sample pipelines have ended


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("storage-faults")) as started:
        yield started


@pytest.fixture
def outage(app: AppContext, stack: OfflineStack) -> Iterator[Callable[[str, Callable[[], T]], T]]:
    """Runs an action whose call to ``route`` is held for a second, and stops Azurite while it is held."""
    app.registry  # noqa: B018 - the table and queue exist before the outage
    app.alerts  # noqa: B018

    def during(route: str, action: Callable[[], T]) -> T:
        stack.emulator.faults.add(Fault(route=route, kind="delay", delay_s=1.0, count=1))
        before = stack.emulator.counters.get(route, 0)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[T] = pool.submit(action)
            deadline = time.monotonic() + 30
            while stack.emulator.counters.get(route, 0) == before:
                assert time.monotonic() < deadline and not pending.done(), f"{route} was never called"
                time.sleep(0.01)
            stack.azurite.stop()
            return pending.result(timeout=60)

    yield during
    if not stack.azurite.is_running():
        stack.azurite.start()


def start(api: requests.Session, host: LocalHost, target: str, pipeline: str, **body: object) -> requests.Response:
    return api.post(f"{host.api_url}/targets/{target}/pipelines/{pipeline}/runs", json=body, timeout=60)


def test_storage_lost_during_the_create_call_keeps_the_run_azure_accepted(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    outage: Callable[[str, Callable[[], requests.Response]], requests.Response],
) -> None:
    """Recorded before the create call, so the outcome's write failing loses nothing: the caller gets
    the run Azure started, and once storage is back the poller completes the record."""
    before = len(stack.emulator.runs())
    response = outage("Pipelines_CreateRun", lambda: start(api, host, adf, "ingest_orders", parameters={"o": 1}))
    assert response.status_code == 202
    answered = response.json()
    assert answered["upstreamRunId"] and answered["status"] == RunStatus.QUEUED
    stack.azurite.start()
    recorded = app.registry.get(answered["id"])
    assert recorded.status == RunStatus.SUBMITTING and recorded.upstream_run_id is None
    Poller(app, submit_grace=timedelta(0)).tick()
    assert app.registry.get(answered["id"]).upstream_run_id == answered["upstreamRunId"]
    assert len(stack.emulator.runs()) == before + 1  # one run, never a second


def test_storage_lost_during_a_tick_changes_nothing_and_the_next_tick_alerts_once(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    outage: Callable[[str, Callable[[], TickReport]], TickReport],
) -> None:
    failed = start(api, host, adf, "copy_sales").json()["id"]
    succeeded = start(api, host, adf, "daily_load").json()["id"]
    stack.emulator.clock.advance(FINISH)
    report = outage("PipelineRuns_QueryByFactory", Poller(app).tick)
    (polled,) = [t for t in report.targets if t.target == adf]
    assert polled.error is not None and polled.updated == 0
    stack.azurite.start()
    assert app.registry.get(failed).status == app.registry.get(succeeded).status == RunStatus.QUEUED
    assert app.alerts.peek() == []
    Poller(app).tick()
    Poller(app).tick()
    assert app.registry.get(failed).status == RunStatus.FAILED
    assert app.registry.get(succeeded).status == RunStatus.SUCCEEDED
    assert [a["alertId"] for a in app.alerts.peek()] == [f"{failed}:failed"]


def test_storage_lost_while_an_alert_is_built_sends_it_once_when_storage_is_back(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    outage: Callable[[str, Callable[[], TickReport]], TickReport],
) -> None:
    """The alert is claimed on the record, then its activity errors are read (held here) while storage
    goes: nothing is sent; the next tick sends it, with the same id, exactly once."""
    failed = start(api, host, adf, "copy_sales").json()["id"]
    stack.emulator.clock.advance(FINISH)
    report = outage("ActivityRuns_QueryByPipelineRun", Poller(app).tick)
    (polled,) = [t for t in report.targets if t.target == adf]
    assert polled.alerts == 0
    stack.azurite.start()
    assert app.alerts.peek() == []
    assert app.registry.get(failed).alerted_at is None
    after_claim = Poller(
        app, now=lambda: utcnow() + app.settings.alert_claim_ttl + timedelta(seconds=1)
    )  # the claim expired
    after_claim.tick()
    after_claim.tick()
    assert [a["alertId"] for a in app.alerts.peek()] == [f"{failed}:failed"]
    assert app.registry.get(failed).alerted_at is not None
