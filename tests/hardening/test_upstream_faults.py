"""Azure misbehaving, through the emulator's faults: expired tokens, 5xx reads, unreadable answers, an
identity endpoint that refuses. (Throttling, lost create answers and an identity endpoint that is down
are in tests/integration/test_start_runs.py and test_poller.py.)

This module's emulator issues ten-minute tokens, so moving its clock past their expiry stays within the
poller's query window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import requests

from offline.emulator import Fault
from offline.localhost import LocalHost
from offline.stack import OfflineStack
from shared.context import AppContext
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.conftest import install, integration_config, own_stack
from tests.hardening.conftest import problem

TOKEN_LIFETIME = 600
ARM = "ManagedIdentity_GetToken:https://management.azure.com"
SYNAPSE = "ManagedIdentity_GetToken:https://dev.azuresynapse.net"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    config = replace(integration_config(), token_lifetime_s=TOKEN_LIFETIME)
    with own_stack(tmp_path_factory.mktemp("upstream-faults"), config) as started:
        yield started


@pytest.fixture
def fresh(stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    """A cold instance: no token cached yet, so token calls can be counted from zero."""
    stack.emulator.faults.clear()
    yield install(stack, names)
    stack.emulator.faults.clear()


def start(api: requests.Session, host: LocalHost, target: str, pipeline: str, **body: object) -> requests.Response:
    return api.post(f"{host.api_url}/targets/{target}/pipelines/{pipeline}/runs", json=body, timeout=60)


def calls(stack: OfflineStack, route: str) -> int:
    return stack.emulator.counters.get(route, 0)


def test_a_token_that_expired_mid_run_is_renewed_without_failing_the_start(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    """The app's cache and azure-identity's still believe the token good (real time has not moved);
    Azure refuses it; the start renews it once and succeeds."""
    assert start(api, host, adf, "daily_load").status_code == 202
    tokens, creates = calls(stack, ARM), calls(stack, "Pipelines_CreateRun")
    stack.emulator.clock.advance(TOKEN_LIFETIME + 60)
    response = start(api, host, adf, "daily_load")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == RunStatus.QUEUED
    assert calls(stack, ARM) == tokens + 1  # exactly one new token
    assert calls(stack, "Pipelines_CreateRun") == creates + 2  # the refused call, then the one that counted
    assert start(api, host, adf, "daily_load").status_code == 202
    assert calls(stack, ARM) == tokens + 1  # and it is cached again


def test_a_poll_after_the_tokens_expired_renews_each_audience_once(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str, synapse: str
) -> None:
    adf_run = start(api, host, adf, "daily_load").json()["id"]
    synapse_run = start(api, host, synapse, "refresh_lake").json()["id"]
    before = {route: calls(stack, route) for route in (ARM, SYNAPSE)}
    stack.emulator.clock.advance(TOKEN_LIFETIME + 60)
    report = Poller(fresh).tick()
    assert [t.error for t in report.targets if t.error] == []
    assert fresh.registry.get(adf_run).status == fresh.registry.get(synapse_run).status == RunStatus.SUCCEEDED
    assert {route: calls(stack, route) - before[route] for route in before} == {ARM: 1, SYNAPSE: 1}


def test_reads_answered_5xx_are_retried_with_backoff_within_the_tick(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    run_id = start(api, host, adf, "daily_load").json()["id"]
    stack.emulator.clock.advance(30)
    stack.emulator.faults.add(Fault(route="PipelineRuns_QueryByFactory", kind="status", status=503, count=1))
    stack.emulator.faults.add(Fault(route="PipelineRuns_QueryByFactory", kind="status", status=500, count=1))
    queries = calls(stack, "PipelineRuns_QueryByFactory")
    report = Poller(fresh).tick()
    assert all(t.error is None for t in report.targets)
    assert calls(stack, "PipelineRuns_QueryByFactory") == queries + 3
    assert fresh.registry.get(run_id).status == RunStatus.SUCCEEDED


def test_reads_that_stay_unavailable_leave_the_run_to_the_next_tick(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    run_id = start(api, host, adf, "copy_sales").json()["id"]
    stack.emulator.clock.advance(30)
    stack.emulator.faults.add(Fault(route="PipelineRuns_QueryByFactory", kind="status", status=503))
    (failed,) = [t for t in Poller(fresh).tick().targets if t.target == adf]
    assert failed.error is not None and "503" in failed.error
    assert fresh.registry.get(run_id).status == RunStatus.QUEUED and fresh.alerts.peek() == []
    stack.emulator.faults.clear()
    Poller(fresh).tick()
    assert fresh.registry.get(run_id).status == RunStatus.FAILED
    assert [a["runId"] for a in fresh.alerts.peek()] == [run_id]


def test_a_create_answered_with_unreadable_json_is_accepted_and_reconciled_to_its_one_run(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    """Azure said 200 but the body cannot be read: the run exists, so the caller gets it (Submitting)
    rather than an error it would retry into a second run, and the poller finds the one Azure started."""
    before = {r["runId"] for r in stack.emulator.runs()}
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="malformed", status=200, when="after", count=1))
    response = start(api, host, adf, "ingest_orders", parameters={"batch": "m-1"})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == RunStatus.SUBMITTING and "unreadable" in run["message"]
    (created,) = [r for r in stack.emulator.runs() if r["runId"] not in before]
    Poller(fresh, submit_grace=timedelta(0)).tick()
    assert fresh.registry.get(run["id"]).upstream_run_id == created["runId"]
    assert len(stack.emulator.runs()) == len(before) + 1


def test_a_cancel_answered_with_unreadable_json_is_a_502_problem_with_azures_request_id(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    run_id = start(api, host, adf, "long_running").json()["id"]
    stack.emulator.faults.add(Fault(route="PipelineRuns_Cancel", kind="malformed", status=200, count=1))
    document = problem(api.post(f"{host.api_url}/runs/{run_id}/cancel", json={}, timeout=60), 502)
    assert document["type"].endswith("/upstream-bad-response") and "not JSON" in document["detail"]
    assert document["upstreamStatus"] == 200 and document["upstreamRequestId"]
    assert api.post(f"{host.api_url}/runs/{run_id}/cancel", json={}, timeout=60).status_code == 202  # retry is safe


def test_an_unreadable_status_read_fails_only_that_tick(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    run_id = start(api, host, adf, "daily_load").json()["id"]
    stack.emulator.clock.advance(30)
    stack.emulator.faults.add(Fault(route="PipelineRuns_QueryByFactory", kind="malformed", status=200, count=1))
    (failed,) = [t for t in Poller(fresh).tick().targets if t.target == adf]
    assert failed.error is not None and "not JSON" in failed.error
    assert fresh.registry.get(run_id).status == RunStatus.QUEUED
    Poller(fresh).tick()
    assert fresh.registry.get(run_id).status == RunStatus.SUCCEEDED


def test_an_identity_endpoint_that_refuses_the_identity_is_a_503_naming_it(
    fresh: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    """App Service answers 400 when the app has no identity with that client id."""
    before = len(stack.emulator.runs())
    stack.emulator.faults.add(
        Fault(
            route="ManagedIdentity_GetToken",
            kind="status",
            status=400,
            code="BadRequest",
            message="Unable to load the proper Managed Identity.",
        )
    )
    document = problem(start(api, host, adf, "daily_load"), 503, "identity-unavailable")
    assert f"Managed identity {stack.emulator.info['client_id']}" in document["detail"]
    assert "attached to the function app" in document["detail"]  # what to check
    assert "Unable to load the proper Managed Identity" in document["detail"]  # what the endpoint said
    assert len(stack.emulator.runs()) == before
