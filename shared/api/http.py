"""HTTP plumbing for the handlers: problem responses, JSON bodies within limits, correlation.

``endpoint`` wraps every HTTP function: whatever happens inside, the caller gets JSON or an
``application/problem+json`` document with the correlation id, never a stack trace.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import (
    BodyTooLarge,
    GatewayError,
    MalformedBody,
    NotAllowed,
    UnsupportedMediaType,
)
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)
# Refusals by the catalog, on a logger of their own so operators can route and keep them apart.
_AUDIT = logging.getLogger("pipeline_gateway.audit")

PROBLEM_JSON = "application/problem+json"
CORRELATION_HEADER = "x-correlation-id"
SUBSCRIPTION_HEADER = "x-apim-subscription-id"
PRODUCT_HEADER = "x-apim-product-id"

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, mimetype: str = "application/json"
) -> func.HttpResponse:
    all_headers = {
        CORRELATION_HEADER: telemetry.correlation_id() or "",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    }
    return func.HttpResponse(
        json.dumps(data, separators=(",", ":"), default=str),
        status_code=status,
        headers=all_headers,
        mimetype=mimetype,
        charset="utf-8",
    )


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document: what went wrong and what to fix, with the gateway's extensions."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    correlationId: str | None = Field(description="Identifies the request in the gateway's logs.")
    errors: list[FieldProblem] | None = Field(default=None, description="Each field that failed, and why.")
    retryAfter: int | None = None
    upstreamStatus: int | None = None
    upstreamCode: str | None = None
    upstreamRequestId: str | None = Field(default=None, description="Azure's request id, for Azure support.")

    def json_view(self) -> dict[str, Any]:
        """Members that do not apply are left out; ``correlationId`` is always there."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None or k == "correlationId"}


def problem_response(error: GatewayError, instance: str | None = None) -> func.HttpResponse:
    problem = Problem.model_validate({**error.problem(), "correlationId": telemetry.correlation_id()})
    if instance:
        problem = problem.model_copy(update={"instance": instance})
    return json_response(problem.json_view(), error.status, error.headers, mimetype=PROBLEM_JSON)


def endpoint(handler: Handler) -> Handler:
    """Correlation, a span continuing the caller's trace, typed-error mapping, an audit line for each
    refusal by the catalog, and a last-resort 500 without details, for one handler."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        telemetry.begin(req.headers.get(CORRELATION_HEADER))
        path = _path(req.url)
        with telemetry.request_span(f"{req.method} {handler.__name__}", req.method, path, req.headers) as span:
            response = _handle(handler, req, path)
            telemetry.record_response(span, response.status_code, None, server=True)
        return response

    return wrapper


def _handle(handler: Handler, req: func.HttpRequest, path: str) -> func.HttpResponse:
    try:
        return handler(req)
    except GatewayError as error:
        level = logging.WARNING if error.status >= 500 else logging.INFO
        _LOGGER.log(level, "%s %s -> %s %s: %s", req.method, path, error.status, error.slug, error.detail)
        if isinstance(error, NotAllowed):
            _audit_refusal(req, path, error)
        return problem_response(error, path)
    except Exception:
        _LOGGER.exception("Unhandled error in %s %s", req.method, path)
        return problem_response(
            GatewayError("The gateway failed unexpectedly; the correlation id identifies this request in its logs."),
            path,
        )


def _audit_refusal(req: func.HttpRequest, path: str, error: NotAllowed) -> None:
    """Who was refused what, as fields operators can query (custom dimensions in Application Insights)."""
    subscription = req.headers.get(SUBSCRIPTION_HEADER) or "direct"
    product = req.headers.get(PRODUCT_HEADER) or "none"
    _AUDIT.warning(
        "Refused %s %s to subscription %s (product %s): %s",
        req.method,
        path,
        subscription,
        product,
        error.detail,
        extra={
            "audit_action": f"{req.method} {path}",
            "audit_subscription": subscription,
            "audit_product": product,
            "audit_outcome": "refused",
        },
    )


def _path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else "/"


# JSON numbers a body may hold: integers that every JSON reader (JavaScript, .NET's double, Azure's
# services) keeps exactly, I-JSON's range (RFC 7493), and finite floats.
MAX_JSON_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_JSON_INTEGER))


class _OutOfBounds(ValueError):
    """A number in the body that JSON readers cannot keep, or that JSON does not have."""


def _shown(number: str) -> str:
    return number if len(number) <= 24 else f"{number[:20]}… ({len(number)} characters)"


def _integer(text: str) -> int:
    # The length first: int() of thousands of digits raises past 4300 and is quadratic below.
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS or abs(value := int(text)) > MAX_JSON_INTEGER:
        raise _OutOfBounds(
            f"The body holds the integer {_shown(text)}, beyond ±{MAX_JSON_INTEGER} (2^53 - 1), the integers "
            "every JSON reader keeps exactly; send it as a string."
        )
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfBounds(f"The body holds the number {_shown(text)}, beyond a double's range; send it as a string.")
    return value


def _constant(text: str) -> Any:
    raise _OutOfBounds(f"The body holds {text}, which is not JSON (RFC 8259 has no NaN or Infinity).")


def read_json(req: func.HttpRequest, max_bytes: int) -> Any:
    """The JSON body, refused cheaply when too large, of another type, malformed or too deep, or when it
    holds NaN, Infinity or a number beyond what JSON readers keep: Python's reader takes those, but
    echoed back they are invalid JSON, and sent to Azure, a number it does not read as the caller meant."""
    declared = req.headers.get("content-length") or ""
    # ASCII digits only ("1²" passes isdigit() and fails int()); any other value is left to the length
    # of the body itself, checked next.
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > max_bytes):
        raise BodyTooLarge(f"The body is larger than {max_bytes} bytes.")
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise BodyTooLarge(f"The body is larger than {max_bytes} bytes.")
    if not body.strip():
        return {}
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Send the body as application/json, not {content_type[:80]}.")
    try:
        return json.loads(body.decode("utf-8"), parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except _OutOfBounds as exc:
        raise MalformedBody(str(exc)) from None
    except UnicodeDecodeError:
        raise MalformedBody("The body is not UTF-8 text.") from None
    except RecursionError:
        raise MalformedBody("The JSON body nests too deeply.") from None
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None


def base_url(req: func.HttpRequest, configured: str | None, own_host: str | None) -> str:
    """Where callers reach the API, for ``Location`` and links: the configured public URL (APIM's); else
    this request's origin when its host is the app's own (``own_host``, ``WEBSITE_HOSTNAME``); else the
    path alone. The Host header is the caller's to write, so it is never trusted by itself."""
    if configured:
        return configured
    scheme, _, rest = req.url.partition("://")
    host = rest.split("/", 1)[0].lower()
    if own_host and (host == own_host or (":" not in own_host and host.rsplit(":", 1)[0] == own_host)):
        return f"{scheme}://{host}/api"
    return "/api"
