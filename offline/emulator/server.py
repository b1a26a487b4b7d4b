"""HTTP plumbing shared by every emulated API: routing, Azure's headers and error bodies, faults.

One HTTPS port serves ARM (ADF, Synapse management), the Synapse data planes under
``/synapse/{workspace}``, the managed-identity endpoint and the admin API. HTTP/1.1 keep-alive with
a ``Content-Length`` on every answer, because the app's connection reuse is part of what the
benchmarks measure.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from .faults import Fault, FaultRegistry

# "aml": Azure ML's run history (bearer token); "anonymous": Azure ML's discovery document and the log
# files its SAS URLs point at, which Azure serves without a token.
Family = Literal["arm", "synapse", "livy", "aml", "anonymous", "fabric", "identity", "admin"]
RateKind = Literal["reads", "writes"]

MAX_BODY_BYTES = 4 * 1024 * 1024
IDLE_TIMEOUT_S = 60.0


class ApiError(Exception):
    """An error answer; the route's family decides the body's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = dict(headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # keys lower-cased: Azure treats query parameter names case-insensitively
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON, ``None`` when empty; a malformed body is ARM's InvalidRequestContent."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: '{exc}'.",
            ) from exc

    @property
    def correlation_request_id(self) -> str | None:
        """The caller's ``x-ms-correlation-request-id`` (``None`` when absent or empty).

        Stores keep it per created run, so a test can tell which of the app's requests created what.
        """
        return self.headers.get("x-ms-correlation-request-id") or None

    def none_match(self, etag: str) -> bool:
        """Whether ``If-None-Match`` names ``etag`` (quoted or not, weak or not) or is ``*``: a 304."""
        wanted = self.headers.get("if-none-match")
        if wanted is None:
            return False
        return wanted.strip() == "*" or _bare(wanted) == _bare(etag)

    def flag(self, name: str) -> bool | None:
        """A boolean query option as ADF reads it; anything but true/false is a 400."""
        raw = self.query.get(name.lower())
        if raw is None or raw == "":
            return None
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ApiError(400, "InvalidParameter", f"The value '{raw}' is not valid for the '{name}' parameter.")


def _bare(etag: str) -> str:
    return etag.strip().removeprefix("W/").strip('"')


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable; None = no body
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent instead of ``body``: a cut-short JSON answer, or a file with its Content-Type


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    family: Family
    rate: RateKind | None = None
    api_versions: tuple[str, ...] = ()


class Router:
    """Regex routes built from the specs' path templates; ARM matches case-insensitively."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        name: str,
        method: str,
        template: str,
        handler: Handler,
        family: Family,
        *,
        rate: RateKind | None = None,
        api_versions: tuple[str, ...] = (),
    ) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        pattern = re.compile(f"^{regex}/?$", re.IGNORECASE)
        self.routes.append(Route(name, method, pattern, handler, family, rate, api_versions))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route, its decoded path parameters, and whether the path exists for another method."""
        other_method = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method != method:
                other_method = True
                continue
            return route, {k: unquote(v) for k, v in found.groupdict().items()}, False
        return None, {}, other_method


class Counters:
    """Calls per route (and per token resource), for tests that prove the app spends calls carefully."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def incr(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class Latency:
    """Added latency, global or per route, to make the app's timeouts and overlap observable."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.default = seconds
        self._per_route: dict[str, float] = {}

    def set(self, seconds: float, route: str | None = None) -> None:
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        if route is None:
            self.default = seconds
        else:
            self._per_route[route] = seconds

    def for_route(self, route: str) -> float:
        return self._per_route.get(route, self.default)

    def describe(self) -> dict[str, Any]:
        return {"seconds": self.default, "routes": dict(self._per_route)}


class RateBudget:
    """ARM's remaining-request headers: a per-subscription budget that refills every hour."""

    START: Mapping[str, int] = {"reads": 11999, "writes": 1199}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: dict[tuple[str, str], tuple[float, int]] = {}

    def spend(self, subscription: str, kind: RateKind) -> int:
        key = (subscription.lower(), kind)
        now = time.monotonic()
        with self._lock:
            started, used = self._window.get(key, (now, 0))
            if now - started >= 3600:
                started, used = now, 0
            used += 1
            self._window[key] = (started, used)
        return max(self.START[kind] - used + 1, 0)


_FAULT_MESSAGES: Mapping[int, tuple[str, str]] = {
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - "
        "Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits",
    ),
    500: ("InternalServerError", "Encountered internal server error. Please try again later."),
    502: ("BadGateway", "The gateway received an invalid response from the upstream service."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}


def fault_error(fault: Fault) -> ApiError:
    code, message = _FAULT_MESSAGES.get(fault.status, ("", ""))
    if not code:
        phrase = HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else "Error"
        code, message = phrase.replace(" ", "").replace("-", ""), f"{phrase} (injected fault)."
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(
            int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after
        )
    return ApiError(fault.status, fault.code or code, fault.message or message, headers=headers)


Authorizer = Callable[[Route, Request], None]
_DROP = object()


class Dispatcher:
    """Turns one HTTP request into an answer (or a dropped connection), the Azure way."""

    def __init__(
        self,
        router: Router,
        *,
        faults: FaultRegistry,
        counters: Counters,
        latency: Latency,
        authorize: Authorizer,
    ) -> None:
        self.router = router
        self.faults = faults
        self.counters = counters
        self.latency = latency
        self.authorize = authorize
        self.budget = RateBudget()

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response | None:
        """The answer to send, or ``None`` to close the connection without one."""
        path, _, raw_query = target.partition("?")
        query = {k.lower(): v for k, v in parse_qsl(raw_query, keep_blank_values=True)}
        route, params, other_method = self.router.match(method, path)
        correlation = headers.get("x-ms-correlation-request-id") or headers.get("x-ms-client-request-id")
        if route is None:
            response = _not_routed(method, path, other_method)
            return _decorate(response, correlation, headers)
        request = Request(method, path, query, headers, body, params)
        fault = None
        if route.family != "admin":
            self.counters.incr(route.name)
            fault = self.faults.take(route.name)
            pause = self.latency.for_route(route.name)
            if pause > 0:
                time.sleep(pause)
        try:
            if fault is not None:
                if fault.kind == "delay":
                    time.sleep(fault.delay_s)
                elif fault.kind == "drop" and fault.when == "before":
                    return None
                elif fault.kind == "status":
                    raise fault_error(fault)
            if fault is not None and fault.kind == "malformed" and fault.when == "before":
                response = Response()  # nothing applied; the answer is cut short below
            else:
                self.authorize(route, request)
                _check_api_version(route, request)
                response = route.handler(request)
        except ApiError as error:
            response = render_error(route.family, error, correlation)
        if fault is not None and fault.kind == "drop":
            return None
        if fault is not None and fault.kind == "malformed":
            response = _cut_short(response, fault.status)
        if route.rate is not None and "subscriptionId" in params:
            remaining = self.budget.spend(params["subscriptionId"], route.rate)
            response.headers[f"x-ms-ratelimit-remaining-subscription-{route.rate}"] = str(remaining)
        if route.family == "arm":
            response.headers.setdefault("Cache-Control", "no-cache")
            response.headers.setdefault("Pragma", "no-cache")
            response.headers.setdefault("Expires", "-1")
        return _decorate(response, correlation, headers)


_NO_ANSWER = {"error": {"code": "InternalServerError", "message": "The answer was cut short."}}


