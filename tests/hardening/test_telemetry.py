"""Telemetry: Application Insights only when configured, traces from APIM to Azure, metrics, and
correlation ids everywhere; never a secret in a log line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from offline.emulator import Fault
from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack
from shared.azure.identity import TokenProvider
from shared.config.settings import Settings
from shared.context import AppContext
from shared.functions.index import user_function
from shared.telemetry import tracing as telemetry
from tests.hardening.conftest import problem

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
APIM_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{APIM_SPAN_ID}-01"
CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-00000000abcd;IngestionEndpoint=https://127.0.0.1:9/;"
    "AADAudience=https://monitor.azure.com//.default"
)


@pytest.fixture
def recorded() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """The app's spans and metrics, kept in memory instead of going to Application Insights."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry.install(tracer_provider, MeterProvider(metric_readers=[metrics]))
    yield spans, metrics
    telemetry.uninstall()


def start(api: requests.Session, host: LocalHost, target: str, pipeline: str, **headers: str) -> requests.Response:
    return api.post(f"{host.api_url}/targets/{target}/pipelines/{pipeline}/runs", json={}, headers=headers, timeout=30)


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def counters(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Each metric's data points as (attributes, value or histogram count)."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), getattr(point, "value", getattr(point, "count", None)))
                    for point in metric.data.data_points
                ]
    return found


