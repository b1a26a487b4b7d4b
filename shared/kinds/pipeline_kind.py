"""What ADF and Synapse pipeline runs share as kinds: starting with recovery options, observing a
target's runs through ``queryPipelineRuns``, reconciling by parameters, and failed activities in alerts.

``DataFactoryKind`` and ``SynapseKind`` supply only their client, links and diagnostics.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

from shared.api.requests import RerunRequest, StartRunRequest
from shared.config.targets import AccessRule, PipelineRule, TargetEntry
from shared.errors import ConfigurationError, GatewayError, UpstreamNotFound, ValidationFailed
from shared.kinds.base import (
    WINDOW_SKEW,
    Azure,
    FailedActivity,
    FailureDetails,
    Match,
    Observation,
    Observed,
    RunKind,
    RunNames,
    Submission,
    Submitted,
)
from shared.kinds.checks import Check, run_check, skipped
from shared.kinds.pipelines import (
    ActivityRun,
    PipelineClient,
    PipelineRun,
    PipelineRunStatus,
    RunQuery,
    StartOptions,
)
from shared.runs.model import Run, RunStatus, utcnow

_LOGGER = logging.getLogger(__name__)

# The window ends well after our "now": a run Azure updated a moment ago must not fall outside it.
WINDOW_AHEAD = timedelta(days=1)
# A diagnostics count stops here: it shows activity, not a census.
RECENT_RUNS_CAP = 100

PipelineTarget = TypeVar("PipelineTarget", bound=TargetEntry)


class CorrelationParameterMissing(ConfigurationError):
    """A pipeline the catalog gives a correlation parameter does not declare it."""


def observed(run: PipelineRun) -> Observed:
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


class PipelineSource:
    """A target's pipeline runs: ``queryPipelineRuns`` over the window of the live runs."""

    def __init__(self, client: PipelineClient) -> None:
        self._client = client

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation:
        query = RunQuery(
            updated_after=min(r.created_at for r in runs) - WINDOW_SKEW,
            updated_before=now + WINDOW_AHEAD,
            pipelines=sorted({r.pipeline for r in runs}),
        )
        observation = Observation()
        for run in self._client.query_runs(query):
            observation.runs[run.run_id] = observed(run)
        observation.clock_offset = self._client.clock_offset()
        return observation

    def get(self, upstream_run_id: str) -> Observed | None:
        try:
            return observed(self._client.get_run(upstream_run_id))
        except UpstreamNotFound:
            return None

    def matches(self, run: Run, candidate: Observed) -> Match:
        """Proven by the correlation parameter when the run has one; else possible when the pipeline and
        every parameter agree exactly (a start without parameters matches only runs without any)."""
        if candidate.name.casefold() != run.pipeline.casefold():
            return Match.NO
        reported = candidate.parameters or {}
        if run.correlation_parameter:
            return Match.PROVEN if reported.get(run.correlation_parameter) == run.id else Match.NO
        return Match.POSSIBLE if _same_parameters(reported, run.parameters) else Match.NO

    def failure_details(self, run: Run, now: datetime) -> FailureDetails:
        """The failed activities; an alert without them beats no alert, so a failure here is noted."""
        if not run.upstream_run_id:
            return FailureDetails()
        start = (run.run_start or run.created_at) - WINDOW_SKEW
        end = (run.run_end or now) + WINDOW_SKEW
        try:
            activities = self._client.query_activity_runs(run.pipeline, run.upstream_run_id, start, end)
        except GatewayError as exc:
            _LOGGER.warning("Activity runs of %s unavailable for its alert: %s", run.id, exc.detail)
            return FailureDetails()
        return failed_activities(activities)


