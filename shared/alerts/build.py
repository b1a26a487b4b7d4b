"""Building failure alerts: what an on-call engineer reads at 3 a.m.

The first line says what failed, where, when and why; the rest carries the facts to act on (failed
activities, the Studio link, how the pipeline's previous runs ended). The alert id is stable per
run and kind, so a reader can drop the rare repeat that at-least-once delivery allows; a failure of a
run under a retry policy is alerted once for its whole chain of attempts, under the chain's first run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.alerts.model import Alert, AlertKind, AttemptItem, FailedActivityItem, RunRef
from shared.config.settings import Settings
from shared.config.targets import TargetEntry
from shared.kinds.base import FailureDetails, RunKind
from shared.runs.model import RetryState, Run, RunStatus, iso_time

MAX_MESSAGE = 400
MAX_FAILURE = 300  # one attempt's failure, as a retry chain's record and final alert keep it


def alert_id(run: Run, kind: str) -> str:
    """``{run id}:{kind}``; a failure is the chain's (``{first run id}:failed``), whichever attempt ends it."""
    return f"{run.chain_root if kind == AlertKind.FAILED else run.id}:{kind}"


def failure_line(details: FailureDetails | None, run: Run) -> str:
    """One attempt's failure in a line: the failed activity (or the service's error) with its type and
    code, and why; the run's message when Azure said nothing more."""
    if details and details.activities:
        first = details.activities[0]
        where, code, why = first.name, (first.failure_type, first.error_code), first.message
    elif details and details.errors:
        cause = details.causes[0] if details.causes else None
        where, code, why = "", (cause.failure_type, cause.error_code) if cause else ("", ""), details.errors[0]
    else:
        where, code, why = "", ("", ""), run.message
    kind = " ".join(part for part in code if part)
    head = " ".join(part for part in (where, f"({kind})" if kind else "") if part)
    text = " ".join(f"{head}: {why}".split()) if head else " ".join(why.split())
    return text if len(text) <= MAX_FAILURE else text[: MAX_FAILURE - 1] + "…"