def test_without_a_connection_string_opentelemetry_is_not_even_imported() -> None:
    """Importing it would add a third to every cold start (bench/coldstart.py)."""
    environment = {k: v for k, v in os.environ.items() if k != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, function_app; "
            "print([m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))])",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_with_a_connection_string_azure_monitor_is_configured_once_with_the_apps_identity(
    stack: OfflineStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Application Insights has local authentication disabled: the exporter must use the managed identity."""
    import azure.monitor.opentelemetry as distro

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **options: calls.append(options))
    telemetry.uninstall()
    settings = Settings({**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING})
    try:
        assert telemetry.configure_telemetry(settings) is True
        assert telemetry.configure_telemetry(settings) is True
        assert len(calls) == 1 and calls[0]["connection_string"] == CONNECTION_STRING
        before = stack.emulator.counters.get("ManagedIdentity_GetToken:https://monitor.azure.com", 0)
        assert calls[0]["credential"].get_token("https://monitor.azure.com/.default").token
        assert stack.emulator.counters["ManagedIdentity_GetToken:https://monitor.azure.com"] == before + 1
        assert TokenProvider.from_settings(settings).credential.get_token("https://monitor.azure.com/.default").token
    finally:
        telemetry.uninstall()


def test_a_malformed_connection_string_turns_telemetry_off_not_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import azure.monitor.opentelemetry as distro

    def refuse(**options: Any) -> None:
        raise ValueError("Invalid instrumentation key")

    monkeypatch.setattr(distro, "configure_azure_monitor", refuse)
    telemetry.uninstall()
    try:
        assert (
            telemetry.configure_telemetry(Settings({**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING": "x"}))
            is False
        )
    finally:
        telemetry.uninstall()
    assert "Telemetry is off" in caplog.text


def test_the_trace_runs_from_apim_through_the_app_to_azure(
    app: AppContext,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = recorded
    response = start(api, host, adf, "daily_load", traceparent=TRACEPARENT)
    assert response.status_code == 202
    run = app.registry.get(response.json()["id"])
    (server,) = named(spans, "POST start_pipeline_run")
    (client,) = named(spans, "Azure createRun")
    assert server.kind == SpanKind.SERVER and client.kind == SpanKind.CLIENT
    assert server.context is not None and client.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == TRACE_ID and f"{server.parent.span_id:016x}" == APIM_SPAN_ID
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert server.attributes == {
        "http.request.method": "POST",
        "url.path": f"/api/targets/{adf}/pipelines/daily_load/runs",
        "gateway.correlation_id": run.correlation_id,
        "http.response.status_code": 202,
    }
    assert client.attributes == {
        "gateway.operation": "createRun",
        "gateway.target": adf,
        "http.request.method": "POST",
        "server.address": app.settings.arm_endpoint.removeprefix("https://"),
        "http.response.status_code": 200,
        "az.service_request_id": run.upstream_request_id,
    }


def test_without_traceparent_a_request_starts_its_own_trace(
    app: AppContext,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = recorded
    assert start(api, host, adf, "daily_load").status_code == 202
    (server,) = named(spans, "POST start_pipeline_run")
    assert server.parent is None


def test_a_refused_azure_call_is_an_error_span_with_its_status_and_request_id(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, _ = recorded
    stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=403, count=1))
    document = problem(start(api, host, adf, "daily_load"), 502, "upstream-forbidden")
    (server,) = named(spans, "POST start_pipeline_run")
    (client,) = named(spans, "Azure createRun")
    assert client.status.status_code == StatusCode.ERROR and server.status.status_code == StatusCode.ERROR
    assert client.attributes is not None and client.attributes["http.response.status_code"] == 403
    assert client.attributes["az.service_request_id"] == document["upstreamRequestId"]


def test_a_poller_tick_is_one_trace_with_its_azure_calls_inside_even_from_worker_threads(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from function_app import app as function_app

    spans, _ = recorded
    assert start(api, host, adf, "copy_sales").status_code == 202
    stack.emulator.clock.advance(30)
    spans.clear()
    user_function(function_app, "poll_runs")(object())
    (tick,) = named(spans, "poll_runs")
    assert tick.context is not None
    inside = {s.name: s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT}
    assert {"Azure queryPipelineRuns", "Azure queryActivityRuns"} <= set(inside)  # the alert's, on a pool thread
    assert {s.name: s.parent.span_id if s.parent else None for s in inside.values()} == dict.fromkeys(
        inside, tick.context.span_id
    )


def test_metrics_count_runs_started_and_failed_alerts_sent_and_time_each_tick(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from function_app import app as function_app

    _, reader = recorded
    assert start(api, host, adf, "daily_load").status_code == 202
    assert start(api, host, adf, "copy_sales").status_code == 202
    stack.emulator.clock.advance(30)
    user_function(function_app, "poll_runs")(object())
    user_function(function_app, "poll_runs")(object())  # nothing left to alert: counts stay
    metrics = counters(reader)
    assert metrics["gateway.runs.started"] == [({"gateway.target": adf, "gateway.kind": "datafactory"}, 2)]
    assert metrics["gateway.runs.failed"] == [({"gateway.target": adf, "gateway.kind": "datafactory"}, 1)]
    assert metrics["gateway.alerts.sent"] == [({"gateway.target": adf, "gateway.alert_kind": "failed"}, 1)]
    assert metrics["gateway.poll.duration"] == [({"gateway.poll": "tick"}, 2)]


def test_the_correlation_id_is_the_callers_or_a_new_one_and_reaches_the_alert(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    from function_app import app as function_app

    given = start(api, host, adf, "copy_sales", **{"x-correlation-id": "erp-close-2026-11"})
    assert given.headers["x-correlation-id"] == given.json()["correlationId"] == "erp-close-2026-11"
    forged = start(api, host, adf, "daily_load", **{"x-correlation-id": "<script>alert(1)</script>"})
    assert forged.headers["x-correlation-id"] == forged.json()["correlationId"]
    assert "<" not in forged.json()["correlationId"]
    refused = api.get(f"{host.api_url}/runs/nope", timeout=30)
    assert problem(refused, 404)["correlationId"] == refused.headers["x-correlation-id"]
    stack.emulator.clock.advance(30)
    user_function(function_app, "poll_runs")(object())
    (alert,) = app.alerts.peek()
    assert alert["correlationId"] == "erp-close-2026-11"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.text: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.text.append(self.format(record))


@pytest.fixture
def minted(stack: OfflineStack, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the emulator's identity endpoint hands out."""
    tokens: list[str] = []
    mint = stack.emulator.authority.mint

    def recording(resource: str) -> tuple[str, int]:
        token, expires = mint(resource)
        tokens.append(token)
        return token, expires

    monkeypatch.setattr(stack.emulator.authority, "mint", recording)
    return tokens


def test_the_logs_of_a_whole_scenario_hold_no_secret_and_every_app_line_a_correlation_id(
    stack: OfflineStack,
    names: dict[str, str],
    host: LocalHost,
    adf: str,
    synapse: str,
    minted: list[str],
) -> None:
    """Debug logging everywhere (the worst an operator can switch on), a whole story with its faults:
    tokens, the identity header, function and subscription keys never reach a log line."""
    from function_app import app as function_app
    from tests.conftest import install

    capture = Capture()
    root = logging.getLogger()
    loud = [logging.getLogger(name) for name in ("", "azure", "msal", "urllib3", "offline")]
    levels = [logger.level for logger in loud]
    root.addHandler(capture)
    for logger in loud:
        logger.setLevel(logging.DEBUG)
    subscription_key = "5f0c6bd0a7c94b1e9c61d0a7c94b1e9c"
    try:
        app = install(stack, names)
        with requests.Session() as caller:
            caller.headers.update({"x-functions-key": host.function_key, "Ocp-Apim-Subscription-Key": subscription_key})
            base = host.api_url
            assert caller.post(f"{base}/targets/{adf}/pipelines/copy_sales/runs", json={}, timeout=30).ok
            assert caller.post(f"{base}/targets/{synapse}/pipelines/refresh_lake/runs", json={}, timeout=30).ok
            stack.emulator.faults.add(Fault(route="Pipelines_CreateRun", kind="status", status=401, count=1))
            assert caller.post(f"{base}/targets/{adf}/pipelines/daily_load/runs", json={}, timeout=30).ok
            assert caller.get(f"{base}/runs?code={host.function_key}", timeout=30).ok
            assert caller.get(f"{base}/targets/{adf}", timeout=30).ok
            stack.emulator.clock.advance(30)
            user_function(function_app, "poll_runs")(object())
            assert len(app.alerts.peek()) == 1
            install(stack, names)  # a cold instance, whose identity endpoint fails
            stack.emulator.faults.add(Fault(route="ManagedIdentity_GetToken", kind="status", status=500))
            assert (
                caller.post(f"{base}/targets/{adf}/pipelines/daily_load/runs", json={}, timeout=30).status_code == 503
            )
    finally:
        stack.emulator.faults.clear()
        root.removeHandler(capture)
        for logger, level in zip(loud, levels, strict=True):
            logger.setLevel(level)
    secrets = {
        "function key": host.function_key,
        "master key": host.master_key,
        "subscription key": subscription_key,
        "identity header": stack.emulator.identity_header,
        **{f"token {index}": token for index, token in enumerate(minted)},
    }
    assert len(minted) >= 3  # ARM, Synapse, Storage at least
    logged = "\n".join(capture.text)
    assert len(capture.records) > 20
    assert [name for name, secret in secrets.items() if secret in logged] == []
    app_lines = [r for r in capture.records if r.name.startswith(("shared", "pipeline_gateway"))]
    assert app_lines and [r.getMessage() for r in app_lines if r.correlation_id == "-"] == []  # type: ignore[attr-defined]
