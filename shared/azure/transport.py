"""HTTP plumbing shared by the Azure clients: one pooled session, tokens, retries, typed errors.

Reads are retried (throttling within a bounded wait, 5xx and dropped connections with backoff and
jitter). Creates are not retried once they may have reached Azure: a create whose answer never
came raises ``OutcomeUnknown`` so the caller reconciles instead of starting the pipeline twice.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.azure.identity import TokenSource

if TYPE_CHECKING:  # requests is imported on the first call, off the cold-start path
    import requests
from shared.errors import (
    OutcomeUnknown,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnauthenticated,
    UpstreamUnavailable,
)
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
READ_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5
DEFAULT_RETRY_AFTER_SECONDS = 5
_CLAIMS = re.compile(r'\bclaims="([A-Za-z0-9+/_=-]+)"')


@dataclass(frozen=True)
class Operation:
    """What is being done, for errors and telemetry: names the role a refusal points to."""

    name: str
    target: str
    role_hint: str
    creates: bool = False


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: Any
    request_id: str | None
    headers: Mapping[str, str]  # case-insensitive: some answers name their result only here (Fabric's Location)


def new_session(pool_size: int = 32) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    return session


class UpstreamClient:
    """Sends one Azure REST call with a bearer token and turns every failure into a typed error."""

    def __init__(
        self,
        session: requests.Session,
        tokens: TokenSource,
        *,
        timeout: tuple[float, float],
        max_throttle_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self._tokens = tokens
        self._timeout = timeout
        self._max_throttle_wait = max_throttle_wait
        self._sleep = sleep
        self._clock_offsets: dict[str, float] = {}  # host -> its Date header minus our clock, in seconds

    def clock_offset(self, url: str) -> timedelta:
        """How far the service at ``url`` runs ahead of this machine, from the ``Date`` of its last
        answer (zero before one came). Times Azure writes (a run's start) are in its clock, not ours."""
        return timedelta(seconds=self._clock_offsets.get(urlsplit(url).netloc, 0.0))

    def call(
        self,
        operation: Operation,
        method: str,
        url: str,
        *,
        scope: str | None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        text: bool = False,
    ) -> UpstreamResponse:
        """One call; ``scope`` None sends no token, for URLs Azure hands out that carry their own
        credential or need none (a log's SAS URL, Azure ML's discovery document): a bearer token must
        not travel to a host only because an answer named it. ``text`` reads the body as text."""
        import requests

        waited = 0.0
        attempt = 0
        refreshed_token = False
        while True:
            attempt += 1
            token = self._tokens.token(scope) if scope else None
            try:
                response = self._send(method, url, token, params, body, operation)
            except requests.RequestException as exc:
                error = self._transport_error(operation, exc)
                if isinstance(error, OutcomeUnknown) or attempt >= READ_ATTEMPTS:
                    raise error from exc
                waited += self._backoff(attempt)
                continue
            # Fabric names its request id in RequestId rather than x-ms-request-id.
            request_id = response.headers.get("x-ms-request-id") or response.headers.get("RequestId")
            if response.status_code < 400:
                answer = response.text if text else _json(response, operation, request_id)
                return UpstreamResponse(response.status_code, answer, request_id, response.headers)
            if response.status_code == 401 and scope and token and not refreshed_token:
                # Not processed by Azure (not even a create): a token that expired early, was revoked or
                # lacks challenged claims is replaced by a new one and the call sent again, once.
                self._tokens.refused(scope, token, _claims_challenge(response))
                refreshed_token = True
                continue
            if response.status_code == 429:
                retry_after = _retry_after(response)
                if waited + retry_after <= self._max_throttle_wait:
                    _LOGGER.info("%s throttled by Azure; retrying after %ss", operation.name, retry_after)
                    self._sleep(retry_after)
                    waited += retry_after
                    continue
            elif response.status_code in RETRYABLE_STATUSES and not operation.creates and attempt < READ_ATTEMPTS:
                waited += self._backoff(attempt)
                continue
            raise self._status_error(operation, response, request_id)

    def _send(
        self,
        method: str,
        url: str,
        token: str | None,
        params: Mapping[str, str] | None,
        body: Any,
        operation: Operation,
    ) -> requests.Response:
        headers = {
            "Accept": "application/json",
            "x-ms-client-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": telemetry.correlation_id() or str(uuid.uuid4()),
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"))
            headers["Content-Type"] = "application/json"
        with telemetry.upstream_span(operation.name, operation.target, method, urlsplit(url).netloc) as span:
            span.inject(headers)
            response = self._session.request(
                method, url, params=params, data=data, headers=headers, timeout=self._timeout
            )
            telemetry.record_response(span, response.status_code, response.headers.get("x-ms-request-id"))
        served = _server_time(response.headers.get("Date"))
        if served is not None:
            self._clock_offsets[urlsplit(url).netloc] = served - time.time()
        return response

    def _backoff(self, attempt: int) -> float:
        # Exponential backoff with full jitter.
        delay = random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))  # noqa: S311
        self._sleep(delay)
        return delay

    def _transport_error(self, operation: Operation, exc: requests.RequestException) -> UpstreamError:
        import requests

        never_sent = isinstance(exc, requests.ConnectTimeout) or _is_refused(exc)
        if operation.creates and not never_sent:
            return OutcomeUnknown(
                f"{operation.name} on {operation.target} was sent but no answer came "
                f"({type(exc).__name__}); Azure may have started the run."
            )
        if isinstance(exc, requests.Timeout):
            return UpstreamUnavailable(f"Azure did not answer {operation.name} on {operation.target} in time.")
        return UpstreamUnavailable(
            f"Azure could not be reached for {operation.name} on {operation.target} ({type(exc).__name__})."
        )

    def _status_error(self, operation: Operation, response: requests.Response, request_id: str | None) -> UpstreamError:
        status = response.status_code
        code, message = _azure_error(response)
        where = f"{operation.name} on {operation.target}"
        common: dict[str, Any] = {"upstream_status": status, "upstream_code": code, "request_id": request_id}
        if status == 404:
            return UpstreamNotFound(f"{where}: {message}", **common)
        if status == 403:
            return UpstreamForbidden(
                f"{where} was refused: {message} Hint: the gateway's identity needs {operation.role_hint}.",
                role=operation.role_hint,
                **common,
            )
        if status == 401:
            return UpstreamUnauthenticated(f"{where}: Azure refused the gateway's token: {message}", **common)
        if status == 429:
            retry_after = _retry_after(response)
            return UpstreamThrottled(
                f"{where} is throttled by Azure; retry after {retry_after}s.", retry_after=retry_after, **common
            )
        if operation.creates and status in (500, 502, 504):
            return OutcomeUnknown(f"{where} failed with {status} after it may have been accepted: {message}", **common)
        if status >= 500:
            return UpstreamUnavailable(f"{where} failed with {status}: {message}", **common)
        if status in (400, 409, 412, 422):
            return UpstreamRejected(f"{where} was rejected: {message}", **common)
        return UpstreamError(f"{where} failed with {status}: {message}", **common)


