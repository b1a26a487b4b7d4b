"""How the poller observes runs upstream, one source per kind of work.

A source answers in bulk for its runs in flight, falls back to one GET for a run the bulk answer
lacks, offers candidates when a lost create answer must be reconciled, and gathers the failure
details an alert carries. Pipelines (ADF and Synapse alike) observe a whole target per
``queryPipelineRuns`` page; Spark batches observe a pool per Livy page of 20, when that is cheaper.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.errors import GatewayError, UpstreamNotFound
from shared.kinds.pipelines import ActivityRun, PipelineRun, PipelineRunStatus, PipelineService, RunQuery
from shared.kinds.spark import LIST_PAGE, SparkBatch, SparkClient
from shared.runs.model import Run, RunStatus

_LOGGER = logging.getLogger(__name__)

# Clocks differ and lastUpdated is written by Azure: widen the query window by this much.
WINDOW_SKEW = timedelta(minutes=5)
# The window ends well after our "now": a run Azure updated a moment ago must not fall outside it.
WINDOW_AHEAD = timedelta(days=1)


@dataclass(frozen=True)
class Observed:
    """One upstream run or batch as Azure reports it, in our terms."""

    upstream_run_id: str
    name: str
    status: str
    upstream_status: str
    message: str
    run_start: datetime | None
    run_end: datetime | None
    duration_ms: int | None
    submitted: datetime | None
    parameters: Mapping[str, str] | None = None
    app_id: str | None = None


@dataclass(frozen=True)
class FailureDetails:
    """What an alert says beyond the run record: failed activities, or Livy's errors and driver log."""

    activities: Sequence[ActivityRun] = ()
    errors: Sequence[str] = ()
    log_tail: Sequence[str] = ()
    app_id: str | None = None
    batch_name: str | None = None
    spark_ui: str | None = None


@dataclass
class Observation:
    runs: dict[str, Observed] = field(default_factory=dict)
    calls: int = 0


class Source(Protocol):
    def observe(self, runs: Sequence[Run], now: datetime) -> Observation: ...

    def get(self, upstream_run_id: str) -> Observed | None: ...

    def matches(self, run: Run, candidate: Observed) -> bool: ...

    def failure_details(self, run: Run, now: datetime) -> FailureDetails: ...


def from_pipeline_run(run: PipelineRun) -> Observed:
    return Observed(
        upstream_run_id=run.run_id,
        name=run.pipeline,
        status=run.status if run.status in RunStatus.ALL else RunStatus.IN_PROGRESS,
        upstream_status=run.status,
        message=run.message,
        run_start=run.run_start,
        run_end=run.run_end,
        duration_ms=run.duration_ms,
        submitted=run.run_start,
        parameters=run.parameters,
    )


def from_batch(batch: SparkBatch) -> Observed:
    duration = None
    if batch.start and batch.end:
        duration = int((batch.end - batch.start).total_seconds() * 1000)
    return Observed(
        upstream_run_id=str(batch.id),
        name=batch.name,
        status=batch.status,
        upstream_status=batch.state,
        message=batch.message,
        run_start=batch.start,
        run_end=batch.end,
        duration_ms=duration,
        submitted=batch.submitted,
        app_id=batch.app_id,
    )


class PipelineSource:
    """A target's pipeline runs: ``queryPipelineRuns`` over the window of the live runs."""

    def __init__(self, service: PipelineService) -> None:
        self._service = service

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        query = RunQuery(
            updated_after=min(r.created_at for r in runs) - WINDOW_SKEW,
            updated_before=now + WINDOW_AHEAD,
            pipelines=sorted({r.pipeline for r in runs}),
        )
        observation = Observation()
        for run in self._service.query_runs(query):
            observation.runs[run.run_id] = from_pipeline_run(run)
        return observation

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            return from_pipeline_run(self._service.get_run(upstream_run_id))
        except UpstreamNotFound:
            return None

    def matches(self, run: Run, candidate: Observed) -> bool:
        return candidate.name == run.pipeline and _same_parameters(candidate.parameters or {}, run.parameters)

    def failure_details(self, run: Run, now: datetime) -> FailureDetails:
        """The failed activities; an alert without them beats no alert, so a failure here is noted."""
        if not run.upstream_run_id:
            return FailureDetails()
        start = (run.run_start or run.created_at) - WINDOW_SKEW
        end = (run.run_end or now) + WINDOW_SKEW
        try:
            activities = self._service.query_activity_runs(run.pipeline, run.upstream_run_id, start, end)
        except GatewayError as exc:
            _LOGGER.warning("Activity runs of %s unavailable for its alert: %s", run.id, exc.detail)
            return FailureDetails()
        return FailureDetails(activities=[a for a in activities if a.status == PipelineRunStatus.FAILED])


class SparkPoolSource:
    """A Spark pool's batches: Livy lists 20 per page, so listing pays only when most of a pool's
    batches are ours and in flight; otherwise one GET per batch is cheaper."""

    def __init__(self, client: SparkClient) -> None:
        self._client = client

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        observation = Observation()
        first, total = self._client.list_batches(0)
        observation.calls += 1
        self._add(observation, first)
        pages = math.ceil(total / LIST_PAGE)
        reconciling = any(r.upstream_run_id is None for r in runs)
        if pages - 1 <= len(runs):
            for page in range(1, pages):
                self._add(observation, self._client.list_batches(page * LIST_PAGE)[0])
                observation.calls += 1
        elif reconciling:  # a lost create answer: the newest batches are the candidates
            self._add(observation, self._client.list_batches(max(0, total - LIST_PAGE))[0])
            observation.calls += 1
        return observation

    @staticmethod
    def _add(observation: Observation, batches: Sequence[SparkBatch]) -> None:
        for batch in batches:
            observation.runs[str(batch.id)] = from_batch(batch)

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            return from_batch(self._client.get_batch(upstream_run_id))
        except UpstreamNotFound:
            return None

    def matches(self, run: Run, candidate: Observed) -> bool:
        return candidate.name == run.pipeline

    def failure_details(self, run: Run, now: datetime) -> FailureDetails:
        if not run.upstream_run_id:
            return FailureDetails()
        try:
            batch = self._client.get_batch(run.upstream_run_id)
        except GatewayError as exc:
            _LOGGER.warning("Spark batch of %s unavailable for its alert: %s", run.id, exc.detail)
            return FailureDetails()
        return FailureDetails(
            errors=batch.errors,
            log_tail=batch.log,
            app_id=batch.app_id,
            batch_name=batch.name,
            spark_ui=batch.app_info.get("sparkUiUrl"),
        )


def _same_parameters(upstream: Mapping[str, str], ours: Mapping[str, object]) -> bool:
    """ADF reports parameter values as strings (JSON-encoded when not strings)."""
    expected = {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in ours.items()}
    return all(upstream.get(k) == v or _loose_equal(upstream.get(k), v) for k, v in expected.items())


def _loose_equal(left: object, right: str) -> bool:
    try:
        return isinstance(left, str) and json.loads(left) == json.loads(right)
    except ValueError:
        return False
