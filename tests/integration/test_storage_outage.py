"""Storage outages: a start is refused cleanly, a tick leaves nothing half-done, and both recover."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from offline.stack import OfflineStack
from shared.config.settings import Settings
from shared.context import AppContext, set_app_context
from shared.poller.poller import Poller
from shared.runs.model import RunStatus, utcnow
from tests.conftest import body_of, integration_config, start


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    """A stack of this module's own: its Azurite is stopped and started by the tests."""
    saved = dict(os.environ)
    with OfflineStack(tmp_path_factory.mktemp("outage"), emulator_config=integration_config()) as stack:
        stack.apply_environment()
        yield stack
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def app(own_stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    context = AppContext(Settings({**own_stack.environment(), **os.environ, **names}))
    set_app_context(context)
    context.registry  # noqa: B018 - tables and queues exist before the outage
    context.alerts  # noqa: B018
    yield context
    set_app_context(None)
    if not own_stack.azurite.is_running():
        own_stack.azurite.start()


def test_a_start_during_an_outage_is_refused_and_starts_nothing(app: AppContext, own_stack: OfflineStack) -> None:
    adf = own_stack.emulator.info["factories"][0]["name"]
    before = len(own_stack.emulator.runs())
    own_stack.azurite.stop()
    response = start(adf, "daily_load")
    assert response.status_code == 503
    assert body_of(response)["type"].endswith("/storage-unavailable")
    assert len(own_stack.emulator.runs()) == before
    own_stack.azurite.start()
    assert start(adf, "daily_load").status_code == 202


def test_a_tick_during_an_outage_changes_nothing_and_the_next_one_finishes(
    app: AppContext, own_stack: OfflineStack
) -> None:
    adf = own_stack.emulator.info["factories"][0]["name"]
    failed = body_of(start(adf, "copy_sales"))["id"]
    own_stack.emulator.clock.advance(30)
    own_stack.azurite.stop()
    report = Poller(app).tick()
    assert all(t.error for t in report.targets)
    own_stack.azurite.start()
    assert app.registry.get(failed).status == RunStatus.QUEUED
    assert app.alerts.peek() == []
    Poller(app).tick()
    assert app.registry.get(failed).status == RunStatus.FAILED
    assert [m["runId"] for m in app.alerts.peek()] == [failed]


def test_an_outage_between_send_and_flag_resends_the_same_alert(
    app: AppContext, own_stack: OfflineStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.azure.queues import JsonQueue

    adf = own_stack.emulator.info["factories"][0]["name"]
    failed = body_of(start(adf, "copy_sales"))["id"]
    own_stack.emulator.clock.advance(30)
    send = JsonQueue.send

    def send_then_lose_storage(self: JsonQueue, message: dict[str, object]) -> None:
        send(self, message)
        own_stack.azurite.stop()

    monkeypatch.setattr(JsonQueue, "send", send_then_lose_storage)
    Poller(app).tick()
    monkeypatch.setattr(JsonQueue, "send", send)
    own_stack.azurite.start()
    after_claim = Poller(
        app, now=lambda: utcnow() + app.settings.alert_claim_ttl + timedelta(seconds=1)
    )  # the claim expired
    after_claim.tick()
    after_claim.tick()
    assert [m["alertId"] for m in app.alerts.peek()] == [f"{failed}:failed"] * 2
    assert app.registry.get(failed).alerted_at is not None


def test_restarted_azurite_keeps_the_registry(app: AppContext, own_stack: OfflineStack, tmp_path: Path) -> None:
    adf = own_stack.emulator.info["factories"][0]["name"]
    run_id = body_of(start(adf, "daily_load"))["id"]
    own_stack.azurite.restart()
    assert app.registry.get(run_id).id == run_id
