"""Starting, cancelling and rerunning runs: authorize against the catalog, record, call Azure, record
the outcome. What differs between kinds of target is asked of the kind (``shared.kinds``).

The order is what makes "nothing accepted is lost" hold: the run is recorded (``Submitting``) before
the create call, so a crash or a lost answer leaves a record the poller reconciles; an
``Idempotency-Key`` claimed before recording makes a retried or racing request return the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.api.requests import RerunRequest
from shared.azure.storage import AlreadyExists, ConcurrentUpdate
from shared.config.targets import AccessRule, TargetEntry
from shared.context import AppContext
from shared.errors import (
    GatewayError,
    IdentityUnavailable,
    OutcomeUnknown,
    RunAlreadyFinished,
    RunAlreadyRerun,
    RunNotFound,
    RunNotStarted,
    RunStillRunning,
    StorageUnavailable,
    UpstreamError,
    UpstreamRejected,
)
from shared.kinds.base import RunKind, Submission
from shared.kinds.registry import kind_named
from shared.runs.idempotency import TTL, fingerprint
from shared.runs.limits import Admission, Cap
from shared.runs.model import Run, RunStatus, new_run_id, utcnow
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is asking, as APIM tells us: subscription and product; ``direct`` without APIM."""

    subscription: str | None
    product: str | None
    correlation_id: str

    @property
    def key(self) -> str:
        return self.subscription or "direct"


@dataclass(frozen=True)
class StartResult:
    run: Run
    replayed: bool


