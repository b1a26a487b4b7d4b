"""Azure's answers become typed errors; reads are retried, creates never blindly."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from shared.azure.transport import Operation, UpstreamClient
from shared.errors import (
    OutcomeUnknown,
    UpstreamBadResponse,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnauthenticated,
    UpstreamUnavailable,
)
from shared.kinds.pipelines import created_run

READ = Operation("getPipelineRun", "sales", "Reader on factory f")
CREATE = Operation("createRun", "sales", "Data Factory Contributor on factory f", creates=True)
URL = "https://example.invalid/x"


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> requests.Response:
    result = requests.Response()
    result.status_code = status
    result._content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    result.headers.update({"x-ms-request-id": "req-1", **(headers or {})})
    return result


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class Tokens:
    """Hands out a token and keeps it until it is reported refused."""

    def __init__(self) -> None:
        self.issued = 0
        self.refusals: list[tuple[str, str | None]] = []

    def token(self, scope: str) -> str:
        if self.issued == len(self.refusals):
            self.issued += 1
        return f"token-{self.issued}"

    def refused(self, scope: str, token: str, claims: str | None = None) -> None:
        self.refusals.append((token, claims))


class ScriptedSession:
    """Answers each request with the next scripted response or exception."""

    def __init__(self, *script: requests.Response | Exception) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def client(
    session: ScriptedSession, tokens: Tokens | None = None, max_throttle_wait: float = 10.0
) -> tuple[UpstreamClient, list[float]]:
    slept: list[float] = []
    upstream = UpstreamClient(
        session,
        tokens or Tokens(),
        timeout=(1, 1),  # type: ignore[arg-type]
        max_throttle_wait=max_throttle_wait,
        sleep=slept.append,
    )
    return upstream, slept


def call(upstream: UpstreamClient, operation: Operation = READ) -> Any:
    return upstream.call(operation, "GET", URL, scope="https://management.azure.com/.default")


def test_success_keeps_the_request_id_and_sends_auth_and_correlation() -> None:
    session = ScriptedSession(response(200, {"runId": "r1"}))
    result = call(client(session)[0])
    assert result.body == {"runId": "r1"} and result.request_id == "req-1"
    headers = session.calls[0]["headers"]
    assert headers["Authorization"] == "Bearer token-1"
    assert headers["x-ms-correlation-request-id"]
    assert session.calls[0]["timeout"] == (1, 1)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (404, UpstreamNotFound),
        (400, UpstreamRejected),
        (409, UpstreamRejected),
        (403, UpstreamForbidden),
        (503, UpstreamUnavailable),
    ],
)
def test_status_codes_map_to_typed_errors(status: int, error_type: type[Exception]) -> None:
    session = ScriptedSession(*[response(status, arm_error("Code", "Azure says no."))] * 3)
    with pytest.raises(error_type) as caught:
        call(client(session)[0])
    assert "Azure says no." in str(caught.value)
    assert caught.value.request_id == "req-1"  # type: ignore[attr-defined]


def test_forbidden_names_the_missing_role() -> None:
    session = ScriptedSession(response(403, arm_error("AuthorizationFailed", "No access.")))
    with pytest.raises(UpstreamForbidden, match="needs Reader on factory f") as caught:
        call(client(session)[0])
    assert caught.value.status == 502


def test_reads_retry_5xx_with_backoff_then_succeed() -> None:
    session = ScriptedSession(response(500), response(503), response(200, {"ok": True}))
    upstream, slept = client(session)
    assert call(upstream).body == {"ok": True}
    assert len(slept) == 2


def test_backoff_is_exponential_with_full_jitter() -> None:
    """Full jitter: each wait is drawn from [0, base * 2^attempt), so retrying instances spread out."""
    waits: list[list[float]] = []
    for _ in range(200):
        upstream, slept = client(ScriptedSession(response(503), response(502), response(200, {})))
        call(upstream)
        waits.append(slept)
    first, second = [w[0] for w in waits], [w[1] for w in waits]
    assert all(0 <= w < 0.5 for w in first) and all(0 <= w < 1.0 for w in second)
    assert max(second) > 0.5  # the second wait's range doubled
    assert len(set(first)) == len(first)  # never in lockstep


def test_throttling_waits_for_retry_after_within_budget() -> None:
    session = ScriptedSession(response(429, headers={"Retry-After": "3"}), response(200, {}))
    upstream, slept = client(session)
    call(upstream)
    assert slept == [3]


def test_the_throttling_budget_is_for_the_whole_call_not_each_answer() -> None:
    throttled = response(429, arm_error("TooManyRequests", "Slow down."), headers={"Retry-After": "4"})
    session = ScriptedSession(throttled, throttled, throttled, response(200, {}))
    upstream, slept = client(session, max_throttle_wait=10)
    with pytest.raises(UpstreamThrottled) as caught:
        call(upstream)
    assert slept == [4, 4]  # a third wait would pass 10 s
    assert caught.value.headers["Retry-After"] == "4"


def test_throttling_beyond_budget_becomes_503_with_retry_after() -> None:
    session = ScriptedSession(response(429, arm_error("TooManyRequests", "Slow down."), headers={"Retry-After": "30"}))
    with pytest.raises(UpstreamThrottled) as caught:
        call(client(session, max_throttle_wait=10)[0])
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "30"


def test_expired_token_is_renewed_once_without_failing_the_call() -> None:
    tokens = Tokens()
    session = ScriptedSession(response(401, arm_error("ExpiredAuthenticationToken", "expired")), response(200, {}))
    call(client(session, tokens)[0])
    assert tokens.refusals == [("token-1", None)]
    assert session.calls[1]["headers"]["Authorization"] == "Bearer token-2"


def test_a_claims_challenge_is_passed_on_to_the_renewal() -> None:
    """Continuous access evaluation: ARM answers a revoked token with the claims a new one must carry."""
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    challenge = (
        'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
        f'error_description="User session has been revoked", claims="{base64.b64encode(claims.encode()).decode()}"'
    )
    tokens = Tokens()
    session = ScriptedSession(
        response(401, arm_error("InvalidAuthenticationToken", "revoked"), headers={"WWW-Authenticate": challenge}),
        response(200, {}),
    )
    call(client(session, tokens)[0], CREATE)
    assert tokens.refusals == [("token-1", claims)]
    assert len(session.calls) == 2


def test_a_create_is_sent_again_after_a_401_because_azure_did_not_process_it() -> None:
    session = ScriptedSession(response(401, arm_error("ExpiredAuthenticationToken", "expired")), response(200, {}))
    call(client(session)[0], CREATE)
    assert len(session.calls) == 2


def test_persistent_401_is_reported() -> None:
    session = ScriptedSession(*[response(401, arm_error("InvalidAuthenticationTokenAudience", "aud"))] * 2)
    with pytest.raises(UpstreamUnauthenticated):
        call(client(session)[0])


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(NewConnectionError(None, "refused"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        lambda: requests.ReadTimeout("read timed out"),
        lambda: requests.ConnectionError("Connection aborted: RemoteDisconnected"),
    ],
)
def test_create_without_an_answer_is_outcome_unknown_and_not_retried(failure: Callable[[], Exception]) -> None:
    session = ScriptedSession(failure(), response(200, {"runId": "second"}))
    with pytest.raises(OutcomeUnknown):
        call(client(session)[0], CREATE)
    assert len(session.calls) == 1


def test_create_that_never_connected_is_retried() -> None:
    session = ScriptedSession(refused(), response(200, {"runId": "r1"}))
    assert call(client(session)[0], CREATE).body == {"runId": "r1"}


def test_create_5xx_after_acceptance_is_outcome_unknown() -> None:
    session = ScriptedSession(response(500, arm_error("InternalServerError", "oops")))
    with pytest.raises(OutcomeUnknown):
        call(client(session)[0], CREATE)
    assert len(session.calls) == 1


def test_reads_retry_dropped_connections_then_give_up() -> None:
    session = ScriptedSession(*[requests.ConnectionError("reset")] * 3)
    with pytest.raises(UpstreamUnavailable):
        call(client(session)[0])
    assert len(session.calls) == 3


def test_malformed_json_is_a_bad_response() -> None:
    session = ScriptedSession(response(200, raw=b'{"runId": "4e50a182'))
    with pytest.raises(UpstreamBadResponse) as caught:
        call(client(session)[0])
    assert caught.value.status == 502
    assert caught.value.problem()["upstreamRequestId"] == "req-1"


def test_a_create_accepted_with_an_unreadable_answer_is_outcome_unknown() -> None:
    """Azure said 200 but not which run: the caller must reconcile, not retry and start it twice."""
    session = ScriptedSession(response(200, raw=b'{"runId": "4e50a182'))
    with pytest.raises(OutcomeUnknown, match="unreadable"):
        call(client(session)[0], CREATE)
    assert len(session.calls) == 1


def test_a_create_that_succeeded_without_naming_its_run_is_outcome_unknown() -> None:
    with pytest.raises(OutcomeUnknown, match="may have started"):
        created_run({"status": "Accepted"}, "req-1", "createRun")
    assert created_run({"runId": "r1"}, "req-1", "createRun").run_id == "r1"


def test_error_without_json_body_still_maps() -> None:
    session = ScriptedSession(response(404, raw=b"not json"))
    with pytest.raises(UpstreamNotFound, match="HTTP 404"):
        call(client(session)[0])


def test_the_services_clock_offset_comes_from_the_date_of_its_answers() -> None:
    """Reconciliation compares run times Azure wrote with our clock: the offset must be Azure's own."""
    from email.utils import format_datetime

    ahead = datetime.now(UTC) + timedelta(minutes=7)
    session = ScriptedSession(response(200, {}, {"Date": format_datetime(ahead, usegmt=True)}), response(200, {}))
    upstream, _ = client(session)
    assert upstream.clock_offset(URL) == timedelta(0), "nothing heard yet: no offset"

    call(upstream)
    offset = upstream.clock_offset(URL)
    call(upstream)  # an answer without a Date keeps the last offset

    assert timedelta(minutes=6, seconds=58) < offset < timedelta(minutes=7, seconds=2)
    assert upstream.clock_offset(URL) == offset
    assert upstream.clock_offset("https://other.example/") == timedelta(0), "kept per host"
