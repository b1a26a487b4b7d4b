"""Failure alerts: what an on-call engineer reads at 3 a.m.

The first line says what failed, where, when and why; the rest carries the facts to act on (failed
activities, the Studio link, how the pipeline's previous runs ended). The alert id is stable per
run and kind, so a reader can drop the rare repeat that at-least-once delivery allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.api.views import iso_time
from shared.config.catalog import DataFactoryTarget, SynapseTarget
from shared.config.settings import Settings
from shared.kinds.links import studio_run_link, studio_spark_link
from shared.kinds.tracking import FailureDetails
from shared.runs.model import Run, RunStatus

SCHEMA_VERSION = 1
KIND_LABELS = {"datafactory": "ADF", "synapse": "Synapse", "spark": "Spark"}
MAX_MESSAGE = 400


class AlertKind:
    FAILED = "failed"
    CANCELLED = "cancelled"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"


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


def summary(run: Run, kind: str, details: FailureDetails | None, now: datetime) -> str:
    label = f"{KIND_LABELS.get(run.kind, run.kind)} {run.target}/{run.pipeline} run {_short(run)}"
    if run.kind == "spark":
        label = f"Spark {run.target}/{run.spark_pool} batch {run.pipeline} (id {run.upstream_run_id or '?'})"
    if kind == AlertKind.OVERDUE:
        elapsed = int((now - (run.run_start or run.created_at)).total_seconds() * 1000)
        return f"{label} is still {run.status} after {duration_text(elapsed)} (limit {run.max_duration_minutes} min)"
    if kind == AlertKind.UNKNOWN:
        return f"{label} may not have started: {_one_line(run.message) or 'the start could not be confirmed'}"
    verb = "was cancelled" if kind == AlertKind.CANCELLED else "failed"
    failed = details.activities if details else ()
    where = f" at activity {failed[0].name}" if failed else ""
    ended = run.run_end or now
    first_error = details.errors[0] if details and details.errors else ""
    reason = _one_line((failed[0].message if failed else first_error) or run.message)
    return (
        f"{label} {verb}{where} on {ended:%Y-%m-%d %H:%M:%S} UTC after {duration_text(run.duration_ms)}: "
        f"{reason or 'no message from Azure'}"
    )


def _short(run: Run) -> str:
    return (run.upstream_run_id or run.id)[:8] + "…"


def build_alert(
    run: Run,
    kind: str,
    *,
    target: DataFactoryTarget | SynapseTarget,
    details: FailureDetails | None,
    history: Sequence[Run],
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    links: dict[str, str] = {}
    app_id = (details.app_id if details else None) or run.app_id
    if run.kind == "spark" and isinstance(target, SynapseTarget):
        if app_id and run.spark_pool:
            links["studio"] = studio_spark_link(
                target, app_id, run.spark_pool, run.upstream_run_id, synapse_studio=settings.synapse_studio_url
            )
        if details and details.spark_ui:
            links["sparkUi"] = details.spark_ui
    elif run.upstream_run_id:
        links["studio"] = studio_run_link(
            target, run.upstream_run_id, adf_studio=settings.adf_studio_url, synapse_studio=settings.synapse_studio_url
        )
    if settings.public_base_url:
        links["run"] = f"{settings.public_base_url}/runs/{run.id}"
    previous = [{"id": r.id, "status": r.status, "createdAt": iso_time(r.created_at)} for r in history]
    repeat = any(r.status == RunStatus.FAILED for r in history[:1])
    return {
        "schemaVersion": SCHEMA_VERSION,
        "alertId": alert_id(run, kind),
        "kind": kind,
        "summary": summary(run, kind, details, now),
        "target": run.target,
        "targetKind": run.kind,
        "location": _location(target),
        "pipeline": run.pipeline,
        "sparkPool": run.spark_pool,
        "status": run.status,
        "upstreamStatus": run.upstream_status,
        "upstreamRunId": run.upstream_run_id,
        "runId": run.id,
        "message": run.message,
        "failedActivities": [
            {
                "name": a.name,
                "type": a.type,
                "errorCode": a.error_code,
                "failureType": a.failure_type,
                "message": a.message,
                "start": iso_time(a.start),
                "end": iso_time(a.end),
            }
            for a in (details.activities if details else ())
        ],
        "appId": app_id,
        "errors": list(details.errors) if details else [],
        "driverLogTail": list(details.log_tail) if details else [],
        "start": iso_time(run.run_start or run.created_at),
        "end": iso_time(run.run_end),
        "durationMs": run.duration_ms,
        "caller": run.caller,
        "product": run.product,
        "correlationId": run.correlation_id,
        "links": links,
        "previousRuns": previous,
        "firstFailure": not repeat,
        "raisedAt": iso_time(now),
    }


def _location(target: DataFactoryTarget | SynapseTarget) -> str:
    if isinstance(target, DataFactoryTarget):
        return f"factory {target.factory_name} ({target.resource_group})"
    return f"workspace {target.workspace_name}"
