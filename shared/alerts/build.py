"""Building failure alerts: what an on-call engineer reads at 3 a.m.

The first line says what failed, where, when and why; the rest carries the facts to act on (failed
activities, the Studio link, how the pipeline's previous runs ended). The alert id is stable per
run and kind, so a reader can drop the rare repeat that at-least-once delivery allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.alerts.model import Alert, AlertKind, FailedActivityItem, RunRef
from shared.config.settings import Settings
from shared.config.targets import TargetEntry
from shared.kinds.base import FailureDetails, RunKind
from shared.runs.model import Run, RunStatus, iso_time

MAX_MESSAGE = 400


def alert_id(run: Run, kind: str) -> str:
    return f"{run.id}:{kind}"


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


def summary(run: Run, alert_kind: str, label: str, details: FailureDetails | None, now: datetime) -> str:
    """The first line: ``label`` names the run as its kind does, then what happened, when and why."""
    if alert_kind == AlertKind.OVERDUE:
        elapsed = int((now - (run.run_start or run.created_at)).total_seconds() * 1000)
        return f"{label} is still {run.status} after {duration_text(elapsed)} (limit {run.max_duration_minutes} min)"
    if alert_kind == AlertKind.UNKNOWN:
        return f"{label} may not have started: {_one_line(run.message) or 'the start could not be confirmed'}"
    verb = "was cancelled" if alert_kind == AlertKind.CANCELLED else "failed"
    failed = details.activities if details else ()
    where = f" at activity {failed[0].name}" if failed else ""
    ended = run.run_end or now
    reason = _one_line((details.reason if details else "") or run.message)
    return (
        f"{label} {verb}{where} on {ended:%Y-%m-%d %H:%M:%S} UTC after {duration_text(run.duration_ms)}: "
        f"{reason or 'no message from Azure'}"
    )


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
) -> Alert:
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
        summary=summary(run, alert_kind, kind.describe(run), details, now),
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
    )
