"""Injected faults, latency, counters and the admin API."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient

from offline.emulator import Emulator, Fault

from .conftest import ARM, RawClient, factory_path


def run_ids(emu: Emulator, pipeline: str) -> set[str]:
    return {r["runId"] for r in emu.runs() if r.get("pipeline") == pipeline}


def test_status_fault_answers_with_retry_after_and_applies_nothing(
    raw: RawClient, factory: dict[str, Any], emu: Emulator
) -> None:
    before = run_ids(emu, "ingest_orders")
    emu.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=429, retry_after=2, count=1))
    throttled = raw("POST", factory_path(factory, "/pipelines/ingest_orders/createRun"), {})
    assert throttled.status == 429 and throttled.headers["retry-after"] == "2"
    assert throttled.body["error"]["code"] == "TooManyRequests"
    assert run_ids(emu, "ingest_orders") == before
    assert raw("POST", factory_path(factory, "/pipelines/ingest_orders/createRun"), {}).status == 200


def test_sdk_retries_a_throttled_call(
    credential: ManagedIdentityCredential, info: dict[str, Any], factory: dict[str, Any], emu: Emulator
) -> None:
    client = DataFactoryManagementClient(
        credential, factory["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
    )
    client.factories.get(factory["resource_group"], factory["name"])  # token fetched outside the count
    emu.reset_counters()
    emu.faults.add(Fault(route="Factories_Get", kind="status", status=503, retry_after=0, count=1))
    assert client.factories.get(factory["resource_group"], factory["name"]).name == factory["name"]
    assert emu.counters["Factories_Get"] == 2


def test_delay_and_latency(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    emu.faults.add(Fault(route="Factories_Get", kind="delay", delay_s=0.3, count=1))
    started = time.monotonic()
    assert raw("GET", factory_path(factory)).status == 200
    assert time.monotonic() - started >= 0.3
    emu.set_latency(0.2, route="Factories_Get")
    started = time.monotonic()
    raw("GET", factory_path(factory))
    assert time.monotonic() - started >= 0.2
    emu.set_latency(0, route="Factories_Get")


@pytest.mark.parametrize(("when", "applied"), [("before", False), ("after", True)])
def test_drop_closes_without_an_answer(
    raw: RawClient, factory: dict[str, Any], emu: Emulator, when: str, applied: bool
) -> None:
    before = run_ids(emu, "ingest_customers")
    emu.faults.add(Fault(route="Pipelines_CreateRun", kind="drop", when=when, count=1))  # type: ignore[arg-type]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw("POST", factory_path(factory, "/pipelines/ingest_customers/createRun"), {"attempt": 1})
    created = run_ids(emu, "ingest_customers") - before
    assert len(created) == (1 if applied else 0)


@pytest.mark.parametrize(("when", "applied"), [("before", False), ("after", True)])
def test_malformed_answers_a_json_body_cut_short(
    raw: RawClient, factory: dict[str, Any], emu: Emulator, when: str, applied: bool
) -> None:
    before = run_ids(emu, "ingest_customers")
    emu.faults.add(Fault(route="Pipelines_CreateRun", kind="malformed", status=200, when=when, count=1))  # type: ignore[arg-type]
    connection = raw.connection()
    path = factory_path(factory, "/pipelines/ingest_customers/createRun")
    connection.request("POST", path, body=b"{}", headers={"Authorization": f"Bearer {raw.token(ARM)}"})
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 200 and answer.getheader("Content-Type", "").startswith("application/json")
    assert answer.getheader("x-ms-request-id")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    created = run_ids(emu, "ingest_customers") - before
    assert len(created) == (1 if applied else 0)
    if applied:
        assert body.startswith(b'{"runId":"') and created.pop().startswith(body.decode()[len('{"runId":"') :])


def test_fault_kinds_refuse_statuses_they_cannot_answer() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault(kind="status", status=200)
    with pytest.raises(ValueError, match="2xx to 5xx"):
        Fault(kind="malformed", status=100)
    assert Fault.from_dict({"route": "PipelineRuns_Get", "kind": "malformed", "status": 200}).kind == "malformed"


def test_wildcard_until_cleared_and_counters(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    emu.reset_counters()
    emu.faults.add(Fault(route="*", kind="status", status=500))
    for _ in range(3):
        reply = raw("GET", factory_path(factory))
        assert reply.status == 500 and reply.body["error"]["code"] == "InternalServerError"
    assert raw("GET", "/_emulator/counters", auth=None).status == 200  # admin is never faulted
    emu.faults.clear()
    assert raw("GET", factory_path(factory)).status == 200
    assert emu.counters["Factories_Get"] == 4
    assert "Admin_GetCounters" not in emu.counters


def test_admin_api(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    assert raw("POST", "/_emulator/counters/reset", auth=None).status == 200
    added = raw(
        "POST", "/_emulator/faults", {"route": "Factories_Get", "kind": "status", "status": 502, "count": 1}, auth=None
    )
    assert added.status == 201 and added.body["value"][0]["remaining"] == 1
    assert raw("GET", factory_path(factory)).status == 502
    raw("POST", "/_emulator/faults", {"route": "Factories_Get", "status": 503}, auth=None)
    assert raw("DELETE", "/_emulator/faults", auth=None).status == 200
    assert raw("GET", factory_path(factory)).status == 200
    assert raw("GET", "/_emulator/counters", auth=None).body["Factories_Get"] == 2
    assert raw("POST", "/_emulator/faults", {"kind": "explode"}, auth=None).status == 400
    offset = emu.clock.offset
    advanced = raw("POST", "/_emulator/clock/advance", {"seconds": 5}, auth=None)
    assert advanced.status == 200 and emu.clock.offset == pytest.approx(offset + 5)
    assert raw("POST", "/_emulator/clock/advance", {"seconds": -1}, auth=None).status == 400
    assert raw("PUT", "/_emulator/page-size", {"size": 7}, auth=None).body == {"size": 7}
    assert emu.store.page_size == 7
    assert raw("PUT", "/_emulator/latency", {"seconds": 0.0, "route": None}, auth=None).status == 200
    runs = raw("GET", "/_emulator/runs", auth=None).body["value"]
    assert len(runs) == len(emu.runs())
    assert raw("GET", "/_emulator/info", auth=None).body["arm_endpoint"] == emu.base_url
