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
from dataclasses import dataclass
from datetime import timedelta

from shared.catalog import SynapseTarget
from shared.context import AppContext
from shared.errors import (
    IdempotencyKeyReused,
    IdentityUnavailable,
    OutcomeUnknown,
    RunNotFound,
    StorageUnavailable,
    UpstreamError,
    ValidationFailed,
)
from shared.models import StartRunRequest
from shared.registry import ConcurrentUpdate, IdempotencyRecord
from shared.runs import Run, RunStatus, new_run_id, utcnow

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


class RunService:
    def __init__(self, context: AppContext) -> None:
        self._context = context

    def start_pipeline_run(
        self, target_name: str, pipeline: str, request: StartRunRequest, caller: Caller, idempotency_key: str | None
    ) -> StartResult:
        target = self._context.catalog.get(target_name)
        rule = target.pipeline_rule(pipeline, caller.product)
        if isinstance(target, SynapseTarget) and request.startFromFailure:
            raise ValidationFailed(
                "Synapse pipelines cannot start from failure.",
                [
                    {
                        "field": "startFromFailure",
                        "message": "not supported by Synapse; use startActivityName with referencePipelineRunId",
                    }
                ],
            )
        now = utcnow()
        run = Run(
            id=new_run_id(target.name),
            target=target.name,
            kind=target.kind,
            pipeline=pipeline,
            status=RunStatus.SUBMITTING,
            created_at=now,
            updated_at=now,
            parameters=request.parameters,
            options=request.model_dump(exclude={"parameters"}, exclude_none=True),
            caller=caller.subscription,
            product=caller.product,
            correlation_id=caller.correlation_id,
            max_duration_minutes=rule.max_duration_minutes,
        )
        registry = self._context.registry
        if idempotency_key is not None:
            fingerprint = _fingerprint(target.name, pipeline, request)
            earlier = registry.claim_idempotency_key(caller.key, idempotency_key, fingerprint, run.id, now)
            if earlier is not None:
                replay = self._replay(earlier, fingerprint, caller, idempotency_key, run)
                if replay is not None:
                    return StartResult(replay, replayed=True)
        try:
            run = registry.create(run)
        except StorageUnavailable:
            self._release(caller, idempotency_key)
            raise
        _LOGGER.info("Recorded run %s of %s/%s for %s", run.id, target.name, pipeline, caller.key)
        return StartResult(self._submit(run, request, caller, idempotency_key), replayed=False)

    def _submit(self, run: Run, request: StartRunRequest, caller: Caller, idempotency_key: str | None) -> Run:
        target = self._context.catalog.get(run.target)
        service = self._context.pipelines(target)
        try:
            created = service.create_run(run.pipeline, request.parameters, request.options())
        except OutcomeUnknown as exc:
            _LOGGER.warning("Start of run %s has an unknown outcome; the poller will reconcile it", run.id)
            return self._record(run.evolve(message=f"{exc.detail} The gateway will reconcile it."))
        except (UpstreamError, IdentityUnavailable) as exc:
            self._record(run.evolve(status=RunStatus.REJECTED, message=exc.detail))
            self._release(caller, idempotency_key)
            raise
        _LOGGER.info("Azure started run %s as %s (request %s)", run.id, created.run_id, created.request_id)
        return self._record(
            run.evolve(
                status=RunStatus.QUEUED,
                upstream_status=RunStatus.QUEUED,
                upstream_run_id=created.run_id,
                upstream_request_id=created.request_id,
            )
        )

    def _record(self, run: Run) -> Run:
        """Saves the outcome; if storage fails now, the record stays Submitting and the poller
        reconciles it, so the caller still gets the run Azure accepted."""
        try:
            return self._context.registry.save(run)
        except (StorageUnavailable, ConcurrentUpdate):
            _LOGGER.warning("Could not record the outcome of run %s; the poller will reconcile it", run.id)
            return run

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


def _fingerprint(target: str, pipeline: str, request: StartRunRequest) -> str:
    canonical = json.dumps(
        {"target": target, "pipeline": pipeline, "body": request.model_dump(exclude_none=True)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