def duration_text(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "an unknown time"
    seconds = max(0, milliseconds // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 1] + "…"


def summary(
    run: Run, alert_kind: str, label: str, details: FailureDetails | None, now: datetime, step: str = "activity"
) -> str:
    """The first line: ``label`` names the run as its kind does, then what happened, when, where (the
    failed ``step``: an activity, a pipeline job's step) and why."""
    if alert_kind == AlertKind.OVERDUE:
        elapsed = int((now - (run.run_start or run.created_at)).total_seconds() * 1000)
        return f"{label} is still {run.status} after {duration_text(elapsed)} (limit {run.max_duration_minutes} min)"
    if alert_kind == AlertKind.UNKNOWN:
        return f"{label} may not have started: {_one_line(run.message) or 'the start could not be confirmed'}"
    verb = "was cancelled" if alert_kind == AlertKind.CANCELLED else "failed"
    failed = details.activities if details else ()
    where = f" at {step} {failed[0].name}" if failed else ""
    if alert_kind == AlertKind.FAILED and run.attempt > 1:  # the last of a chain: "failed 3 times, last at ..."
        verb, where = f"failed {run.attempt} times", f", last{where}"
    if alert_kind == AlertKind.FAILED:
        verb += _retry_note(run)
    ended = run.run_end or now
    reason = _one_line((details.reason if details else "") or run.message)
    retrying = ""
    if alert_kind == AlertKind.RETRYING:
        due = run.next_retry_at or now
        retrying = f" (attempt {run.attempt} of {run.max_attempts}); retrying at {due:%H:%M:%S} UTC"
    return (
        f"{label} {verb}{where} on {ended:%Y-%m-%d %H:%M:%S} UTC after {duration_text(run.duration_ms)}"
        f"{retrying}: {reason or 'no message from Azure'}"
    )


def _retry_note(run: Run) -> str:
    """Why a run under a retry policy was not retried, when that is not the policy's own verdict."""
    if run.retry_state == RetryState.CANCELLED:
        return f" (its retry was cancelled by {run.cancel_requested_by or 'someone'})"
    if run.retry_state == RetryState.REFUSED:
        return f" ({_one_line(run.retry_note)})"
    return ""


def build_alert(
    run: Run,
    alert_kind: str,
    *,
    kind: RunKind[Any, Any],
    target: TargetEntry,
    details: FailureDetails | None,
    history: Sequence[Run],
    settings: Settings,
    now: datetime,
    earlier_attempts: Sequence[Run] = (),
) -> Alert:
    """``earlier_attempts``: the runs of ``run``'s retry chain before it, oldest first (the final alert
    lists every attempt's failure); a run under no retry policy has none, and its alert no retry fields."""
    app_id = (details.app_id if details else None) or run.app_id
    links = kind.links(target, run, app_id=app_id, settings=settings)
    if details and details.spark_ui:
        links["sparkUi"] = details.spark_ui
    if settings.public_base_url:
        links["run"] = f"{settings.public_base_url}/runs/{run.id}"
    repeat = any(r.status == RunStatus.FAILED for r in history[:1])
    return Alert(
        alertId=alert_id(run, alert_kind),
        kind=alert_kind,
        summary=summary(run, alert_kind, kind.describe(run), details, now, kind.step_noun),
        target=run.target,
        targetKind=run.kind,
        location=target.location,
        pipeline=run.pipeline,
        sparkPool=run.spark_pool,
        status=run.status,
        upstreamStatus=run.upstream_status,
        upstreamRunId=run.upstream_run_id,
        runId=run.id,
        message=run.message,
        failedActivities=[
            FailedActivityItem(
                name=a.name,
                type=a.type,
                errorCode=a.error_code,
                failureType=a.failure_type,
                message=a.message,
                start=iso_time(a.start),
                end=iso_time(a.end),
            )
            for a in (details.activities if details else ())
        ],
        appId=app_id,
        errors=list(details.errors) if details else [],
        driverLogTail=list(details.log_tail) if details else [],
        logName=details.log_name if details else None,
        start=iso_time(run.run_start or run.created_at),
        end=iso_time(run.run_end),
        durationMs=run.duration_ms,
        caller=run.caller,
        product=run.product,
        correlationId=run.correlation_id,
        links=links,
        previousRuns=[RunRef.of(r) for r in history],
        firstFailure=not repeat,
        raisedAt=iso_time(now),
        **_retry_fields(run, alert_kind, details, earlier_attempts),
    )


def _retry_fields(run: Run, alert_kind: str, details: FailureDetails | None, earlier: Sequence[Run]) -> dict[str, Any]:
    """The alert's attempt, maxAttempts, attempts and nextRetryAt, for a run under a retry policy."""
    if run.max_attempts <= 1 and run.attempt <= 1:
        return {}
    this = AttemptItem(
        attempt=run.attempt,
        runId=run.id,
        status=run.status,
        upstreamRunId=run.upstream_run_id,
        start=iso_time(run.run_start or run.created_at),
        end=iso_time(run.run_end),
        failure=failure_line(details, run) if alert_kind in (AlertKind.FAILED, AlertKind.RETRYING) else "",
    )
    attempts = [
        AttemptItem(
            attempt=r.attempt,
            runId=r.id,
            status=r.status,
            upstreamRunId=r.upstream_run_id,
            start=iso_time(r.run_start or r.created_at),
            end=iso_time(r.run_end),
            failure=r.failure,
        )
        for r in earlier
    ]
    return {
        "attempt": run.attempt,
        "maxAttempts": run.max_attempts,
        "attempts": [*attempts, this],
        "nextRetryAt": iso_time(run.next_retry_at) if alert_kind == AlertKind.RETRYING else None,
    }
