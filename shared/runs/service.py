"""Starting runs: authorize against the catalog, record, call Azure, record the outcome.

The order is what makes "nothing accepted is lost" hold: the run is recorded (``Submitting``) before
the create call, so a crash or a lost answer leaves a record the poller reconciles; an
``Idempotency-Key`` claimed before recording makes a retried or racing request return the same run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.api.requests import RerunRequest, SparkBatchRequest, StartRunRequest
from shared.azure.storage import ConcurrentUpdate
from shared.config.catalog import AccessRule, DataFactoryTarget, SynapseTarget
from shared.context import AppContext
from shared.errors import (
    IdempotencyKeyReused,
    IdentityUnavailable,
    NotFound,
    OutcomeUnknown,
    RunAlreadyFinished,
    RunAlreadyRerun,
    RunNotFound,
    RunNotStarted,
    RunStillRunning,
    StorageUnavailable,
    UpstreamError,
    UpstreamRejected,
    ValidationFailed,
)
from shared.kinds.pipelines import CreatedRun, StartOptions
from shared.runs.model import Kind, Run, RunStatus, new_run_id, utcnow
from shared.runs.registry import IdempotencyRecord
from shared.telemetry import tracing as telemetry

if TYPE_CHECKING:
    from shared.kinds.spark import SparkClient

_LOGGER = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
# A key whose run is not recorded after this long belongs to a request that died.
IDEMPOTENCY_ABANDONED_AFTER = timedelta(seconds=60)
REPLAY_WAIT_SECONDS = 5.0


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


@dataclass(frozen=True)
class Submitted:
    """Azure's answer to a create, in the record's terms."""

    upstream_run_id: str
    request_id: str | None
    status: str
    upstream_status: str
    app_id: str | None = None


Submit = Callable[[], Submitted]


class RunService:
    def __init__(self, context: AppContext) -> None:
        self._context = context

    def start_pipeline_run(
        self, target_name: str, pipeline: str, request: StartRunRequest, caller: Caller, idempotency_key: str | None
    ) -> StartResult:
        target = self._context.catalog.get(target_name)
        rule = target.pipeline_rule(pipeline, caller.product)
        if isinstance(target, SynapseTarget) and request.startFromFailure:
            raise _no_start_from_failure()
        run = _new_run(
            target.name,
            target.kind,
            pipeline,
            caller,
            parameters=request.parameters,
            options=request.model_dump(exclude={"parameters"}, exclude_none=True),
            max_duration_minutes=rule.max_duration_minutes,
        )
        service = self._context.pipelines(target)
        fingerprint = _fingerprint(
            {"target": target.name, "pipeline": pipeline, **request.model_dump(exclude_none=True)}
        )

        def submit() -> Submitted:
            return _pipeline_submitted(service.create_run(pipeline, request.parameters, request.options()))

        return self._start(run, fingerprint, caller, idempotency_key, submit)

    def start_spark_batch(
        self, target_name: str, pool: str, request: SparkBatchRequest, caller: Caller, idempotency_key: str | None
    ) -> StartResult:
        target = self._synapse(target_name)
        rule = target.spark_pool_rule(pool, caller.product)
        definition = request.livy_body()
        run = _new_run(
            target.name,
            "spark",
            request.name,
            caller,
            parameters=definition,
            spark_pool=pool,
            max_duration_minutes=rule.max_duration_minutes,
        )
        client = self._context.spark(target, pool)
        fingerprint = _fingerprint({"target": target.name, "sparkPool": pool, **definition})
        return self._start(run, fingerprint, caller, idempotency_key, lambda: _batch_submitted(client, definition))

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
        self._authorize(target, run, caller)
        try:
            if run.kind == "spark" and isinstance(target, SynapseTarget) and run.spark_pool:
                self._context.spark(target, run.spark_pool).cancel_batch(run.upstream_run_id)
            else:
                self._context.pipelines(target).cancel_run(run.upstream_run_id, recursive=recursive)
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
        """Starts a new run linked to an ended one: an ADF/Synapse recovery rerun, or the same Spark batch."""
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
        rule = self._authorize(target, old, caller)
        fingerprint = _fingerprint({"rerunOf": old.id, **request.model_dump(exclude_none=True)})
        if old.kind == "spark":
            if request.startFromFailure or request.startActivityName:
                raise ValidationFailed(
                    "A Spark batch has no activities to resume from; rerun it without options.",
                    [{"field": "startFromFailure", "message": "not for Spark batches"}],
                )
            synapse = self._synapse(old.target)
            client = self._context.spark(synapse, old.spark_pool or "")
            run = _new_run(
                old.target,
                "spark",
                old.pipeline,
                caller,
                parameters=old.parameters,
                spark_pool=old.spark_pool,
                max_duration_minutes=rule.max_duration_minutes,
                rerun_of=old.id,
            )
            result = self._start(
                run, fingerprint, caller, idempotency_key, lambda: _batch_submitted(client, old.parameters)
            )
        else:
            if isinstance(target, SynapseTarget) and request.startFromFailure:
                raise _no_start_from_failure()
            options = StartOptions(
                reference_run_id=old.upstream_run_id,
                is_recovery=True,
                start_activity_name=request.startActivityName,
                start_from_failure=request.startFromFailure,
            )
            service = self._context.pipelines(target)
            run = _new_run(
                old.target,
                old.kind,
                old.pipeline,
                caller,
                parameters=old.parameters,
                options=_options_view(options),
                max_duration_minutes=rule.max_duration_minutes,
                rerun_of=old.id,
            )
            result = self._start(
                run,
                fingerprint,
                caller,
                idempotency_key,
                lambda: _pipeline_submitted(service.create_run(old.pipeline, old.parameters, options)),
            )
        if not result.replayed:
            self._link(old.id, result.run.id)
        return result

    def _replayed(self, caller: Caller, key: str | None, run_id: str) -> StartResult | None:
        """The run this caller's key already started, when a retry comes after the first request ended."""
        if key is None:
            return None
        record = self._context.registry.idempotency_record(caller.key, key)
        if record is None or record.run_id != run_id:
            return None
        return StartResult(self._context.registry.get(run_id), replayed=True)

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

    def _synapse(self, target_name: str) -> SynapseTarget:
        target = self._context.catalog.get(target_name)
        if not isinstance(target, SynapseTarget):
            raise NotFound(f"Target {target_name!r} is a Data Factory; Spark pools belong to Synapse targets.")
        return target

    def _authorize(self, target: DataFactoryTarget | SynapseTarget, run: Run, caller: Caller) -> AccessRule:
        """Whoever may start a run's pipeline (or pool) may cancel and rerun it; others may not."""
        if run.kind == "spark" and isinstance(target, SynapseTarget):
            return target.spark_pool_rule(run.spark_pool or "", caller.product)
        return target.pipeline_rule(run.pipeline, caller.product)

    def _start(
        self, run: Run, fingerprint: str, caller: Caller, idempotency_key: str | None, submit: Submit
    ) -> StartResult:
        registry = self._context.registry
        if idempotency_key is not None:
            earlier = registry.claim_idempotency_key(caller.key, idempotency_key, fingerprint, run.id, run.created_at)
            if earlier is not None:
                replay = self._replay(earlier, fingerprint, caller, idempotency_key, run)
                if replay is not None:
                    return StartResult(replay, replayed=True)
        try:
            run = registry.create(run)
        except StorageUnavailable:
            self._release(caller, idempotency_key)
            raise
        _LOGGER.info("Recorded run %s of %s/%s for %s", run.id, run.target, run.pipeline, caller.key)
        try:
            submitted = submit()
        except OutcomeUnknown as exc:
            _LOGGER.warning("Start of run %s has an unknown outcome; the poller will reconcile it", run.id)
            return StartResult(self._record(run.evolve(message=f"{exc.detail} The gateway will reconcile it.")), False)
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
        return StartResult(self._record(started), replayed=False)

    def _record(self, run: Run) -> Run:
        """Saves the outcome; if storage fails now, the record stays Submitting and the poller
        reconciles it, so the caller still gets the run Azure accepted."""
        try:
            return self._context.registry.save(run)
        except (StorageUnavailable, ConcurrentUpdate):
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

    def _replay(self, earlier: IdempotencyRecord, fingerprint: str, caller: Caller, key: str, run: Run) -> Run | None:
        """The run an earlier request with this key started, or None to start ``run`` instead."""
        registry = self._context.registry
        now = utcnow()
        expired = now - earlier.created_at > IDEMPOTENCY_TTL
        if not expired and earlier.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request; use a new key for a new run."
            )
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while not expired:
            try:
                return registry.get(earlier.run_id)
            except RunNotFound:
                if now - earlier.created_at > IDEMPOTENCY_ABANDONED_AFTER:
                    break
                if time.monotonic() > deadline:
                    raise IdempotencyKeyReused(
                        "A request with this Idempotency-Key is still being processed; retry shortly.",
                    ) from None
                time.sleep(0.1)  # the racing request records its run within milliseconds
                now = utcnow()
        try:
            registry.replace_idempotency_key(caller.key, key, earlier, run.id, fingerprint, utcnow())
        except ConcurrentUpdate:
            raise IdempotencyKeyReused(
                "A request with this Idempotency-Key is still being processed; retry shortly."
            ) from None
        return None

    def _release(self, caller: Caller, key: str | None) -> None:
        """Frees the key of a request that started nothing, so a retry can start the run."""
        if key is None:
            return
        try:
            self._context.registry.release_idempotency_key(caller.key, key)
        except StorageUnavailable:
            _LOGGER.warning("Could not release an idempotency key; it expires in %s", IDEMPOTENCY_TTL)


