"""Starting, cancelling and rerunning runs: authorize against the catalog, record, call Azure, record
the outcome. What differs between kinds of target is asked of the kind (``shared.kinds``).

The order is what makes "nothing accepted is lost" hold: the run is recorded (``Submitting``) before
the create call, so a crash or a lost answer leaves a record the poller reconciles; an
``Idempotency-Key`` claimed before recording makes a retried or racing request return the same run.

A run belongs to the API product that started it. Reading, cancelling and rerunning it is for that
product alone (or an operator, see ``Caller``); anyone else is told it does not exist, before anything
about its state is said, so no answer confirms another product's run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from shared.api.requests import RerunRequest
from shared.azure.storage import AlreadyExists, ConcurrentUpdate
from shared.config.targets import AccessRule, TargetEntry
from shared.context import AppContext
from shared.errors import (
    GatewayError,
    IdentityUnavailable,
    NotAllowed,
    OutcomeUnknown,
    RetryNotPending,
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
from shared.runs.model import RetryState, Run, RunStatus, new_run_id, utcnow
from shared.runs.registry import no_such_run, tenant
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is asking, as APIM tells us: subscription and product; ``direct`` without APIM.

    The product is the tenant: a caller sees and steers the runs its product started, and calls
    without a product (the function key used directly) those started without one. An ``operator``
    (a product the catalog names in ``operatorProducts``, or the on-call CLI) sees and steers every run.
    """

    subscription: str | None
    product: str | None
    correlation_id: str
    operator: bool = False

    @property
    def key(self) -> str:
        return self.subscription or "direct"

    @property
    def tenant(self) -> str | None:
        """The tenant whose runs a listing holds; None: every tenant's."""
        return None if self.operator else tenant(self.product)

    def sees(self, run: Run) -> bool:
        return self.operator or run.product == self.product


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
        if submission.recovers is not None:
            self._check_recovery(kind, run, submission.recovers)
        digest = fingerprint(kind.fingerprint(target, resource, request))
        caps = self._caps(kind, target, rule, caller)
        return self._start(run, digest, caller, idempotency_key, submission, caps)

    def get(self, run_id: str, caller: Caller) -> Run:
        """The run, when the caller may see it; another product's run is not found, like a missing one."""
        run = self._context.registry.get(run_id)
        if not caller.sees(run):
            raise no_such_run(run_id)
        return run

    def cancel(self, run_id: str, *, recursive: bool, caller: Caller) -> Run:
        """Asks Azure to cancel; the poller sees the run through to Cancelled. Twice is harmless."""
        run = self.get(run_id, caller)
        target = self._context.catalog.get(run.target)
        kind = kind_named(run.kind)
        self._authorize(kind, target, run, caller)
        if run.terminal:
            if run.may_retry or run.retry_state == RetryState.CANCELLED:  # twice is harmless
                return self._cancel_retry(run, caller)
            retry = f" Its automatic retry is run {run.rerun_by}." if run.retry_state == RetryState.RETRIED else ""
            raise RunAlreadyFinished(f"Run {run.id} already ended: {_ending(run)}. There is nothing to cancel.{retry}")
        if run.status == RunStatus.CANCELING:
            return run
        if run.upstream_run_id is None:
            raise RunNotStarted(
                f"Run {run.id} is still being submitted to Azure; retry the cancel in a minute, once it has an "
                "upstream run id."
            )
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

    def rerun(
        self,
        run_id: str,
        request: RerunRequest,
        caller: Caller,
        idempotency_key: str | None,
        *,
        automatic: bool = False,
    ) -> StartResult:
        """Starts a new run linked to an ended one, recovering from where its kind can. The new run
        belongs to the old one's product, whoever asks (an operator steers, it does not take over).

        The old run is linked to the new one after the new one is recorded and before the create call,
        only if nobody linked another meanwhile: two reruns of one run (two people, or a person and the
        poller's automatic retry) never both reach Azure. A rerun Azure refused is unlinked again (and
        one left linked by a crash may be replaced). ``automatic`` is the poller's retry: the next
        attempt of the old run's chain, submitted only while that retry is still scheduled.
        """
        old = self.get(run_id, caller)
        target = self._context.catalog.get(old.target)
        kind = kind_named(old.kind)
        rule = self._authorize(kind, target, old, caller)
        if not old.terminal:
            raise RunStillRunning(f"Run {old.id} is still {old.status}; cancel it or wait for it to end first.")
        replaceable = None
        if old.rerun_by:
            replay = self._replayed(caller, idempotency_key, old.rerun_by)
            if replay is not None:
                return replay
            replaceable = self._refused_rerun(old)
        if old.upstream_run_id is None:
            raise RunNotStarted(f"Run {old.id} never started in Azure ({old.status}); start the pipeline anew.")
        run_id = new_run_id(target.name)
        submission = kind.prepare_rerun(self._context, target, old, request, run_id=run_id)
        for_owner = replace(caller, product=old.product)  # the same caller, on behalf of the run's product
        retry_of = old if automatic else None
        run = _new_run(run_id, kind, target, submission, for_owner, rule, rerun_of=old.id, retry_of=retry_of)
        digest = fingerprint({"rerunOf": old.id, **request.model_dump(exclude_none=True)})
        caps = self._caps(kind, target, rule, for_owner)

        def claim(_: Run) -> None:
            self._claim_rerun(old.id, run_id, replaceable=replaceable, automatic=automatic)

        try:
            return self._start(run, digest, caller, idempotency_key, submission, caps, claim=claim)
        except (UpstreamError, IdentityUnavailable):
            self._unlink(old.id, run_id)  # nothing started: the old run may be rerun again
            raise

    def chain(self, run: Run, caller: Caller, limit: int = 20) -> list[Run]:
        """The rerun chain through ``run`` as far as the caller may see it, oldest first (a few point
        reads; chains are short)."""
        registry = self._context.registry
        before: list[Run] = []
        current = run
        while current.rerun_of and len(before) < limit:
            try:
                current = registry.get(current.rerun_of)
            except RunNotFound:
                break
            if not caller.sees(current):
                break
            before.insert(0, current)
        after: list[Run] = []
        current = run
        while current.rerun_by and len(after) < limit:
            try:
                current = registry.get(current.rerun_by)
            except RunNotFound:
                break
            if not caller.sees(current):
                break
            after.append(current)
        return [*before, run, *after]

    def _authorize(self, kind: RunKind[Any, Any], target: TargetEntry, run: Run, caller: Caller) -> AccessRule:
        """The run's product may cancel and rerun it while the catalog lets it start the pipeline (or
        pool); an operator may as long as the catalog has the pipeline at all."""
        resource = kind.resource(run)
        if caller.operator:
            for rule in kind.rules(target):
                if rule.matches(resource):
                    return rule
        return kind.rule(target, resource, caller.product)

    def _check_recovery(self, kind: RunKind[Any, Any], run: Run, upstream_run_id: str) -> None:
        """A start that recovers an upstream run joins that run's group and takes its parameters, so it
        must name one the gateway recorded for the same target, pipeline and product."""
        registry = self._context.registry
        owner_id = registry.owner_of(run.target, kind.ownership_key(run, upstream_run_id))
        try:
            owner = registry.get(owner_id) if owner_id is not None else None
        except RunNotFound:
            owner = None
        if owner is None or owner.product != run.product or owner.pipeline.casefold() != run.pipeline.casefold():
            raise NotAllowed(
                f"referencePipelineRunId {upstream_run_id!r} is not a run the gateway started for your API product "
                f"on {run.target}/{run.pipeline}; recover your own runs, or rerun them (POST /api/runs/{{id}}/rerun)."
            )

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
            caps.append(Cap(f"API product {product or '(none)'}", limits, lambda row: True, product=product))
        if rule.max_runs_in_flight is not None or rule.starts_per_minute is not None:
            caps.append(
                Cap(
                    f"{kind.resource_noun} {rule.match!r} on target {target.name}",
                    rule,
                    lambda row: row.kind == kind.name and rule.matches(kind.resource(row)),
                    target=target.name,
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
        *,
        claim: Callable[[Run], None] | None = None,
    ) -> StartResult:
        """Claims the key, admits, records, then (after ``claim``, which may refuse the run) submits."""
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
        if claim is not None:
            try:
                claim(run)
            except GatewayError as exc:
                self._record(run.evolve(status=RunStatus.REJECTED, message=exc.detail))
                self._release(caller, idempotency_key)
                raise
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

    def _record(self, run: Run, *, owns: str | tuple[str, ...] = ()) -> Run:
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

    def _refused_rerun(self, old: Run) -> str:
        """The rerun ``old`` points at, when it started nothing (``Rejected``: Azure refused it, or a crash
        left it linked) and may be replaced; else RunAlreadyRerun."""
        try:
            rerun = self._context.registry.get(old.rerun_by or "")
        except RunNotFound:
            rerun = None
        if rerun is None or rerun.status != RunStatus.REJECTED:
            raise RunAlreadyRerun(f"Run {old.id} was already rerun as {old.rerun_by}; rerun that one instead.")
        return rerun.id

    def _claim_rerun(self, old_id: str, new_id: str, *, replaceable: str | None, automatic: bool) -> None:
        """Links the old run to its rerun, if no other rerun did first (ETag-conditional, re-read on a
        race); an automatic retry also needs its retry still scheduled (not cancelled)."""

        def link(current: Run) -> Run:
            if current.rerun_by not in (None, replaceable):
                raise RunAlreadyRerun(f"Run {old_id} was already rerun as {current.rerun_by}; rerun that one instead.")
            if automatic and current.retry_state != RetryState.SCHEDULED:
                raise RetryNotPending(f"The automatic retry of run {old_id} is no longer scheduled.")
            return current.evolve(rerun_by=new_id)

        self._update(old_id, link)

    def _unlink(self, old_id: str, new_id: str) -> None:
        """Takes back the link to a rerun that started nothing; a failure here is logged (the link to a
        Rejected run is replaced by the next rerun anyway)."""
        try:
            self._update(old_id, lambda r: r.evolve(rerun_by=None) if r.rerun_by == new_id else r)
        except (StorageUnavailable, RunNotFound):
            _LOGGER.warning("Could not unlink run %s from its refused rerun %s", old_id, new_id)

    def _cancel_retry(self, run: Run, caller: Caller) -> Run:
        """Cancels the automatic retry of a failed run: the poller then alerts instead. Too late once the
        retry was submitted (cancel that run instead)."""

        def cancel(current: Run) -> Run:
            if current.rerun_by:
                raise RunAlreadyFinished(
                    f"Run {run.id} already ended: {_ending(current)}, and its rerun {current.rerun_by} has "
                    "started; cancel that run instead."
                )
            if current.retry_state == RetryState.CANCELLED:
                return current
            return current.evolve(
                retry_state=RetryState.CANCELLED,
                next_retry_at=None,
                cancel_requested_at=utcnow(),
                cancel_requested_by=caller.key,
            )

        cancelled = self._update(run.id, cancel)
        _LOGGER.info("Automatic retry of run %s cancelled by %s", run.id, caller.key)
        return cancelled

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
    retry_of: Run | None = None,
) -> Run:
    """A new record; ``retry_of``: the failed run whose automatic retry this is, the chain's next attempt
    (any other run is the first attempt of its own chain, under its rule's or target's policy)."""
    now = utcnow()
    policy = target.retry_for(rule)
    attempt, max_attempts, root = 1, policy.attempts if policy else 1, None
    if retry_of is not None:
        attempt, max_attempts, root = retry_of.attempt + 1, retry_of.max_attempts, retry_of.chain_root
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
        attempt=attempt,
        max_attempts=max_attempts,
        retry_root=root,
    )


def _ending(run: Run) -> str:
    when = f" at {run.run_end:%Y-%m-%d %H:%M:%S} UTC" if run.run_end else ""
    return f"{run.status}{when}"
