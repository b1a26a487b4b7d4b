"""Automatic retries: a failed run whose policy allows another attempt is rerun, and nobody is paged.

When the poller meets a failed run under a retry policy (``shared.config.retry``) it decides once, by
the policy and by what the run's kind says of the failure (``RunKind.retryable``): page now (no
attempts left, or a failure the policy does not retry), or retry. A retry is first recorded on the run,
ETag-conditionally and before anything is submitted: ``retry_state`` ``scheduled``, ``next_retry_at``
(the policy's backoff), the rerun request the kind asks for (``RunKind.retry_request``) and this
attempt's failure in a line. So a restart, or another poller, finds the schedule where it left it; of
two pollers deciding at once, one writes and the other meets a changed record.

At or after ``next_retry_at`` the poller submits the rerun through ``RunService.rerun``, the path a
manual rerun takes (same checks, caps, recording before the create call, link to the old run), under
the idempotency key ``gateway-retry:{chain root}:{attempt}`` of the run's own caller: a second poller,
or the same one after a crash, gets the rerun that was submitted, never another. The service submits
only while the retry is still scheduled, so a cancel (``RunService.cancel`` of the failed run) that
lands first stops it. Then the failed run is marked ``retried`` and leaves the live rows: its chain
goes on at its rerun, which carries the next attempt number, the chain's root and the same policy.

A retry that cannot be started (the catalog no longer allows it, Azure refuses it for good) is
``refused`` and paged; a throttled or unavailable Azure, identity or storage is tried again next tick.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.alerts.build import failure_line
from shared.api.requests import RerunRequest
from shared.config.retry import MAX_ATTEMPTS, RetryPolicy
from shared.config.targets import TargetEntry
from shared.context import AppContext
from shared.errors import GatewayError, IdempotencyKeyReused, RetryNotPending, RunAlreadyRerun, RunNotFound
from shared.kinds.base import FailureDetails, RunKind, Source
from shared.runs.model import RetryState, Run, RunStatus
from shared.runs.service import Caller, RunService
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)

KEY_PREFIX = "gateway-retry"
# Throttled, unavailable, over a cap, or another poller's submission still in flight: try next tick.
_TRANSIENT_STATUSES = frozenset({429, 503})
_RETRY_SUFFIX = re.compile(r"\.retry\d+$")


@dataclass(frozen=True)
class Verdict:
    """What becomes of a failed run this tick: ``page`` it now; send the info-level ``notify`` of its
    scheduled retry; or neither (the retry is pending, or was submitted)."""

    run: Run
    page: bool = False
    notify: bool = False
    details: FailureDetails | None = None


def policy_of(kind: RunKind[Any, Any], target: TargetEntry, run: Run) -> RetryPolicy | None:
    """The retry policy the catalog gives the run's pipeline (or pool...) now: its rule's, else the
    target's."""
    resource = kind.resource(run)
    for rule in kind.rules(target):
        if rule.matches(resource):
            return target.retry_for(rule)
    return None


def retry_key(run: Run) -> str:
    """The idempotency key of the automatic rerun of ``run``: one per chain and attempt."""
    return f"{KEY_PREFIX}:{run.chain_root}:{run.attempt + 1}"


def retry_correlation(run: Run) -> str:
    """The correlation id of the rerun of ``run``: the chain's first request's, and the attempt, so logs,
    traces and Azure's request ids tie each attempt to the request that began the chain."""
    root = _RETRY_SUFFIX.sub("", run.correlation_id or run.chain_root)[:100]
    return f"{root}.retry{run.attempt + 1}"


class Retries:
    def __init__(self, context: AppContext, now: Callable[[], datetime]) -> None:
        self._context = context
        self._now = now

    def settle(self, run: Run, kind: RunKind[Any, Any], target: TargetEntry, source: Source) -> Verdict:
        """Decides, schedules or submits the retry of the failed ``run``, as far as its state allows."""
        if (
            run.rerun_by
            and run.retry_state in (RetryState.SCHEDULED, RetryState.RETRIED)
            and self._started(run.rerun_by)
        ):
            self._retire(run, run.rerun_by)  # rerun already (a crash came before this, or a person)
            return Verdict(run)
        if run.retry_state == RetryState.SCHEDULED:
            return self._when_due(run, kind, target, None)
        if run.retry_state is not None or run.rerun_by or run.cancel_requested_at is not None:
            return Verdict(run, page=True)  # cancelled or refused; rerun by hand; or a cancel was asked
        policy = policy_of(kind, target, run)
        if policy is None:
            return Verdict(run, page=True)
        details = source.failure_details(run, self._now())
        if run.attempt >= policy.attempts or not kind.retryable(details, policy):
            return Verdict(run, page=True, details=details)
        return self._when_due(self._schedule(run, kind, policy, details), kind, target, details)

    def earlier_attempts(self, run: Run) -> list[Run]:
        """The earlier runs of ``run``'s retry chain, oldest first (a point read each; chains are short)."""
        earlier: list[Run] = []
        current = run
        while current.retry_root is not None and current.rerun_of and len(earlier) < MAX_ATTEMPTS:
            try:
                current = self._context.registry.get(current.rerun_of)
            except RunNotFound:
                break
            earlier.insert(0, current)
        return earlier

    def _schedule(self, run: Run, kind: RunKind[Any, Any], policy: RetryPolicy, details: FailureDetails) -> Run:
        """Records the retry on the run (ETag-conditional: ConcurrentUpdate when another poller decided)."""
        due = self._now() + policy.delay(run.attempt)
        request = kind.retry_request(run, details)
        scheduled = self._context.registry.save(
            run.evolve(
                retry_state=RetryState.SCHEDULED,
                next_retry_at=due,
                max_attempts=policy.attempts,
                retry_options=request.model_dump(exclude_none=True),
                failure=failure_line(details, run),
            ),
            keep_live=True,
        )
        _LOGGER.warning(
            "Run %s failed (attempt %d of %d); retrying at %s: %s",
            run.id,
            run.attempt,
            policy.attempts,
            due.isoformat(),
            scheduled.failure,
            extra={"gateway_retry": "scheduled", "gateway_attempt": run.attempt, "gateway_run": run.id},
        )
        return scheduled

    def _when_due(
        self, run: Run, kind: RunKind[Any, Any], target: TargetEntry, details: FailureDetails | None
    ) -> Verdict:
        """The info-level notice first, when the policy asks for one; then, once due, the rerun."""
        policy = policy_of(kind, target, run)
        if policy is not None and policy.notify and run.retry_notified_at is None:
            return Verdict(run, notify=True, details=details)
        if run.next_retry_at is not None and self._now() < run.next_retry_at:
            return Verdict(run)
        return self._submit(run)

    def _submit(self, run: Run) -> Verdict:
        attempt = run.attempt + 1
        caller = Caller(subscription=run.caller, product=run.product, correlation_id=retry_correlation(run))
        request = RerunRequest.model_validate(run.retry_options)
        service = RunService(self._context)

        def rerun() -> Run:
            telemetry.begin(caller.correlation_id)  # this copy of the context only
            return service.rerun(run.id, request, caller, retry_key(run), automatic=True).run

        try:
            rerun_run = contextvars.copy_context().run(rerun)
        except (RunAlreadyRerun, RetryNotPending) as exc:
            _LOGGER.info("Automatic retry of run %s not submitted: %s", run.id, exc.detail)
            return Verdict(run)  # rerun by someone else, or cancelled: the next tick reads which
        except GatewayError as exc:
            if exc.status in _TRANSIENT_STATUSES or isinstance(exc, IdempotencyKeyReused):
                _LOGGER.warning("Automatic retry of run %s deferred to the next tick: %s", run.id, exc.detail)
                return Verdict(run)
            return Verdict(self._refuse(run, exc.detail), page=True)
        _LOGGER.warning(
            "Run %s retried as %s (attempt %d of %d)",
            run.id,
            rerun_run.id,
            attempt,
            run.max_attempts,
            extra={"gateway_retry": "submitted", "gateway_attempt": attempt, "gateway_run": run.id},
        )
        self._retire(run, rerun_run.id)
        return Verdict(run)

    def _refuse(self, run: Run, reason: str) -> Run:
        """Records that the retry could not be started, on the latest record (the service may have
        linked and unlinked a refused rerun meanwhile)."""
        registry = self._context.registry
        current = registry.get(run.id)
        _LOGGER.warning("Automatic retry of run %s could not be started: %s", run.id, reason)
        return registry.save(
            current.evolve(retry_state=RetryState.REFUSED, retry_note=f"its retry could not be started: {reason}"),
            keep_live=True,
        )

    def _started(self, rerun_id: str) -> bool:
        """Whether the rerun a failed run points at is one (a ``Rejected`` one started nothing and is
        replaced by the retry)."""
        try:
            return self._context.registry.get(rerun_id).status != RunStatus.REJECTED
        except RunNotFound:
            return False

    def _retire(self, run: Run, rerun_id: str) -> None:
        """Marks the failed run retried and moves it to the past rows: its chain goes on at its rerun."""
        registry = self._context.registry
        current = registry.get(run.id)
        retired = current.evolve(retry_state=RetryState.RETRIED, rerun_by=current.rerun_by or rerun_id)
        registry.save(retired, keep_live=False)
