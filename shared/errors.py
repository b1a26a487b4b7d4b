"""The gateway's exception hierarchy.

Every failure the app can explain is a ``GatewayError`` subclass that knows its HTTP status and
problem type, so handlers never build error responses from strings and nothing unexplained reaches
a caller: anything else becomes a bare 500 problem without details (and a log line with the trace).
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://pipeline-gateway.dev/problems/"


class GatewayError(Exception):
    """Base of every error the gateway explains to its callers."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(
        self, detail: str, *, extensions: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions: dict[str, Any] = dict(extensions or {})
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document (extensions never overwrite the standard members)."""
        return {
            **self.extensions,
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class ConfigurationError(GatewayError):
    """The app's settings or catalog are wrong; operators must fix them, callers cannot."""

    status = 503
    slug = "configuration"
    title = "Gateway misconfigured"


# --- The caller's request ---------------------------------------------------------------------


class RequestError(GatewayError):
    """The caller sent something the gateway will not act on."""

    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedBody(RequestError):
    slug = "malformed-body"
    title = "Malformed request body"


class UnsupportedMediaType(RequestError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class BodyTooLarge(RequestError):
    status = 413
    slug = "body-too-large"
    title = "Request body too large"


class ValidationFailed(RequestError):
    """Fields failed validation; ``errors`` lists each field with what to fix."""

    status = 422
    slug = "validation"
    title = "Request failed validation"

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail, extensions={"errors": errors})
        self.errors = errors


class InvalidName(ValidationFailed):
    """A name that would become a URL path segment breaks Azure's naming rules."""

    slug = "invalid-name"
    title = "Invalid name"


class NotFound(RequestError):
    status = 404
    slug = "not-found"
    title = "Not found"


class TargetNotFound(NotFound):
    slug = "target-not-found"
    title = "Unknown target"


class RunNotFound(NotFound):
    slug = "run-not-found"
    title = "Unknown run"


class NotAllowed(RequestError):
    """The catalog does not let this caller start this pipeline or Spark pool."""

    status = 403
    slug = "not-allowed"
    title = "Not allowed by the catalog"


class LimitExceeded(RequestError):
    """A start would go over a cap on paid compute (shared.runs.limits); ``Retry-After`` says when to try."""

    status = 429
    slug = "limit-exceeded"
    title = "Limit exceeded"

    def __init__(self, detail: str, *, limit: str, scope: str, retry_after: int) -> None:
        super().__init__(
            detail,
            extensions={"limit": limit, "scope": scope, "retryAfter": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class Conflict(RequestError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class IdempotencyKeyReused(Conflict):
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class RunAlreadyFinished(Conflict):
    slug = "run-finished"
    title = "Run already finished"


class RunStillRunning(Conflict):
    slug = "run-in-progress"
    title = "Run still in progress"


class RunAlreadyRerun(Conflict):
    slug = "run-already-rerun"
    title = "Run already rerun"


class RetryNotPending(Conflict):
    """An automatic retry that is no longer scheduled (cancelled, or taken over) is not submitted."""

    slug = "retry-not-pending"
    title = "Retry no longer scheduled"


class RunNotStarted(Conflict):
    """The run has no upstream run: it is still being submitted, or Azure never started it."""

    slug = "run-not-started"
    title = "Run not started in Azure"


# --- Azure, upstream of the gateway -------------------------------------------------------------


class UpstreamError(GatewayError):
    """Azure answered with an error, or did not answer. Carries Azure's request id for support."""

    status = 502
    slug = "upstream-error"
    title = "Azure returned an error"

    def __init__(
        self,
        detail: str,
        *,
        upstream_status: int | None = None,
        upstream_code: str | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        extensions: dict[str, Any] = {}
        if upstream_status is not None:
            extensions["upstreamStatus"] = upstream_status
        if upstream_code:
            extensions["upstreamCode"] = upstream_code
        if request_id:
            extensions["upstreamRequestId"] = request_id
        super().__init__(detail, extensions=extensions, headers=headers)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code
        self.request_id = request_id


class UpstreamNotFound(UpstreamError):
    """Azure does not know the pipeline, run, factory or workspace."""

    status = 404
    slug = "upstream-not-found"
    title = "Not found in Azure"


class UpstreamRejected(UpstreamError):
    """Azure refused the request as invalid (e.g. a bad parameter value)."""

    status = 422
    slug = "upstream-rejected"
    title = "Azure rejected the request"


class UpstreamForbidden(UpstreamError):
    """The gateway's identity lacks a role; ``role`` names it (and the detail says so)."""

    slug = "upstream-forbidden"
    title = "The gateway's identity is not authorized in Azure"

    def __init__(self, detail: str, *, role: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.role = role


class UpstreamUnauthenticated(UpstreamError):
    slug = "upstream-unauthenticated"
    title = "Azure refused the gateway's token"


class UpstreamThrottled(UpstreamError):
    """Azure throttled us; callers get 503 with the Retry-After Azure gave."""

    status = 503
    slug = "upstream-throttled"
    title = "Azure is throttling requests"

    def __init__(self, detail: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **kwargs)
        self.retry_after = retry_after
        self.extensions["retryAfter"] = retry_after


class UpstreamUnavailable(UpstreamError):
    """Azure answered 5xx, timed out before sending, or could not be reached."""

    status = 503
    slug = "upstream-unavailable"
    title = "Azure is unavailable"


class UpstreamBadResponse(UpstreamError):
    """Azure answered with something that is not the documented contract."""

    slug = "upstream-bad-response"
    title = "Azure sent an unreadable response"


class OutcomeUnknown(UpstreamError):
    """A create call was sent but its answer never came: Azure may or may not have started the run.

    Retrying blindly could start the pipeline twice, so callers of the upstream client must
    reconcile (query the service) instead.
    """

    status = 504
    slug = "outcome-unknown"
    title = "Outcome of the start request is unknown"


class IdentityUnavailable(GatewayError):
    """The managed identity could not give a token."""

    status = 503
    slug = "identity-unavailable"
    title = "The gateway's identity cannot get a token"


class StorageUnavailable(GatewayError):
    """The run registry or the alert queue could not be reached."""

    status = 503
    slug = "storage-unavailable"
    title = "The gateway's storage is unavailable"


def first_line(exc: Exception) -> str:
    """The first line of an SDK error: enough to act on, never a token or a stack."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
