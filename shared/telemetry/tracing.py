"""Correlation, traces and metrics.

One correlation id per request or tick, in every log line (``shared.telemetry.logs``), every response and every
alert. With ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set, azure-monitor-opentelemetry is configured
once per process and the helpers here record spans (a server span per request continuing the caller's
W3C ``traceparent``, a client span per Azure call) and metrics. Without it, OpenTelemetry is never
imported (it would add a third to the cold start) and every helper is a branch that does nothing.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from shared.config.settings import Settings

if TYPE_CHECKING:
    from shared.azure.identity import TokenProvider

_LOGGER = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_VALID_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACE_HEADERS = ("traceparent", "tracestate")
SCOPE = "pipeline_gateway"


def correlation_id() -> str | None:
    return _correlation.get()


def begin(incoming: str | None = None) -> str:
    """Sets this context's correlation id: the caller's when it is well-formed, else a new one."""
    value = incoming if incoming and _VALID_CORRELATION.fullmatch(incoming) else str(uuid.uuid4())
    _correlation.set(value)
    return value


def in_this_context(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` run, on any thread, in a copy of the caller's context: work handed to a thread pool
    keeps the request's correlation id in its log lines and its spans under the request's span."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return context.copy().run(function, *args, **kwargs)

    return run


# --- configuration ------------------------------------------------------------------------------

_configure_lock = threading.Lock()
_configured = False


def configure_telemetry(settings: Settings | None = None, tokens: Callable[[], TokenProvider] | None = None) -> bool:
    """Sends traces, metrics and logs to Application Insights when its connection string is set.

    Once per process. Application Insights has local authentication disabled (infra/), so the exporter
    authenticates with the app's managed identity: ``tokens`` gives the composition root's provider, so
    telemetry shares the app's credential (without it, one is made from the settings).
    """
    global _configured
    with _configure_lock:
        if _configured:
            return _tracer is not None
        _configured = True
        settings = settings or Settings()
        connection_string = settings.appinsights_connection_string
        if not connection_string:
            return False
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import metrics, trace

        from shared.azure.identity import TokenProvider

        provider = tokens() if tokens else TokenProvider.from_settings(settings)
        try:
            configure_azure_monitor(connection_string=connection_string, credential=provider.credential)
        except ValueError as exc:  # a malformed connection string must not take the API down with it
            _LOGGER.error("Telemetry is off: APPLICATIONINSIGHTS_CONNECTION_STRING is invalid (%s)", exc)
            return False
        install(trace.get_tracer_provider(), metrics.get_meter_provider())
        return True


@dataclass(frozen=True)
class _Instruments:
    runs_started: Any
    runs_failed: Any
    alerts_sent: Any
    poll_duration: Any
    poll_lag: Any
    runs_in_flight: Any
    forward_failed: Any


_tracer: Any = None
_instruments: _Instruments | None = None


def install(tracer_provider: Any, meter_provider: Any) -> None:
    """Records spans and metrics with these OpenTelemetry providers (Application Insights', or a test's)."""
    global _tracer, _instruments
    _tracer = tracer_provider.get_tracer(SCOPE)
    meter = meter_provider.get_meter(SCOPE)
    _instruments = _Instruments(
        runs_started=meter.create_counter(
            "gateway.runs.started", unit="{run}", description="Runs Azure accepted to start."
        ),
        runs_failed=meter.create_counter(
            "gateway.runs.failed", unit="{run}", description="Runs recorded as ended in failure."
        ),
        alerts_sent=meter.create_counter(
            "gateway.alerts.sent", unit="{alert}", description="Alerts put on the on-call queue."
        ),
        poll_duration=meter.create_histogram(
            "gateway.poll.duration", unit="s", description="Duration of a poller tick, or of one target's poll."
        ),
        poll_lag=meter.create_histogram(
            "gateway.poll.lag", unit="s", description="From a run's end in Azure to the poller recording it."
        ),
        runs_in_flight=meter.create_gauge(
            "gateway.runs.in_flight", unit="{run}", description="A target's live runs, as each poll reads them."
        ),
        forward_failed=meter.create_counter(
            "gateway.alerts.forward_failed",
            unit="{try}",
            description="Failed tries to post an alert; after the last the host moves it to the poison queue.",
        ),
    )


def uninstall() -> None:
    """Back to recording nothing, and to configuring on the next ``configure_telemetry``; for tests."""
    global _tracer, _instruments, _configured
    with _configure_lock:
        _tracer, _instruments, _configured = None, None, False


# --- metrics ------------------------------------------------------------------------------------


def run_started(target: str, kind: str) -> None:
    if _instruments is not None:
        _instruments.runs_started.add(1, {"gateway.target": target, "gateway.kind": kind})


def run_failed(target: str, kind: str) -> None:
    if _instruments is not None:
        _instruments.runs_failed.add(1, {"gateway.target": target, "gateway.kind": kind})


def alert_sent(target: str, kind: str) -> None:
    if _instruments is not None:
        _instruments.alerts_sent.add(1, {"gateway.target": target, "gateway.alert_kind": kind})


def poll_finished(seconds: float, *, fanned_out: bool) -> None:
    if _instruments is not None:
        _instruments.poll_duration.record(seconds, {"gateway.poll": "target" if fanned_out else "tick"})


def run_ended(target: str, kind: str, lag_seconds: float) -> None:
    """A run the poller saw end, ``lag_seconds`` after Azure ended it: how stale statuses and alerts get."""
    if _instruments is not None:
        _instruments.poll_lag.record(max(lag_seconds, 0.0), {"gateway.target": target, "gateway.kind": kind})


def runs_in_flight(target: str, count: int) -> None:
    if _instruments is not None:
        _instruments.runs_in_flight.set(count, {"gateway.target": target})


def forward_failed(target: str, attempt: int) -> None:
    """One failed try of the forwarder; ``attempt`` is the message's dequeue count (host.json maxDequeueCount
    tries, then the poison queue). ``target`` is empty for a message that is not an alert."""
    if _instruments is not None:
        _instruments.forward_failed.add(1, {"gateway.target": target, "gateway.try": attempt})


# --- spans --------------------------------------------------------------------------------------


class Span:
    """What the code records on a span; without a tracer it records nothing."""

    def __init__(self, otel: Any = None) -> None:
        self._otel = otel

    def set(self, name: str, value: str | int | None) -> None:
        if self._otel is not None and value is not None:
            self._otel.set_attribute(name, value)

    def failed(self, description: str) -> None:
        if self._otel is not None:
            from opentelemetry.trace import Status, StatusCode

            self._otel.set_status(Status(StatusCode.ERROR, description))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Adds ``traceparent`` (and ``tracestate``) so the callee can join this trace."""
        if self._otel is not None:
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            TraceContextTextMapPropagator().inject(headers)


