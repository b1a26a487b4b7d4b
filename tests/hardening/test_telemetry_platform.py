"""The telemetry the platform team's workbook reads (infra/workbook): runs in flight per target, how late
the poller sees runs end, failed forwarding tries, and one trace per request under the Functions host."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
import requests
from azure.functions.queue import QueueMessage  # the host's message, with its dequeue count
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from offline.localhost import LocalHost
from offline.stack import OfflineStack
from shared.config.settings import Settings
from shared.context import AppContext
from shared.errors import GatewayError
from shared.functions import forwarder
from shared.functions.index import registered_functions, user_function
from tests.hardening.test_telemetry import counters, named, recorded, start

__all__ = ["recorded"]  # the fixture, shared with the other telemetry tests


def test_each_poll_records_the_targets_runs_in_flight_and_how_late_it_saw_runs_end(
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
    metrics = counters(reader)
    assert ({"gateway.target": adf}, 2) in metrics["gateway.runs.in_flight"]
    # Both runs ended seconds after they started, and the poller saw them 30 s of emulated time later.
    ((attributes, ended),) = metrics["gateway.poll.lag"]
    assert attributes == {"gateway.target": adf, "gateway.kind": "datafactory"} and ended == 2

    user_function(function_app, "poll_runs")(object())
    metrics = counters(reader)
    assert ({"gateway.target": adf}, 0) in metrics["gateway.runs.in_flight"]
    assert metrics["gateway.poll.lag"] == [({"gateway.target": adf, "gateway.kind": "datafactory"}, 2)]


def _forward_alert() -> func.FunctionApp:
    app = func.FunctionApp()
    app.register_functions(forwarder.blueprint(Settings({"GATEWAY_FORWARD_URL": "https://127.0.0.1:9/hooks/x"})))
    return app


def test_every_failed_forwarding_try_is_counted_with_its_target_and_try_number(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from function_app import app as function_app

    _, reader = recorded
    assert start(api, host, adf, "copy_sales").status_code == 202
    stack.emulator.clock.advance(30)
    user_function(function_app, "poll_runs")(object())
    (alert,) = app.alerts.peek()
    (function,) = registered_functions(_forward_alert())
    forward = function.get_user_function()

    with pytest.raises(ValueError, match="is not an alert"):
        forward(QueueMessage(id="m1", body=b'{"not": "an alert"}', dequeue_count=5))
    # This context has no webhook to post to: the try fails, as a refusing webhook's would.
    with pytest.raises(GatewayError):
        forward(QueueMessage(id="m2", body=json.dumps(alert).encode(), dequeue_count=2))

    points = counters(reader)["gateway.alerts.forward_failed"]
    assert sorted(points, key=lambda point: point[0]["gateway.try"]) == [
        ({"gateway.target": adf, "gateway.try": 2}, 1),
        ({"gateway.target": "", "gateway.try": 5}, 1),
    ]


def test_inside_the_hosts_request_span_a_request_is_its_child_not_a_second_request(
    recorded: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from function_app import app as function_app

    spans, _ = recorded
    health = user_function(function_app, "health")
    tracer = TracerProvider().get_tracer("functions-host")  # the host's, outside the app's pipeline
    with tracer.start_as_current_span("host invocation", kind=SpanKind.SERVER) as host_span:
        assert health(func.HttpRequest("GET", "https://app.example/api/health", body=b"")).status_code == 200
    (inner,) = named(spans, "GET health")
    assert inner.kind == SpanKind.INTERNAL
    assert inner.parent is not None and inner.parent.span_id == host_span.get_span_context().span_id