class RunService:
    def __init__(self, context: AppContext) -> None:
        self._context = context

    def start(
        self,
        kind: RunKind[Any, Any],
        target: TargetEntry,
        resource: str,
        request: BaseModel,
        caller: Caller,
        idempotency_key: str | None,
    ) -> StartResult:
        """Starts ``resource`` (a pipeline, a Spark pool's batch) on ``target`` as ``kind`` does it."""
        rule = kind.rule(target, resource, caller.product)
        resource = rule.canonical(resource)
        run_id = new_run_id(target.name)
        submission = kind.prepare(self._context, target, resource, request, run_id=run_id, rule=rule)
        run = _new_run(run_id, kind, target, submission, caller, rule)
        digest = fingerprint(kind.fingerprint(target, resource, request))
        caps = self._caps(kind, target, rule, caller)
        return self._start(run, digest, caller, idempotency_key, submission, caps)

    def cancel(self, run_id: str, *, recursive: bool, caller: Caller) -> Run:
        """Asks Azure to cancel; the poller sees the run through to Cancelled. Twice is harmless."""
        run = self._context.registry.get(run_id)
        if run.terminal:
            raise RunAlreadyFinished(f"Run {run.id} already ended: {_ending(run)}. There is nothing to cancel.")
        if run.status == RunStatus.CANCELING:
            return run
        if run.upstream_run_id is None:
            raise RunNotStarted(
                f"Run {run.id} is still being submitted to Azure; retry the cancel in a minute, once it has an "
                "upstream run id."
            )
        target = self._context.catalog.get(run.target)
        kind = kind_named(run.kind)
        self._authorize(kind, target, run, caller)
        try:
            kind.cancel(self._context, target, run, recursive=recursive)
        except UpstreamRejected as exc:
            raise RunAlreadyFinished(
                f"Azure would not cancel run {run.id}: {exc.detail} It has probably just ended; "
                "GET the run after the next poll."
            ) from exc
        _LOGGER.info("Cancel of run %s requested by %s (recursive=%s)", run.id, caller.key, recursive)
        return self._update(
            run.id,
            lambda r: (
                r
                if r.terminal
                else r.evolve(status=RunStatus.CANCELING, cancel_requested_at=utcnow(), cancel_requested_by=caller.key)
            ),
        )

    def rerun(self, run_id: str, request: RerunRequest, caller: Caller, idempotency_key: str | None) -> StartResult:
        """Starts a new run linked to an ended one, recovering from where its kind can."""
        old = self._context.registry.get(run_id)
        if not old.terminal:
            raise RunStillRunning(f"Run {old.id} is still {old.status}; cancel it or wait for it to end first.")
        if old.rerun_by:
            replay = self._replayed(caller, idempotency_key, old.rerun_by)
            if replay is not None:
                return replay
            raise RunAlreadyRerun(f"Run {old.id} was already rerun as {old.rerun_by}; rerun that one instead.")
        if old.upstream_run_id is None:
            raise RunNotStarted(f"Run {old.id} never started in Azure ({old.status}); start the pipeline anew.")
        target = self._context.catalog.get(old.target)
        kind = kind_named(old.kind)
        rule = self._authorize(kind, target, old, caller)
        run_id = new_run_id(target.name)
        submission = kind.prepare_rerun(self._context, target, old, request, run_id=run_id)
        run = _new_run(run_id, kind, target, submission, caller, rule, rerun_of=old.id)
        digest = fingerprint({"rerunOf": old.id, **request.model_dump(exclude_none=True)})
        caps = self._caps(kind, target, rule, caller)
        result = self._start(run, digest, caller, idempotency_key, submission, caps)
        if not result.replayed:
            self._link(old.id, result.run.id)
        return result

    def chain(self, run: Run, limit: int = 20) -> list[Run]:
        """The rerun chain through ``run``, oldest first (a few point reads; chains are short)."""
        registry = self._context.registry
        before: list[Run] = []
        current = run
        while current.rerun_of and len(before) < limit:
            try:
                current = registry.get(current.rerun_of)
            except RunNotFound:
                break
            before.insert(0, current)
        after: list[Run] = []
        current = run
        while current.rerun_by and len(after) < limit:
            try:
                current = registry.get(current.rerun_by)
            except RunNotFound:
                break
            after.append(current)
        return [*before, run, *after]

    def _authorize(self, kind: RunKind[Any, Any], target: TargetEntry, run: Run, caller: Caller) -> AccessRule:
        """Whoever may start a run's pipeline (or pool) may cancel and rerun it; others may not."""
        return kind.rule(target, kind.resource(run), caller.product)

    def _replayed(self, caller: Caller, key: str | None, run_id: str) -> StartResult | None:
        """The run this caller's key already started, when a retry comes after the first request ended."""
        if key is None:
            return None
        record = self._context.idempotency.get(caller.key, key)
        if record is None or record.run_id != run_id:
            return None
        return StartResult(self._context.registry.get(run_id), replayed=True)

    def _caps(self, kind: RunKind[Any, Any], target: TargetEntry, rule: AccessRule, caller: Caller) -> list[Cap]:
        """The caps a start by ``caller`` under ``rule`` counts against: its product's, and the entry's."""
        caps = []
        product = caller.product
        limits = self._context.catalog.limits_for(product)
        if limits is not None:
            caps.append(Cap(f"API product {product or '(none)'}", limits, lambda run: run.product == product))
        if rule.max_runs_in_flight is not None or rule.starts_per_minute is not None:
            caps.append(
                Cap(
                    f"{kind.resource_noun} {rule.match!r} on target {target.name}",
                    rule,
                    lambda run: (
                        run.target == target.name and run.kind == kind.name and rule.matches(kind.resource(run))
                    ),
                )
            )
        return caps

    def _start(
        self,
        run: Run,
        digest: str,
        caller: Caller,
        idempotency_key: str | None,
        submission: Submission,
        caps: list[Cap],
    ) -> StartResult:
        registry = self._context.registry
        if idempotency_key is not None:
            keys = self._context.idempotency
            earlier = keys.claim(caller.key, idempotency_key, digest, run.id, run.created_at)
            if earlier is not None:
                replay = keys.replay(earlier, digest, caller.key, idempotency_key, run.id, registry.get)
                if replay is not None:
                    return StartResult(replay, replayed=True)
        if caps:
            try:
                Admission(registry).admit(caps, utcnow())
            except GatewayError:
                self._release(caller, idempotency_key)
                raise
        try:
            run = registry.create(run)
        except StorageUnavailable:
            self._release(caller, idempotency_key)
            raise
        _LOGGER.info("Recorded run %s of %s/%s for %s", run.id, run.target, run.pipeline, caller.key)
        try:
            submitted = submission.submit()
        except OutcomeUnknown as exc:
            _LOGGER.warning("Start of run %s has an unknown outcome; the poller will reconcile it", run.id)
            unknown = run.evolve(message=f"{exc.detail} The gateway will reconcile it.", submit_ended_at=utcnow())
            return StartResult(self._record(unknown), False)
        except (UpstreamError, IdentityUnavailable) as exc:
            self._record(run.evolve(status=RunStatus.REJECTED, message=exc.detail))
            self._release(caller, idempotency_key)
            raise
        _LOGGER.info("Azure started run %s as %s (request %s)", run.id, submitted.upstream_run_id, submitted.request_id)
        telemetry.run_started(run.target, run.kind)
        started = run.evolve(
            status=submitted.status,
            upstream_status=submitted.upstream_status,
            upstream_run_id=submitted.upstream_run_id,
            upstream_request_id=submitted.request_id,
            app_id=submitted.app_id,
        )
        owner = kind_named(run.kind).ownership_key(run, submitted.upstream_run_id)
        return StartResult(self._record(started, owns=owner), replayed=False)

    def _record(self, run: Run, *, owns: str | None = None) -> Run:
        """Saves the outcome (and, with ``owns``, that the run owns that Azure run); if storage fails
        now, the record stays Submitting and the poller reconciles it, so the caller still gets the
        run Azure accepted."""
        try:
            return self._context.registry.save(run, owns=owns)
        except (StorageUnavailable, ConcurrentUpdate, AlreadyExists):
            _LOGGER.warning("Could not record the outcome of run %s; the poller will reconcile it", run.id)
            return run

    def _update(self, run_id: str, change: Callable[[Run], Run], attempts: int = 3) -> Run:
        """Applies ``change`` to the latest record, re-reading when someone else wrote in between; the
        record stays where it is (the poller decides when it leaves the live set)."""
        registry = self._context.registry
        for _ in range(attempts):
            run = registry.get(run_id)
            changed = change(run)
            if changed is run:
                return run
            try:
                return registry.save(changed, keep_live=registry.is_live(run))
            except ConcurrentUpdate:
                continue
        raise StorageUnavailable(f"Run {run_id} kept changing while it was being updated; try again.")

    def _link(self, old_id: str, new_id: str) -> None:
        """Points the old run at its rerun; the new run already points back, so a failure here only
        loses the forward link, which is logged."""
        try:
            self._update(old_id, lambda r: r.evolve(rerun_by=new_id))
        except StorageUnavailable:
            _LOGGER.warning("Could not link run %s to its rerun %s", old_id, new_id)

    def _release(self, caller: Caller, key: str | None) -> None:
        """Frees the key of a request that started nothing, so a retry can start the run."""
        if key is None:
            return
        try:
            self._context.idempotency.release(caller.key, key)
        except StorageUnavailable:
            _LOGGER.warning("Could not release an idempotency key; it expires in %s", TTL)


def _new_run(
    run_id: str,
    kind: RunKind[Any, Any],
    target: TargetEntry,
    submission: Submission,
    caller: Caller,
    rule: AccessRule,
    *,
    rerun_of: str | None = None,
) -> Run:
    now = utcnow()
    return Run(
        id=run_id,
        target=target.name,
        kind=kind.name,
        pipeline=submission.name,
        status=RunStatus.SUBMITTING,
        created_at=now,
        updated_at=now,
        parameters=submission.parameters,
        options=submission.options,
        spark_pool=submission.pool,
        caller=caller.subscription,
        product=caller.product,
        correlation_id=caller.correlation_id,
        max_duration_minutes=rule.max_duration_minutes,
        rerun_of=rerun_of,
        correlation_parameter=submission.correlation_parameter,
    )


def _ending(run: Run) -> str:
    when = f" at {run.run_end:%Y-%m-%d %H:%M:%S} UTC" if run.run_end else ""
    return f"{run.status}{when}"
