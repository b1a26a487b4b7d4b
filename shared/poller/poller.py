"""The poller: follows the runs in flight, records how they end, and raises alerts.

The unit of work is one target. Its runs are observed in bulk per source (a target's pipelines
through ``queryPipelineRuns``, a Spark pool through Livy's batch list), so upstream calls grow with
targets and pages, not with runs; only a run the bulk answer lacks costs a single GET.

Every write is ETag-conditional; a tick that overlaps another, or dies halfway, leaves records the
next tick finishes. Alerts are at-least-once with a stable id: the alert is claimed on the record,
sent, then flagged; a crash between send and flag resends the same alert id.

A failed run under a retry policy is rerun instead of alerted while attempts remain and the failure
matches (``shared.poller.retries``); its chain is alerted once, when the last attempt fails.

Retention (``sweep``): each tick deletes a bounded batch of runs older than ``GATEWAY_RETENTION_DAYS``
(past runs only: a run the poller still follows is never deleted) with the ownership rows that point
at them, and a bounded batch of expired idempotency keys; the next tick goes on where it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from shared.alerts.build import alert_id, build_alert
from shared.alerts.model import AlertKind
from shared.azure.storage import AlreadyExists, ConcurrentUpdate
from shared.config.targets import TargetEntry
from shared.context import AppContext
from shared.errors import GatewayError
from shared.kinds.base import FailureDetails, Match, Observation, Observed, RunKind, Source
from shared.kinds.registry import kind_named
from shared.poller.retries import Retries
from shared.runs.idempotency import TTL
from shared.runs.model import Run, RunStatus, utcnow
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)

# Clocks differ by this much at most once Azure's Date header is accounted for (it has 1 s resolution).
RECONCILE_SKEW = timedelta(minutes=1)
# How long getting a token may take before a create call is sent.
IDENTITY_BUDGET = timedelta(seconds=30)
MAX_CANDIDATES_NAMED = 5
WORKERS = 8
# At most this many expired runs, and as many expired idempotency keys, are deleted per tick.
RETENTION_BATCH = 100
# Alerts about a failure: they carry its details and the attempts of its retry chain.
FAILURES = (AlertKind.FAILED, AlertKind.RETRYING)

T = TypeVar("T")


@dataclass
class TargetReport:
    target: str
    live: int = 0
    updated: int = 0
    finished: int = 0
    alerts: int = 0
    single_gets: int = 0
    skipped: int = 0
    error: str | None = None


@dataclass
class Swept:
    runs: int = 0
    keys: int = 0


@dataclass
class TickReport:
    targets: list[TargetReport] = field(default_factory=list)
    seconds: float = 0.0
    out_of_time: bool = False
    swept: Swept = field(default_factory=Swept)


class Poller:
    def __init__(
        self,
        context: AppContext,
        *,
        now: Callable[[], datetime] = utcnow,
        submit_grace: timedelta | None = None,
        unknown_after: timedelta | None = None,
    ) -> None:
        """``submit_grace`` and ``unknown_after`` default to the settings (GATEWAY_SUBMIT_GRACE_SECONDS,
        GATEWAY_UNKNOWN_AFTER_SECONDS); so does the claim TTL (GATEWAY_ALERT_CLAIM_SECONDS), which is
        longer than building and sending an alert takes (an activity query with its retries, a queue write)."""
        settings = context.settings
        self._context = context
        self._now = now
        self._submit_grace = settings.submit_grace if submit_grace is None else submit_grace
        self._unknown_after = settings.unknown_after if unknown_after is None else unknown_after
        self._claim_ttl = settings.alert_claim_ttl
        self._retries = Retries(context, now)
        # Names this poller in the alert claims it writes: one per invocation, so two overlapping
        # invocations in one process stay apart too.
        self.name = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    def tick(self, budget_seconds: float | None = None) -> TickReport:
        """Polls every target within the time budget."""
        started = time.monotonic()
        budget = budget_seconds if budget_seconds is not None else self._context.settings.poll_budget_seconds
        report = TickReport()
        for target in self._context.catalog.targets:
            if time.monotonic() - started > budget:
                report.out_of_time = True
                _LOGGER.warning("Poll tick out of time before target %s; the next tick resumes", target.name)
                break
            report.targets.append(self.poll_target(target.name, deadline=started + budget))
        if not report.out_of_time:
            report.swept = self.sweep()
        report.seconds = time.monotonic() - started
        return report

    def sweep(self, limit: int = RETENTION_BATCH) -> Swept:
        """Deletes up to ``limit`` runs created before the retention period, with the ownership rows
        that point at them, and up to ``limit`` expired idempotency keys. Storage failing stops the
        sweep for this tick (logged); the next tick goes on."""
        now = self._now()
        before = now - self._context.settings.retention
        registry = self._context.registry
        swept = Swept()
        try:
            for target in self._context.catalog.targets:
                if swept.runs >= limit:
                    break
                expired = registry.expired(target.name, before, limit - swept.runs)
                owned: dict[str, list[str]] = {}
                for run in expired:
                    kind = kind_named(run.kind)
                    held = (
                        [run.upstream_run_id, *run.contested.split()] if run.upstream_run_id else run.contested.split()
                    )
                    keys = [kind.ownership_key(run, upstream) for upstream in held]
                    owned[run.id] = [key for key in keys if registry.owner_of(run.target, key) == run.id]
                swept.runs += registry.delete(expired, owned)
            swept.keys = self._context.idempotency.purge(now - TTL, limit)
        except GatewayError as exc:
            _LOGGER.warning("Retention sweep stopped for this tick: %s", exc.detail)
        if swept.runs or swept.keys:
            _LOGGER.info("Retention: deleted %d runs and %d idempotency keys", swept.runs, swept.keys)
        return swept

    def poll_target(self, name: str, *, deadline: float | None = None) -> TargetReport:
        report = TargetReport(name)
        target = self._context.catalog.get(name)
        try:
            runs = list(self._context.registry.live_runs(name))
            report.live = len(runs)
            telemetry.runs_in_flight(name, len(runs))
            for kind, source, group in self._sources(target, runs):
                self._poll(kind, target, source, group, report, deadline)
        except GatewayError as exc:
            report.error = exc.detail
            _LOGGER.warning("Polling target %s failed: %s", name, exc.detail)
        return report

    def _sources(self, target: TargetEntry, runs: list[Run]) -> list[tuple[RunKind[Any, Any], Source, list[Run]]]:
        """The target's runs grouped by how Azure reports on them (its pipelines, each Spark pool),
        as each run's kind groups them."""
        groups: dict[tuple[str, str], list[Run]] = {}
        for run in runs:
            groups.setdefault((run.kind, kind_named(run.kind).source_key(run)), []).append(run)
        sources: list[tuple[RunKind[Any, Any], Source, list[Run]]] = []
        for (name, key), group in sorted(groups.items()):
            kind = kind_named(name)
            sources.append((kind, kind.source(self._context, target, key), group))
        return sources

    def _poll(
        self,
        kind: RunKind[Any, Any],
        target: TargetEntry,
        source: Source,
        runs: list[Run],
        report: TargetReport,
        deadline: float | None,
    ) -> None:
        """Observe in bulk, write the changes in transactions, then alert: each phase checks the clock."""
        now = self._now()
        observation = source.observe(runs, now)
        upstream = observation.runs
        claimed = {r.upstream_run_id for r in runs if r.upstream_run_id}  # owned by live records: no read needed

        # Reconciliation claims upstream runs one at a time, so it goes first and alone.
        current: list[Run] = []
        for run in runs:
            if run.upstream_run_id is None and run.status == RunStatus.SUBMITTING:
                reconcile = partial(self._reconcile, kind, run, runs, source, observation, claimed, now)
                reconciled = self._attempt(report, run, reconcile)
                if reconciled is None or (reconciled.upstream_run_id is None and not reconciled.terminal):
                    continue
                run = reconciled
            current.append(run)

        missing = [r for r in current if not r.terminal and r.upstream_run_id not in upstream]
        report.single_gets += len(missing)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for observed in pool.map(telemetry.in_this_context(partial(self._get, source)), missing):
                if observed is not None:
                    upstream[observed.upstream_run_id] = observed

        writes: list[tuple[Run, bool]] = []
        alerting: list[tuple[Run, str]] = []
        newly_failed: set[str] = set()
        newly_ended: set[str] = set()
        for run in current:
            observed = upstream.get(run.upstream_run_id or "") if not run.terminal else None
            changed = _apply(run, observed) if observed is not None else run
            if changed.status == RunStatus.FAILED != run.status:
                newly_failed.add(changed.id)
            if changed.terminal and not run.terminal:
                newly_ended.add(changed.id)
            alert_kind = self._alert_kind(changed, target, now)
            if changed is not run or (changed.terminal and alert_kind is None):
                writes.append((changed, alert_kind is not None or not changed.terminal))
            elif alert_kind is not None:
                alerting.append((changed, alert_kind))
        if _late(deadline):
            report.skipped += len(writes) + len(alerting)
            return
        for saved in self._context.registry.save_many(writes):
            if saved is None:
                report.skipped += 1  # someone else moved it; the next tick sees their version
                continue
            report.updated += 1
            report.finished += saved.terminal
            if saved.id in newly_failed:
                telemetry.run_failed(saved.target, saved.kind)
            if saved.id in newly_ended and saved.run_end is not None:
                # run_end is in Azure's clock: compare with Azure's now, not ours.
                lag = now + observation.clock_offset - saved.run_end
                telemetry.run_ended(saved.target, saved.kind, lag.total_seconds())
            alert_kind = self._alert_kind(saved, target, now)
            if alert_kind is not None:
                alerting.append((saved, alert_kind))

        def alert(item: tuple[Run, str]) -> None:
            if _late(deadline):
                report.skipped += 1
                return
            if self._attempt(report, item[0], lambda: self._alert(item[0], item[1], kind, target, source)):
                report.alerts += 1

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(telemetry.in_this_context(alert), alerting))

    def _get(self, source: Source, run: Run) -> Observed | None:
        """The fallback for a run the bulk answer did not include."""
        try:
            return source.get(run.upstream_run_id or "")
        except GatewayError as exc:
            _LOGGER.warning("Run %s not observed this tick: %s", run.id, exc.detail)
            return None

    def _attempt(self, report: TargetReport, run: Run, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except ConcurrentUpdate:
            report.skipped += 1  # someone else moved it; the next tick sees their version
        except GatewayError as exc:
            report.skipped += 1
            _LOGGER.warning("Run %s not advanced this tick: %s", run.id, exc.detail)
        return None

    def _reconcile(
        self,
        kind: RunKind[Any, Any],
        run: Run,
        group: list[Run],
        source: Source,
        observation: Observation,
        claimed: set[str],
        now: datetime,
    ) -> Run:
        """Finds the Azure run a lost create answer started, only where it is provably this record's.

        A candidate carrying the record's id (correlation parameter, Livy tag) is proven. Otherwise
        one must have the same pipeline and exactly the same parameters, have started within the
        create call's own window (in Azure's clock), be owned by no other record, live or past, and
        be nobody else's possible run: another record still submitting with the same parameters and
        an overlapping window could as well have started it (records are written before their create
        call, so such a record is always there to see). When several candidates remain, or a rival
        record stays, the record becomes Unknown naming them, never a guess.
        """
        age = now - run.created_at
        if age < self._submit_grace:
            return run
        registry = self._context.registry
        start, end = self._create_window(run, observation.clock_offset)
        proven: list[Observed] = []
        possible: list[Observed] = []
        for candidate in observation.runs.values():
            if candidate.upstream_run_id in claimed:
                continue
            match = source.matches(run, candidate)
            if match == Match.PROVEN:
                proven.append(candidate)
            elif match == Match.POSSIBLE and candidate.submitted and start <= candidate.submitted <= end:
                possible.append(candidate)
        found = [  # a proof outranks another record's contest; a possible match does not
            c
            for c in (proven or possible)
            if registry.owner_of(run.target, kind.ownership_key(run, c.upstream_run_id), contests_count=not proven)
            in (None, run.id)
        ]
        rivals = [] if proven else self._rivals(run, found, group, source, observation.clock_offset)
        if len(found) == 1 and not rivals:
            chosen = found[0]
            claimed.add(chosen.upstream_run_id)
            _LOGGER.info("Reconciled run %s with upstream run %s", run.id, chosen.upstream_run_id)
            reconciled = _apply(run.evolve(upstream_run_id=chosen.upstream_run_id), chosen)
            owner = kind.ownership_key(run, chosen.upstream_run_id)
            try:
                return registry.save(reconciled, keep_live=True, owns=owner)
            except AlreadyExists:
                _LOGGER.info("Upstream run %s was claimed by another record meanwhile", chosen.upstream_run_id)
                return run
        if rivals and age >= self._unknown_after:
            names = ", ".join(sorted(c.upstream_run_id for c in found)[:MAX_CANDIDATES_NAMED])
            others = ", ".join(sorted(r.id for r in rivals)[:MAX_CANDIDATES_NAMED])
            _LOGGER.warning("Run %s and %s may each own Azure run(s) %s; marking it Unknown", run.id, others, names)
            return self._contest(
                kind,
                run,
                found,
                f"Its create answer was lost, and Azure run(s) {names} of {run.pipeline} match it as well as "
                f"run(s) {others} of the gateway, started with the same parameters at the same time: the "
                "gateway cannot tell whose it is; check in the Studio.",
            )
        if rivals:
            return run  # another record may yet be resolved (its answer saved late), which settles this one
        if len(found) > 1:
            names = ", ".join(sorted(c.upstream_run_id for c in found)[:MAX_CANDIDATES_NAMED])
            _LOGGER.warning("Run %s matches several Azure runs (%s); marking it Unknown", run.id, names)
            return self._contest(
                kind,
                run,
                found,
                f"Its create answer was lost and {len(found)} Azure runs of {run.pipeline} match it (same "
                f"parameters, started within its create call): {names}. The gateway cannot tell which is "
                "this run; check which is yours in the Studio.",
            )
        if age >= self._unknown_after:
            _LOGGER.warning("Run %s was never found in Azure; marking it Unknown", run.id)
            return registry.save(
                run.evolve(
                    status=RunStatus.UNKNOWN,
                    message=f"No run of {run.pipeline} matching this request appeared in Azure within "
                    f"{int(age.total_seconds() // 60)} minutes of the start request.",
                ),
                keep_live=True,
            )
        return run

    def _contest(self, kind: RunKind[Any, Any], run: Run, found: list[Observed], message: str) -> Run:
        """Marks ``run`` Unknown and holds ``found`` for it in the ownership index, in one transaction:
        a run this record may own must not be taken by another record once this one stops looking."""
        held = sorted(c.upstream_run_id for c in found)[:MAX_CANDIDATES_NAMED]
        unknown = run.evolve(status=RunStatus.UNKNOWN, message=message, contested=" ".join(held))
        owns = [kind.ownership_key(run, upstream) for upstream in held]
        try:
            return self._context.registry.save(unknown, keep_live=True, owns=owns, contests=True)
        except AlreadyExists:
            _LOGGER.info("A candidate of run %s was claimed meanwhile; it is looked at again next tick", run.id)
            return run

    def _rivals(
        self, run: Run, found: list[Observed], group: list[Run], source: Source, clock_offset: timedelta
    ) -> list[Run]:
        """Other records still submitting that could as well have started one of ``found``."""
        rivals = []
        for other in group:
            if other.id == run.id or other.upstream_run_id is not None or other.status != RunStatus.SUBMITTING:
                continue
            start, end = self._create_window(other, clock_offset)
            if any(
                source.matches(other, c) == Match.POSSIBLE and c.submitted and start <= c.submitted <= end
                for c in found
            ):
                rivals.append(other)
        return rivals

    def _create_window(self, run: Run, clock_offset: timedelta) -> tuple[datetime, datetime]:
        """When Azure may have started the run of this record's create call, in Azure's clock: from the
        record (made just before the call) to the call's end, or the longest a call can take."""
        connect, read = self._context.settings.upstream_timeout
        ended = run.submit_ended_at or run.created_at + timedelta(seconds=connect + read) + IDENTITY_BUDGET
        return run.created_at + clock_offset - RECONCILE_SKEW, ended + clock_offset + RECONCILE_SKEW

    def _alert_kind(self, run: Run, target: TargetEntry, now: datetime) -> str | None:
        if run.alerted_at is not None:
            return None
        if run.status == RunStatus.FAILED:
            return AlertKind.FAILED
        if run.status == RunStatus.UNKNOWN:
            return AlertKind.UNKNOWN
        if run.status == RunStatus.CANCELLED and self._context.catalog.alerts_on_cancel(target):
            return AlertKind.CANCELLED
        if (
            run.in_flight
            and run.max_duration_minutes
            and run.overdue_alerted_at is None
            and now - (run.run_start or run.created_at) > timedelta(minutes=run.max_duration_minutes)
        ):
            return AlertKind.OVERDUE
        return None

    def _alert(self, run: Run, alert_kind: str, kind: RunKind[Any, Any], target: TargetEntry, source: Source) -> bool:
        """Sends the alert the run needs; a failure is first settled with its retry policy, which may
        rerun it instead (then the alert is the info-level ``retrying`` one, if the policy asks, or none)."""
        details = None
        if alert_kind == AlertKind.FAILED:
            verdict = self._retries.settle(run, kind, target, source)
            if verdict.notify:
                return self._send(verdict.run, AlertKind.RETRYING, kind, target, source, verdict.details)
            if not verdict.page:
                return False
            run, details = verdict.run, verdict.details
        return self._send(run, alert_kind, kind, target, source, details)

    def _send(
        self,
        run: Run,
        alert_kind: str,
        kind: RunKind[Any, Any],
        target: TargetEntry,
        source: Source,
        details: FailureDetails | None = None,
    ) -> bool:
        """Claim, send, flag: a crash anywhere resends the same alert id, never a new one.

        The claim names this poller and the time, written only if the record is still the version
        read; another poller that finds a fresh claim leaves the alert to its owner, and takes it over
        (same id) only once the claim is older than the claim TTL, its owner having died.
        """
        registry = self._context.registry
        identifier = alert_id(run, alert_kind)
        claimed_at = run.alert_claimed_at
        if (
            run.alert_id == identifier
            and run.alert_claimed_by not in (None, self.name)
            and claimed_at is not None
            and self._now() - claimed_at < self._claim_ttl
        ):
            _LOGGER.info("Alert %s is being sent by %s; leaving it to that poller", identifier, run.alert_claimed_by)
            return False
        run = registry.save(
            run.evolve(alert_id=identifier, alert_claimed_by=self.name, alert_claimed_at=self._now()), keep_live=True
        )
        now = self._now()
        if details is None and alert_kind in FAILURES:
            details = source.failure_details(run, now)
        history, _ = registry.list_runs(target=run.target, pipeline=run.pipeline, limit=5, finished_only=True)
        previous: Sequence[Run] = [  # the pipeline's runs before this one's chain
            r for r in history if r.chain_root != run.chain_root and r.created_at < run.created_at
        ]
        alert = build_alert(
            run,
            alert_kind,
            kind=kind,
            target=target,
            details=details,
            history=previous,
            settings=self._context.settings,
            now=now,
            earlier_attempts=self._retries.earlier_attempts(run) if alert_kind in FAILURES else (),
        )
        self._context.alerts.send(alert.queue_message())
        telemetry.alert_sent(run.target, alert_kind)
        _LOGGER.warning("Alert %s: %s", identifier, alert.summary)
        released = {"alert_claimed_by": None, "alert_claimed_at": None}
        if alert_kind == AlertKind.OVERDUE:
            registry.save(run.evolve(overdue_alerted_at=now, alert_id=None, **released), keep_live=True)
        elif alert_kind == AlertKind.RETRYING:
            registry.save(run.evolve(retry_notified_at=now, alert_id=None, **released), keep_live=True)
        else:
            registry.save(run.evolve(alerted_at=now, **released), keep_live=False)
        return True


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _apply(run: Run, observed: Observed) -> Run:
    """The record updated with what Azure reports; the same object when nothing changed."""
    status = observed.status
    if run.status == RunStatus.CANCELING and status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS):
        status = RunStatus.CANCELING  # Azure has not caught up with the cancel yet
    changes = {
        # the name as Azure knows it: a caller may have written copy_SALES for copy_sales
        "pipeline": observed.name if observed.name.casefold() == run.pipeline.casefold() else run.pipeline,
        "status": status,
        "upstream_status": observed.upstream_status,
        "message": observed.message if observed.message or status == RunStatus.SUCCEEDED else run.message,
        "run_start": observed.run_start or run.run_start,
        "run_end": observed.run_end,
        "duration_ms": observed.duration_ms,
        "app_id": observed.app_id or run.app_id,
    }
    if all(getattr(run, key) == value for key, value in changes.items()):
        return run
    return run.evolve(**changes)