def _fingerprint(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_run(
    target: str,
    kind: Kind,
    name: str,
    caller: Caller,
    *,
    parameters: dict[str, Any],
    options: dict[str, Any] | None = None,
    spark_pool: str | None = None,
    max_duration_minutes: int | None = None,
    rerun_of: str | None = None,
) -> Run:
    now = utcnow()
    return Run(
        id=new_run_id(target),
        target=target,
        kind=kind,
        pipeline=name,
        status=RunStatus.SUBMITTING,
        created_at=now,
        updated_at=now,
        parameters=parameters,
        options=options or {},
        spark_pool=spark_pool,
        caller=caller.subscription,
        product=caller.product,
        correlation_id=caller.correlation_id,
        max_duration_minutes=max_duration_minutes,
        rerun_of=rerun_of,
    )


def _pipeline_submitted(created: CreatedRun) -> Submitted:
    return Submitted(created.run_id, created.request_id, RunStatus.QUEUED, RunStatus.QUEUED)


def _batch_submitted(client: SparkClient, definition: dict[str, Any]) -> Submitted:
    created, batch = client.create_batch(definition)
    return Submitted(created.run_id, created.request_id, batch.status, batch.state, batch.app_id)


def _options_view(options: StartOptions) -> dict[str, Any]:
    view = {
        "referencePipelineRunId": options.reference_run_id,
        "isRecovery": options.is_recovery,
        "startActivityName": options.start_activity_name,
        "startFromFailure": options.start_from_failure,
    }
    return {k: v for k, v in view.items() if v is not None}


def _ending(run: Run) -> str:
    when = f" at {run.run_end:%Y-%m-%d %H:%M:%S} UTC" if run.run_end else ""
    return f"{run.status}{when}"


def _no_start_from_failure() -> ValidationFailed:
    return ValidationFailed(
        "Synapse pipelines cannot start from failure.",
        [
            {
                "field": "startFromFailure",
                "message": "not supported by Synapse; use startActivityName with referencePipelineRunId",
            }
        ],
    )
