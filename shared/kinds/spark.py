"""Synapse Spark batch jobs through the workspace's Livy API (sparkJob.json 2020-12-01): the client,
how the poller follows a pool, and the kind. Spark pools are listed on the Synapse catalog entry, each
with the guardrails a batch must keep to (``shared.kinds.spark_rules``), on a start and on a rerun.

Livy has no ``api-version`` query (the version is a path segment) and pages its batch list at 20,
so following many batches in bulk is only cheaper than one GET each when they are most of the list.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from shared.api.requests import SparkBatchRequest, parse_body
from shared.azure.transport import TargetClient, UpstreamClient
from shared.config.settings import Settings
from shared.config.targets import AccessRule
from shared.errors import (
    GatewayError,
    NotAllowed,
    OutcomeUnknown,
    UpstreamBadResponse,
    UpstreamNotFound,
    ValidationFailed,
)
from shared.kinds.base import (
    WINDOW_SKEW,
    Azure,
    FailureDetails,
    FailureSignature,
    Match,
    Observation,
    Observed,
    RunKind,
    RunNames,
    Submission,
    Submitted,
)
from shared.kinds.checks import Check, run_check
from shared.kinds.pipelines import CreatedRun, parse_time
from shared.kinds.spark_rules import SparkPoolRule
from shared.kinds.synapse import SynapseTarget
from shared.runs.model import Run, RunStatus

if TYPE_CHECKING:
    from shared.api.requests import RerunRequest

_LOGGER = logging.getLogger(__name__)

LIVY_API_VERSION = "2020-12-01"
RUN_ID_TAG = "gatewayRunId"  # Livy tag carrying the gateway's run id: a lost create answer is found by it
LIST_PAGE = 20  # Livy's maximum
LOG_TAIL_LINES = 40


class LivyState:
    """Livy batch states (``LivyStates`` in the Microsoft SDKs), as the Airflow provider classifies them."""

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"
    RECOVERING = "recovering"
    TERMINAL = frozenset({SUCCESS, DEAD, KILLED, ERROR})


_STATUS_OF_STATE = {
    LivyState.NOT_STARTED: RunStatus.QUEUED,
    LivyState.STARTING: RunStatus.QUEUED,
    LivyState.RUNNING: RunStatus.IN_PROGRESS,
    LivyState.IDLE: RunStatus.IN_PROGRESS,
    LivyState.BUSY: RunStatus.IN_PROGRESS,
    LivyState.RECOVERING: RunStatus.IN_PROGRESS,
    LivyState.SHUTTING_DOWN: RunStatus.IN_PROGRESS,
    LivyState.SUCCESS: RunStatus.SUCCEEDED,
    LivyState.DEAD: RunStatus.FAILED,
    LivyState.ERROR: RunStatus.FAILED,
    LivyState.KILLED: RunStatus.CANCELLED,
}


@dataclass(frozen=True)
class SparkBatch:
    id: int
    name: str
    state: str
    result: str | None
    app_id: str | None
    start: datetime | None
    end: datetime | None
    submitted: datetime | None = None
    errors: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    app_info: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    causes: tuple[FailureSignature, ...] = ()  # each error's source (System, User...) and errorCode

    @property
    def status(self) -> str:
        """Our status: Livy's verdict (``result``) where it has one, else the state's meaning."""
        if self.result == "Cancelled":
            return RunStatus.CANCELLED
        if self.state in LivyState.TERMINAL and self.result == "Failed":
            return RunStatus.FAILED
        return _STATUS_OF_STATE.get(self.state, RunStatus.IN_PROGRESS)

    @property
    def message(self) -> str:
        return self.errors[0] if self.errors else ""


def parse_batch(data: Any, operation: str) -> SparkBatch:
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise UpstreamBadResponse(f"{operation} returned a Spark batch without an id.")
    livy: dict[str, Any] = data["livyInfo"] if isinstance(data.get("livyInfo"), dict) else {}
    infos = [e for e in data.get("errorInfo") or [] if isinstance(e, dict) and e.get("message")]
    errors = tuple(str(e["message"]) for e in infos)
    causes = tuple(FailureSignature(str(e.get("source") or ""), str(e.get("errorCode") or "")) for e in infos)
    log = tuple(str(line) for line in data.get("log") or [] if isinstance(line, str))
    app_info: dict[str, Any] = data["appInfo"] if isinstance(data.get("appInfo"), dict) else {}
    tags: dict[str, Any] = data["tags"] if isinstance(data.get("tags"), dict) else {}
    end = next((parse_time(livy.get(k)) for k in ("successAt", "deadAt", "killedAt") if livy.get(k)), None)
    scheduler: dict[str, Any] = data["schedulerInfo"] if isinstance(data.get("schedulerInfo"), dict) else {}
    return SparkBatch(
        id=data["id"],
        name=str(data.get("name") or ""),
        state=str(data.get("state") or ""),
        result=data.get("result") if isinstance(data.get("result"), str) else None,
        app_id=data.get("appId") if isinstance(data.get("appId"), str) else None,
        start=parse_time(livy.get("runningAt")) or parse_time(livy.get("startingAt")),
        end=end,
        submitted=parse_time(scheduler.get("submittedAt")) or parse_time(livy.get("notStartedAt")),
        errors=errors,
        log=log[-LOG_TAIL_LINES:],
        app_info={str(k): str(v) for k, v in app_info.items()},
        tags={str(k): str(v) for k, v in tags.items()},
        causes=causes,
    )


class SparkClient(TargetClient):
    """Batch jobs on one Spark pool of a Synapse workspace."""

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, pool: str, *, scope: str) -> None:
        super().__init__(
            upstream,
            base_url=f"{target.endpoint}/livyApi/versions/{LIVY_API_VERSION}/sparkPools/{pool}",
            scope=scope,
            target=target.name,
        )
        workspace = target.workspace_name
        self._submit_role = f"the Synapse Compute Operator role on Spark pool {pool} of workspace {workspace}"
        self._read_role = f"the Synapse User role on workspace {workspace}"

    def create_batch(self, definition: Mapping[str, Any]) -> tuple[CreatedRun, SparkBatch]:
        body, request_id = self._call(
            "createSparkBatchJob",
            "POST",
            "/batches",
            role=self._submit_role,
            creates=True,
            params={"detailed": "true"},
            body=dict(definition),
        )
        try:
            batch = parse_batch(body, "createSparkBatchJob")
        except UpstreamBadResponse as exc:
            # Livy accepted the batch but did not say which: reconciled like a lost answer, never resubmitted.
            raise OutcomeUnknown(f"{exc.detail} Livy may have accepted the batch.", request_id=request_id) from exc
        return CreatedRun(str(batch.id), request_id), batch

    def get_batch(self, batch_id: str) -> SparkBatch:
        body, _ = self._call(
            "getSparkBatchJob", "GET", f"/batches/{batch_id}", role=self._read_role, params={"detailed": "true"}
        )
        return parse_batch(body, "getSparkBatchJob")

    def list_batches(self, start: int, size: int = LIST_PAGE) -> tuple[list[SparkBatch], int]:
        """One page of the pool's batches (oldest first) and the pool's total."""
        body, _ = self._call(
            "getSparkBatchJobs",
            "GET",
            "/batches",
            role=self._read_role,
            params={"from": str(start), "size": str(size), "detailed": "true"},
        )
        if not isinstance(body, dict) or not isinstance(body.get("sessions"), list):
            raise UpstreamBadResponse("getSparkBatchJobs returned a page without sessions.")
        total = body["total"] if isinstance(body.get("total"), int) else 0
        return [parse_batch(item, "getSparkBatchJobs") for item in body["sessions"]], total

    def cancel_batch(self, batch_id: str) -> None:
        self._call("cancelSparkBatchJob", "DELETE", f"/batches/{batch_id}", role=self._submit_role)


def observed(batch: SparkBatch) -> Observed:
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
        tags=batch.tags,
    )


class SparkPoolSource:
    """A Spark pool's batches: Livy lists 20 per page, so listing pays only when most of a pool's
    batches are ours and in flight; otherwise one GET per batch is cheaper."""

    def __init__(self, client: SparkClient) -> None:
        self._client = client

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        observation = Observation()
        first, total = self._client.list_batches(0)
        observation.clock_offset = self._client.clock_offset()
        self._add(observation, first)
        pages = math.ceil(total / LIST_PAGE)
        lost = [r.created_at for r in runs if r.upstream_run_id is None]
        if pages - 1 <= len(runs):
            for page in range(1, pages):
                self._add(observation, self._client.list_batches(page * LIST_PAGE)[0])
        elif lost:
            self._newest_since(observation, total, min(lost) - WINDOW_SKEW + observation.clock_offset)
        return observation

    def _newest_since(self, observation: Observation, total: int, since: datetime) -> None:
        """Every page that can hold a batch submitted since ``since`` (a lost create answer's), newest
        first: Livy lists oldest first, so pages are read back from the end until one is older."""
        start = total
        while start > LIST_PAGE:  # the first page is read already
            start = max(LIST_PAGE, start - LIST_PAGE)
            batches = self._client.list_batches(start)[0]
            self._add(observation, batches)
            submitted = [b.submitted for b in batches if b.submitted is not None]
            if not batches or (submitted and min(submitted) < since):
                return

    @staticmethod
    def _add(observation: Observation, batches: Sequence[SparkBatch]) -> None:
        for batch in batches:
            observation.runs[str(batch.id)] = observed(batch)

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            return observed(self._client.get_batch(upstream_run_id))
        except UpstreamNotFound:
            return None

    def matches(self, run: Run, candidate: Observed) -> Match:
        """Proven by the tag the gateway put on the batch; a batch without it is never taken."""
        return Match.PROVEN if (candidate.tags or {}).get(RUN_ID_TAG) == run.id else Match.NO

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
            spark_ui=batch.app_info.get("sparkUiUrl"),
            causes=batch.causes,
        )


class SparkKind(RunKind[SynapseTarget, SparkBatchRequest]):
    """Batch jobs on a workspace's Spark pools, started through ``/targets/{t}/sparkpools/{pool}/batches``."""

    name = "spark"
    target_kind = "synapse"
    label = "Spark"
    studio = "Synapse Studio"
    family = "sparkpools"
    rules_field = "sparkPools"
    resource_noun = "Spark pool"
    target_model = SynapseTarget
    request_model = SparkBatchRequest

    def client(self, azure: Azure, target: SynapseTarget, pool: str) -> SparkClient:
        return azure.client(
            (self.name, target.name, pool),
            lambda: SparkClient(azure.upstream, target, pool, scope=azure.settings.synapse_scope),
        )

    def rules(self, target: SynapseTarget) -> tuple[SparkPoolRule, ...]:
        return target.spark_pools

    def _pool_rule(self, target: SynapseTarget, pool: str) -> SparkPoolRule:
        """The pool's rule as the catalog has it now: the first that matches the pool, the one the caller was
        authorized by (``allowed`` takes the first match too)."""
        for rule in target.spark_pools:
            if rule.matches(pool):
                return rule
        raise NotAllowed(f"Spark pool {pool!r} is not in the catalog of target {target.name!r}.")

    def resource(self, run: RunNames) -> str:
        return run.spark_pool or ""

    def fingerprint(self, target: SynapseTarget, resource: str, request: SparkBatchRequest) -> dict[str, Any]:
        return {"target": target.name, "sparkPool": resource, **request.livy_body()}

    def prepare(
        self,
        azure: Azure,
        target: SynapseTarget,
        resource: str,
        request: SparkBatchRequest,
        *,
        run_id: str,
        rule: AccessRule,
    ) -> Submission:
        if request.tags and RUN_ID_TAG in request.tags:
            raise ValidationFailed(
                f"Tag {RUN_ID_TAG!r} is set by the gateway (it carries the run id); leave it out.",
                [{"field": f"tags.{RUN_ID_TAG}", "message": "set by the gateway"}],
            )
        self._pool_rule(target, resource).check_batch(resource, request)
        definition = request.livy_body()
        client = self.client(azure, target, resource)
        return Submission(
            name=request.name,
            parameters=definition,
            pool=resource,
            submit=lambda: _submitted(client, _tagged(definition, run_id)),
        )

    def prepare_rerun(
        self, azure: Azure, target: SynapseTarget, run: Run, request: RerunRequest, *, run_id: str
    ) -> Submission:
        """The same batch definition again, tagged with the new run's id, if the pool's rules still allow it:
        they may have tightened since the first start, and a rerun must not be the way around them."""
        if request.startFromFailure or request.startActivityName:
            raise ValidationFailed(
                "A Spark batch has no activities to resume from; rerun it without options.",
                [{"field": "startFromFailure", "message": "not for Spark batches"}],
            )
        pool = self.resource(run)
        self._pool_rule(target, pool).check_batch(pool, parse_body(SparkBatchRequest, run.parameters))
        client = self.client(azure, target, pool)
        return Submission(
            name=run.pipeline,
            parameters=run.parameters,
            pool=run.spark_pool,
            submit=lambda: _submitted(client, _tagged(run.parameters, run_id)),
        )

    def cancel(self, azure: Azure, target: SynapseTarget, run: Run, *, recursive: bool) -> None:
        self.client(azure, target, self.resource(run)).cancel_batch(run.upstream_run_id or "")

    def source_key(self, run: Run) -> str:
        return self.resource(run)

    def source(self, azure: Azure, target: SynapseTarget, key: str) -> SparkPoolSource:
        return SparkPoolSource(self.client(azure, target, key))

    def describe(self, run: Run) -> str:
        return f"Spark {run.target}/{run.spark_pool} batch {run.pipeline} (id {run.upstream_run_id or '?'})"

    def links(self, target: SynapseTarget, run: Run, *, app_id: str | None, settings: Settings) -> dict[str, str]:
        """The Spark application's page in Synapse Studio's monitoring hub, once Livy has named it."""
        if not (app_id and run.spark_pool):
            return {}
        query = {"sparkPoolName": run.spark_pool}
        if target.resource_id:
            query["workspace"] = target.resource_id
        if run.upstream_run_id:
            query["livyId"] = run.upstream_run_id
        url = f"{settings.synapse_studio_url}/en/monitoring/sparkapplication/{quote(app_id, safe='')}"
        return {"studio": f"{url}?{urlencode(query)}"}

    def checks(self, azure: Azure, target: SynapseTarget) -> list[Check]:
        return [self._pool_check(azure, target, rule.match) for rule in target.spark_pools if rule.is_exact]

    def _pool_check(self, azure: Azure, target: SynapseTarget, pool: str) -> Check:
        client = self.client(azure, target, pool)

        def batches() -> dict[str, Any]:
            _, total = client.list_batches(0, size=1)
            return {"batches": total}

        return run_check(f"sparkPool:{pool}", "GET livyApi .../batches", batches)


def _tagged(definition: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The definition Livy gets: the record's, with the gateway's run id among its tags."""
    return {**definition, "tags": {**(definition.get("tags") or {}), RUN_ID_TAG: run_id}}


def _submitted(client: SparkClient, definition: Mapping[str, Any]) -> Submitted:
    created, batch = client.create_batch(definition)
    return Submitted(created.run_id, created.request_id, batch.status, batch.state, batch.app_id)


SPARK = SparkKind()