def _cut_short(response: Response, status: int) -> Response:
    """The answer with its body cut in half: JSON is never valid afterwards, yet still labelled as JSON;
    a file (``raw``) keeps its own Content-Type, as a truncated download does."""
    if response.raw is not None:
        return Response(status, None, response.headers, raw=response.raw[: len(response.raw) // 2])
    payload = json.dumps(response.body if response.body is not None else _NO_ANSWER, separators=(",", ":")).encode()
    return Response(status, None, response.headers, raw=payload[: len(payload) // 2])


def _check_api_version(route: Route, request: Request) -> None:
    if not route.api_versions:
        return
    version = request.query.get("api-version")
    if not version:
        raise ApiError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in route.api_versions:
        raise ApiError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{','.join(route.api_versions)}'.",
        )


def _fabric_error_response(error: ApiError) -> Response:
    """Fabric's ErrorResponse (fabric-common-definitions-v1.json): ``requestId``, ``errorCode``, ``message``;
    the code is also in ``x-ms-public-api-error-code``, the header Fabric's clients read it from."""
    request_id = str(uuid.uuid4())
    headers = {**error.headers, "RequestId": request_id, "x-ms-public-api-error-code": error.code}
    body = {"requestId": request_id, "errorCode": error.code, "message": error.message}
    return Response(error.status, body, headers)


def render_error(family: Family, error: ApiError, correlation: str | None) -> Response:
    if family == "fabric":
        return _fabric_error_response(error)
    if family == "identity":
        body: dict[str, Any] = {
            "statusCode": error.status,
            "message": error.message,
            "correlationId": correlation or str(uuid.uuid4()),
        }
    else:
        detail: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.target is not None:
            detail["target"] = error.target
        body = {"error": detail}
    headers = dict(error.headers)
    if family == "aml":
        headers["x-ms-error-code"] = error.code  # the run-history spec's default response header
    return Response(error.status, body, headers)


def _not_routed(method: str, path: str, other_method: bool) -> Response:
    if other_method:
        error = ApiError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")
    elif path.lower().startswith("/subscriptions/"):
        error = ApiError(
            404, "InvalidResourceType", f"The resource type could not be found for the request path '{path}'."
        )
    else:
        error = ApiError(404, "NotFound", f"No emulated API answers '{method} {path}'.")
    return render_error("arm", error, None)


def _decorate(response: Response, correlation: str | None, request_headers: Mapping[str, str]) -> Response:
    headers = response.headers
    headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
    headers["x-ms-correlation-request-id"] = correlation or headers["x-ms-request-id"]
    client_request_id = request_headers.get("x-ms-client-request-id")
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    headers["X-Content-Type-Options"] = "nosniff"
    return response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureOfflineEmulator/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms delayed-ACK stalls
    server: HttpsServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header in emulated time, like every time Azure writes (runStart, lastUpdated):
        clients that compare its clock with theirs see the emulator's offset."""
        return super().date_time_string(self.server.now() if timestamp is None else timestamp)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self.close_connection = True
            too_large = ApiError(413, "RequestEntityTooLarge", "The request body is larger than the service accepts.")
            self._write(render_error("arm", too_large, None))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.dispatcher.dispatch(self.command, self.path, headers, body)
        if response is None:
            self._drop()
            return
        self._write(response)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, response: Response) -> None:
        payload = b""
        if response.raw is not None:
            payload = response.raw
            response.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif response.body is not None and response.status not in (204, 304):
            payload = json.dumps(response.body, separators=(",", ":")).encode()
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _drop(self) -> None:
        """Ends the connection with a reset and no answer: the caller cannot tell what happened."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _BodyTooLarge(Exception):
    pass


class HttpsServer(ThreadingHTTPServer):
    """Thread per connection; the TLS handshake happens in that thread, not in the accept loop."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self,
        port: int,
        dispatcher: Dispatcher,
        context: ssl.SSLContext,
        *,
        verbose: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.dispatcher = dispatcher
        self.verbose = verbose
        self.now = now
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._open_lock:
            if add:
                self._open.add(connection)
            else:
                self._open.discard(connection)

    def close_connections(self) -> None:
        """Ends kept-alive connections so a stopped emulator really stops answering."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up or fail the TLS handshake are routine here; say so only when asked."""
        if self.verbose:
            exc = sys.exc_info()[1]
            print(f"emulator: connection from {client_address}: {exc!r}", file=sys.stderr)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