def _is_refused(exc: requests.RequestException) -> bool:
    from urllib3.exceptions import NewConnectionError

    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)
    return isinstance(reason, NewConnectionError) or isinstance(inner, NewConnectionError)


def _server_time(value: str | None) -> float | None:
    """An HTTP ``Date`` (RFC 9110, one-second resolution) as a timestamp; None when absent or malformed."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> int:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(1, int(float(raw)))
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS


def _azure_error(response: requests.Response) -> tuple[str | None, str]:
    """Azure's error code and message from either error shape (ARM ``{"error": {...}}`` or flat; Fabric's
    flat ``ErrorResponse`` names its code ``errorCode``)."""
    try:
        body = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code} without a readable error body."
    error = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        error = {}
    raw_code = error.get("code", error.get("errorCode"))
    code = raw_code if isinstance(raw_code, str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    return code, (message or f"HTTP {response.status_code}.")[:1000]


def _json(response: requests.Response, operation: Operation, request_id: str | None) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        where = f"{operation.name} on {operation.target} answered {response.status_code}"
        if operation.creates:
            # Azure said yes but not which run: reconciling finds it; a caller's retry would start it twice.
            raise OutcomeUnknown(
                f"{where} with a body that is not JSON; Azure accepted the request but its answer is unreadable.",
                upstream_status=response.status_code,
                request_id=request_id,
            ) from None
        raise UpstreamBadResponse(
            f"{where} with a body that is not JSON.", upstream_status=response.status_code, request_id=request_id
        ) from None


def _claims_challenge(response: requests.Response) -> str | None:
    """The claims a 401's ``WWW-Authenticate`` challenge asks for (base64 JSON, as ARM sends them)."""
    match = _CLAIMS.search(response.headers.get("WWW-Authenticate", ""))
    if match is None:
        return None
    encoded = match.group(1)
    try:
        claims = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        json.loads(claims)
    except ValueError:
        return None
    return claims


class TargetClient:
    """One Azure API of one target: its base URL, token scope and ``api-version`` (none for Livy,
    whose version is a path segment). Subclasses name their operations and the roles they need."""

    api_version: str | None = None

    def __init__(self, upstream: UpstreamClient, *, base_url: str, scope: str, target: str) -> None:
        self._upstream = upstream
        self._base = base_url
        self._scope = scope
        self._target = target

    def clock_offset(self) -> timedelta:
        """How far this API's clock runs ahead of ours (see ``UpstreamClient.clock_offset``)."""
        return self._upstream.clock_offset(self._base)

    def _call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        role: str,
        creates: bool = False,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> tuple[Any, str | None]:
        response = self._request(name, method, path, role=role, creates=creates, params=params, body=body)
        return response.body, response.request_id

    def _request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        role: str,
        creates: bool = False,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> UpstreamResponse:
        """``_call`` with the whole answer, headers included."""
        query = {"api-version": self.api_version, **(params or {})} if self.api_version else params
        operation = Operation(name, self._target, role, creates=creates)
        return self._upstream.call(operation, method, self._base + path, scope=self._scope, params=query, body=body)