def failed_activities(activities: Iterable[ActivityRun]) -> FailureDetails:
    """The failed ones of a run's activity runs, as its alert shows them (ADF, Synapse and Fabric
    report activity runs alike)."""
    return FailureDetails(
        activities=[
            FailedActivity(a.name, a.type, a.error_code, a.failure_type, a.message, a.start, a.end)
            for a in activities
            if a.status == PipelineRunStatus.FAILED
        ]
    )


class PipelineRoute(RunKind[PipelineTarget, StartRunRequest]):
    """What every kind started through ``/targets/{t}/pipelines/{p}/runs`` shares (ADF, Synapse, Fabric):
    the route and its body, the entry's ``pipelines`` rules, and what makes two starts the same."""

    family: ClassVar[str] = "pipelines"
    rules_field: ClassVar[str] = "pipelines"
    resource_noun: ClassVar[str] = "Pipeline"
    request_model = StartRunRequest

    def rules(self, target: PipelineTarget) -> tuple[AccessRule, ...]:
        return target.pipelines

    def resource(self, run: RunNames) -> str:
        return run.pipeline

    def fingerprint(self, target: PipelineTarget, resource: str, request: StartRunRequest) -> dict[str, Any]:
        return {"target": target.name, "pipeline": resource, **request.model_dump(exclude_none=True)}


class PipelineKind(PipelineRoute[PipelineTarget]):
    """Pipeline runs of one factory or workspace over the shared pipelines REST contract."""

    start_from_failure: ClassVar[bool]  # whether createRun has startFromFailure

    @abstractmethod
    def client(self, azure: Azure, target: PipelineTarget) -> PipelineClient:
        """The target's pipeline client, built once per process."""

    def prepare(
        self,
        azure: Azure,
        target: PipelineTarget,
        resource: str,
        request: StartRunRequest,
        *,
        run_id: str,
        rule: AccessRule,
    ) -> Submission:
        if request.startFromFailure and not self.start_from_failure:
            raise self._no_start_from_failure()
        parameters = dict(request.parameters)
        correlation = rule.correlation_parameter if isinstance(rule, PipelineRule) else None
        if correlation is not None:
            if correlation in parameters:
                raise ValidationFailed(
                    f"Parameter {correlation!r} is set by the gateway (it carries the run id); leave it out.",
                    [{"field": f"parameters.{correlation}", "message": "set by the gateway"}],
                )
            parameters[correlation] = run_id
        client = self.client(azure, target)
        options = request.options()
        return Submission(
            name=resource,
            parameters=parameters,
            options=request.model_dump(exclude={"parameters"}, exclude_none=True),
            submit=lambda: _submitted(client, resource, parameters, options),
            correlation_parameter=correlation,
            recovers=request.referencePipelineRunId,
        )

    def prepare_rerun(
        self, azure: Azure, target: PipelineTarget, run: Run, request: RerunRequest, *, run_id: str
    ) -> Submission:
        """A recovery run: Azure takes the parameters of the referenced run, not the body's, so the rerun
        carries no run id of its own and a lost answer is matched by its parameters."""
        if request.startFromFailure and not self.start_from_failure:
            raise self._no_start_from_failure()
        options = StartOptions(
            reference_run_id=run.upstream_run_id,
            is_recovery=True,
            start_activity_name=request.startActivityName,
            start_from_failure=request.startFromFailure,
        )
        client = self.client(azure, target)
        return Submission(
            name=run.pipeline,
            parameters=run.parameters,
            options=options.view(),
            submit=lambda: _submitted(client, run.pipeline, run.parameters, options),
        )

    def retry_request(self, run: Run, details: FailureDetails) -> RerunRequest:
        """From the failure: ADF's ``startFromFailure``; Synapse has none, so ``startActivityName`` of the
        failed activity that started first (the rerun runs it and what follows); with no failed
        activity reported, the whole pipeline again."""
        from shared.api.requests import RerunRequest

        if self.start_from_failure:
            return RerunRequest(startFromFailure=True)
        if details.activities:
            first = min(details.activities, key=lambda a: a.start or datetime.max.replace(tzinfo=UTC))
            return RerunRequest(startActivityName=first.name)
        return RerunRequest()

    def cancel(self, azure: Azure, target: PipelineTarget, run: Run, *, recursive: bool) -> None:
        self.client(azure, target).cancel_run(run.upstream_run_id or "", recursive=recursive)

    def source_key(self, run: Run) -> str:
        return self.family  # one query answers for all of a target's pipelines

    def source(self, azure: Azure, target: PipelineTarget, key: str) -> PipelineSource:
        return PipelineSource(self.client(azure, target))

    def describe(self, run: Run) -> str:
        return f"{self.label} {run.target}/{run.pipeline} run {(run.upstream_run_id or run.id)[:8]}…"

    def recent_runs_check(self, azure: Azure, target: PipelineTarget) -> Check:
        """The read the poller depends on: runs updated in the last hour."""
        client = self.client(azure, target)

        def recent_runs() -> dict[str, Any]:
            now = utcnow()
            query = RunQuery(updated_after=now - timedelta(hours=1), updated_before=now + timedelta(minutes=1))
            runs = 0
            for _ in client.query_runs(query):
                runs += 1
                if runs >= RECENT_RUNS_CAP:
                    break
            return {"runsUpdatedInTheLastHour": runs if runs < RECENT_RUNS_CAP else f"{RECENT_RUNS_CAP}+"}

        return run_check("pipelineRuns", "POST queryPipelineRuns (last hour)", recent_runs)

    def correlation_checks(self, azure: Azure, target: PipelineTarget) -> list[Check]:
        """Each pipeline the catalog names with a correlation parameter must declare it: the create
        body is an open map in both specs, which say nothing of names a pipeline does not declare, so
        the gateway relies only on declared ones reaching the run's parameters."""
        client = self.client(azure, target)
        checks = []
        for rule in target.pipelines:
            parameter = rule.correlation_parameter
            if parameter is None:
                continue
            name, call = f"correlationParameter:{rule.match}", f"GET pipelines/{rule.match}"
            if not rule.is_exact:
                checks.append(skipped(name, call, "a glob: each pipeline it matches must declare " + parameter))
                continue
            checks.append(run_check(name, call, partial(_declares, client, rule.match, parameter)))
        return checks

    def _no_start_from_failure(self) -> ValidationFailed:
        return ValidationFailed(
            f"{self.label} pipelines cannot start from failure.",
            [
                {
                    "field": "startFromFailure",
                    "message": f"not supported by {self.label}; use startActivityName with referencePipelineRunId",
                }
            ],
        )


