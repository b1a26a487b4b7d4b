"""Correlation and tracing: one correlation id per request or tick, in every log line and response.

OpenTelemetry spans are only created when a tracer provider has been configured (Application
Insights is set up elsewhere, and only when its connection string is present); otherwise the span
helpers cost nothing.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_VALID_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def correlation_id() -> str | None:
    return _correlation.get()


def begin(incoming: str | None = None) -> str:
    """Sets this context's correlation id: the caller's when it is well-formed, else a new one."""
    value = incoming if incoming and _VALID_CORRELATION.fullmatch(incoming) else str(uuid.uuid4())
    _correlation.set(value)
    return value


class CorrelationFilter(logging.Filter):
    """Adds ``correlation_id`` to every record so handlers can format it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _correlation.get() or "-"
        return True


@dataclass
class Span:
    attributes: dict[str, Any] = field(default_factory=dict)
    _otel: Any = None

    def record(self, status: int, request_id: str | None) -> None:
        self.attributes["http.response.status_code"] = status
        if request_id:
            self.attributes["az.service_request_id"] = request_id
        if self._otel is not None:
            self._otel.set_attributes(self.attributes)


_tracer: Any = None


def set_tracer(tracer: Any) -> None:
    """Installs an OpenTelemetry tracer; called once telemetry is configured."""
    global _tracer
    _tracer = tracer


@contextmanager
def upstream_span(operation: str, target: str) -> Iterator[Span]:
    span = Span({"gateway.operation": operation, "gateway.target": target})
    if _tracer is None:
        yield span
        return
    with _tracer.start_as_current_span(f"Azure {operation}", kind=_client_kind()) as otel:
        span._otel = otel
        otel.set_attributes(span.attributes)
        yield span


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT
