"""The hand-over view of a shift: how each target's work went, what is still running, what failed most,
and which alerts wait for someone.

The figures are one typed model (``ShiftSummary``), built by a pure function from what the registry and
the inbox hold, so ``--json`` prints exactly what the terminal view draws and a new figure is one field
and one line of arithmetic. Runs are grouped by what the catalog lets callers start (a pipeline, a
Spark pool, ...): each run's kind says which, and how it is called.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.cli.inbox import Entry, Inbox, Waiting
from shared.context import AppContext
from shared.kinds.registry import kind_named
from shared.runs.model import Run, RunStatus

# A shift's runs are read whole up to this many; past it the summary says it is partial.
MAX_RUNS = 20_000
PAGE = 1000
# The chart keeps at most this many bars: a longer window gets wider buckets (2 h, 4 h, ...).
MAX_BUCKETS = 48
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.REJECTED})


class _Model(BaseModel):
    """camelCase in JSON, like the API and the alerts."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class WorkSummary(_Model):
    """One target's runs of one pipeline (or Spark pool, ...) in the window."""

    target: str
    noun: str  # what the run's kind calls it: "Pipeline", "Spark pool"
    name: str
    runs: int
    succeeded: int
    failed: int  # failed or refused by Azure
    cancelled: int
    unknown: int
    live: int
    success_rate: float | None  # succeeded / ended; None while none has ended
    p50_ms: int | None
    p95_ms: int | None


class LiveRun(_Model):
    id: str
    target: str
    noun: str
    name: str
    status: str
    since: datetime
    running_ms: int


class FailingStep(_Model):
    """An activity (or step) that failed runs of one pipeline, as the alerts recorded it."""

    target: str
    pipeline: str
    step: str
    type: str
    failures: int
    last_at: datetime


class AlertCounts(_Model):
    waiting: int  # not acknowledged: on the queue, or forwarded to the webhook
    undelivered: int  # on the poison queue: the webhook kept refusing them
    acknowledged: int  # acknowledged within the window


class Bucket(_Model):
    start: datetime
    failures: int


class ShiftSummary(_Model):
    since: datetime
    until: datetime
    runs: int
    succeeded: int
    failed: int
    live: int
    retries: int  # automatic reruns of failed runs (retry policies) started in the window
    pages_avoided: int  # of those, the ones that succeeded: a failure nobody was paged for
    partial: bool  # more runs than MAX_RUNS in the window: the figures cover the newest
    work: list[WorkSummary]
    longest_running: list[LiveRun]
    failing_steps: list[FailingStep]
    alerts: AlertCounts
    bucket_hours: int
    failures_per_bucket: list[Bucket]

    def json_view(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class _Work:
    target: str
    noun: str
    name: str


def _work_of(run: Run) -> _Work:
    kind = kind_named(run.kind)
    return _Work(run.target, kind.resource_noun, kind.resource(run))


def percentile(values: Sequence[int], share: float) -> int | None:
    """The nearest-rank percentile (``share`` of 1): a value that occurred, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ended_at(run: Run) -> datetime:
    return run.run_end or run.updated_at


def _work_summary(work: _Work, runs: Sequence[Run]) -> WorkSummary:
    statuses = Counter(run.status for run in runs)
    succeeded = statuses[RunStatus.SUCCEEDED]
    failed = sum(statuses[status] for status in FAILED_STATUSES)
    ended = sum(1 for run in runs if run.terminal)
    durations = [run.duration_ms for run in runs if run.terminal and run.duration_ms is not None]
    return WorkSummary(
        target=work.target,
        noun=work.noun,
        name=work.name,
        runs=len(runs),
        succeeded=succeeded,
        failed=failed,
        cancelled=statuses[RunStatus.CANCELLED],
        unknown=statuses[RunStatus.UNKNOWN],
        live=sum(1 for run in runs if run.in_flight),
        success_rate=succeeded / ended if ended else None,
        p50_ms=percentile(durations, 0.50),
        p95_ms=percentile(durations, 0.95),
    )


def _buckets(runs: Iterable[Run], since: datetime, until: datetime) -> tuple[int, list[Bucket]]:
    """Failures per bucket of whole hours from the hour ``since`` falls in, by when each run ended."""
    first = since.replace(minute=0, second=0, microsecond=0)
    hours = max(1, math.ceil((until - first) / timedelta(hours=1)))
    width = math.ceil(hours / MAX_BUCKETS)
    counts = [0] * math.ceil(hours / width)
    for run in runs:
        if run.status in FAILED_STATUSES:
            index = int((_ended_at(run) - first) / timedelta(hours=width))
            counts[min(max(index, 0), len(counts) - 1)] += 1
    return width, [Bucket(start=first + timedelta(hours=i * width), failures=n) for i, n in enumerate(counts)]


def _failing_steps(entries: Iterable[Entry], since: datetime, top: int) -> list[FailingStep]:
    counted: Counter[tuple[str, str, str, str]] = Counter()
    last: dict[tuple[str, str, str, str], datetime] = {}
    for entry in entries:
        alert = entry.alert
        if alert.raised < since:
            continue
        for activity in alert.failedActivities:
            key = (alert.target, alert.pipeline, activity.name, activity.type)
            counted[key] += 1
            last[key] = max(last.get(key, alert.raised), alert.raised)
    ranked = sorted(counted, key=lambda key: (-counted[key], -last[key].timestamp(), key))
    return [
        FailingStep(target=key[0], pipeline=key[1], step=key[2], type=key[3], failures=counted[key], last_at=last[key])
        for key in ranked[:top]
    ]


def _alert_counts(entries: Iterable[Entry], since: datetime) -> AlertCounts:
    waiting = undelivered = acknowledged = 0
    for entry in entries:
        if entry.state == Waiting.UNDELIVERED:
            undelivered += 1
        elif entry.state == Waiting.ACKNOWLEDGED:
            at = entry.record.acknowledged_at if entry.record else None
            acknowledged += at is not None and at >= since
        else:
            waiting += 1
    return AlertCounts(waiting=waiting, undelivered=undelivered, acknowledged=acknowledged)


def summarize(
    runs: Sequence[Run],
    live: Iterable[Run],
    entries: Sequence[Entry],
    *,
    since: datetime,
    until: datetime,
    top: int = 5,
    partial: bool = False,
) -> ShiftSummary:
    """The summary of ``runs`` (created in the window), the runs still in flight (``live``, whenever they
    started) and the alerts (``entries``: waiting, undelivered and acknowledged ones)."""
    groups: dict[_Work, list[Run]] = {}
    for run in runs:
        groups.setdefault(_work_of(run), []).append(run)
    work = [_work_summary(key, group) for key, group in groups.items()]
    work.sort(key=lambda item: (-item.failed, -item.runs, item.target, item.noun, item.name))
    running = sorted((run for run in live if run.in_flight), key=lambda run: run.run_start or run.created_at)
    longest = []
    for run in running[:top]:
        started = run.run_start or run.created_at
        names = _work_of(run)
        longest.append(
            LiveRun(
                id=run.id,
                target=run.target,
                noun=names.noun,
                name=names.name,
                status=run.status,
                since=started,
                running_ms=max(0, int((until - started) / timedelta(milliseconds=1))),
            )
        )
    width, buckets = _buckets(runs, since, until)
    return ShiftSummary(
        since=since,
        until=until,
        runs=len(runs),
        succeeded=sum(item.succeeded for item in work),
        failed=sum(item.failed for item in work),
        live=len(running),
        retries=sum(1 for run in runs if run.attempt > 1),
        pages_avoided=sum(1 for run in runs if run.attempt > 1 and run.status == RunStatus.SUCCEEDED),
        partial=partial,
        work=work,
        longest_running=longest,
        failing_steps=_failing_steps(entries, since, top),
        alerts=_alert_counts(entries, since),
        bucket_hours=width,
        failures_per_bucket=buckets,
    )


def shift_summary(context: AppContext, *, since: datetime, until: datetime, top: int) -> ShiftSummary:
    """Reads the window's runs (every product's: on-call is an operator), the live runs of every target,
    and the alerts, then summarizes them."""
    registry = context.registry
    runs: list[Run] = []
    token: str | None = None
    while len(runs) < MAX_RUNS:
        page, token = registry.list_runs(since=since, limit=PAGE, continuation=token)
        runs.extend(page)
        if token is None:
            break
    live = [run for target in context.catalog.targets for run in registry.live_runs(target.name)]
    entries = Inbox(context).waiting(limit=1000, include_acknowledged=True)
    return summarize(runs[:MAX_RUNS], live, entries, since=since, until=until, top=top, partial=token is not None)