def _declares(client: PipelineClient, pipeline: str, parameter: str) -> dict[str, Any]:
    declared = client.declared_parameters(pipeline)
    if parameter not in declared:
        raise CorrelationParameterMissing(
            f"Pipeline {pipeline} does not declare parameter {parameter!r}, which carries the gateway's run id: "
            "add it to the pipeline (type String) and publish, or a lost create answer cannot be proven."
        )
    return {"parameter": parameter, "type": declared[parameter]}


def _submitted(
    client: PipelineClient, pipeline: str, parameters: Mapping[str, Any], options: StartOptions
) -> Submitted:
    created = client.create_run(pipeline, parameters, options)
    return Submitted(created.run_id, created.request_id, RunStatus.QUEUED, RunStatus.QUEUED)


def _same_parameters(upstream: Mapping[str, str], ours: Mapping[str, object]) -> bool:
    """Exactly the same names and values; ADF reports values as strings (JSON-encoded when not strings)."""
    expected = {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in ours.items()}
    if set(upstream) != set(expected):
        return False
    return all(upstream[k] == v or _loose_equal(upstream[k], v) for k, v in expected.items())


def _loose_equal(left: object, right: str) -> bool:
    try:
        return isinstance(left, str) and json.loads(left) == json.loads(right)
    except ValueError:
        return False