_NO_SPAN = Span()


@contextmanager
def request_span(name: str, method: str, path: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """The server span of one HTTP request, a child of the caller's span when it sent ``traceparent``
    (APIM does, with W3C correlation), so the trace runs from APIM through the app to Azure. Inside the
    Functions host's own request span (host.json telemetryMode OpenTelemetry) it is a child of that one."""
    if _tracer is None:
        yield _NO_SPAN
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attributes = {"http.request.method": method, "url.path": path, "gateway.correlation_id": correlation_id() or ""}
    if trace.get_current_span().get_span_context().is_valid:
        # The Functions host already continued the caller's traceparent in its request span, and the worker
        # (PYTHON_ENABLE_OPENTELEMETRY) made it current: one trace, one request, this span inside it.
        with _tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=attributes) as otel:
            yield Span(otel)
        return
    carrier = {key: value for key in _TRACE_HEADERS if (value := headers.get(key))}
    parent = TraceContextTextMapPropagator().extract(carrier)
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes) as otel:
        yield Span(otel)


@contextmanager
def upstream_span(operation: str, target: str, method: str, host: str) -> Iterator[Span]:
    """The client span of one Azure call; ``record_response`` adds its status and ``x-ms-request-id``."""
    if _tracer is None:
        yield _NO_SPAN
        return
    from opentelemetry.trace import SpanKind

    attributes = {
        "gateway.operation": operation,
        "gateway.target": target,
        "http.request.method": method,
        "server.address": host,
    }
    with _tracer.start_as_current_span(f"Azure {operation}", kind=SpanKind.CLIENT, attributes=attributes) as otel:
        yield Span(otel)


def record_response(span: Span, status: int, request_id: str | None, *, server: bool = False) -> None:
    """Status (and Azure's request id, for support) on a span; client spans fail on 4xx, servers on 5xx."""
    span.set("http.response.status_code", status)
    span.set("az.service_request_id", request_id)
    if status >= (500 if server else 400):
        span.failed(f"HTTP {status}")


@contextmanager
def operation_span(name: str) -> Iterator[Span]:
    """The span of a timer or queue function (a poller tick), parent of its Azure calls."""
    if _tracer is None:
        yield _NO_SPAN
        return
    attributes = {"gateway.correlation_id": correlation_id() or ""}
    with _tracer.start_as_current_span(name, attributes=attributes) as otel:
        yield Span(otel)
