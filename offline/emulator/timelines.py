"""How an emulated pipeline run moves through its statuses over time, and how it fails: the whole
timeline (queue, each activity in turn with any ``ExecutePipeline`` child nested inside, then the
verdict the pipeline's failure script gives) is planned when the run is created, and its status is
read off that plan with the emulated clock. So nothing runs in the background, ten thousand runs cost
only memory, and a test sees a run finish by advancing the clock. Cancelling records a time; the run
is ``Canceling`` for a second of emulated time, then ``Cancelled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .clock import isoformat
from .config import PipelineSpec

Service = Literal["datafactory", "synapse"]
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
CANCEL_GRACE_S = 1.0
MAX_NESTING = 8


@dataclass(frozen=True)
class ActivityPlan:
    run_id: str
    name: str
    type: str
    start: float
    end: float
    outcome: str
    error: Mapping[str, str] | None
    child_pipeline: str | None = None
    child_run_id: str | None = None


@dataclass(eq=False)
class PipelineRun:
    run_id: str
    scope: str
    service: Service
    pipeline: str
    group_id: str
    parameters: dict[str, str]
    invoked_by: dict[str, str]
    created: float
    started: float
    ended: float
    outcome: str
    message: str
    activities: tuple[ActivityPlan, ...]
    seq: int
    parent_run_id: str | None = None
    # The create call's x-ms-correlation-request-id; None for child runs, which no call created.
    create_correlation_id: str | None = None
    cancel_at: float | None = None
    superseded: bool = False

    def status(self, now: float) -> str:
        if self.cancel_at is not None and now >= self.cancel_at:
            return "Canceling" if now < self.cancel_at + CANCEL_GRACE_S else "Cancelled"
        if now < self.started:
            return "Queued"
        if now < self.ended:
            return "InProgress"
        return self.outcome

    def last_updated(self, now: float) -> float:
        if self.cancel_at is not None and now >= self.cancel_at:
            done = self.cancel_at + CANCEL_GRACE_S
            return done if now >= done else self.cancel_at
        if now >= self.ended:
            return self.ended
        return self.started if now >= self.started else self.created

    def run_end(self, now: float) -> float | None:
        if self.cancel_at is not None and now >= self.cancel_at:
            done = self.cancel_at + CANCEL_GRACE_S
            # A run cancelled before it left the queue never ran: ADF reports no end or duration.
            return done if now >= done and self.cancel_at >= self.started else None
        return self.ended if now >= self.ended else None

    def to_json(self, now: float) -> dict[str, Any]:
        end = self.run_end(now)
        status = self.status(now)
        body: dict[str, Any] = {
            "runId": self.run_id,
            "runGroupId": self.group_id,
            "isLatest": not self.superseded,
            "pipelineName": self.pipeline,
            "parameters": dict(self.parameters),
            "invokedBy": dict(self.invoked_by),
            "runStart": isoformat(self.created),
            "runEnd": isoformat(end) if end is not None else None,
            "durationInMs": round((end - self.created) * 1000) if end is not None else None,
            "status": status,
            "message": self.message if status == "Failed" else "",
            "lastUpdated": isoformat(self.last_updated(now)),
            "annotations": [],
        }
        if self.service == "datafactory":
            body["runDimensions"] = {}
        return body

    def activity_view(self, plan: ActivityPlan, now: float) -> tuple[str, float | None] | None:
        """The activity's status and end as of ``now``; ``None`` while it has not started."""
        cancel = self.cancel_at
        if now < plan.start or (cancel is not None and plan.start >= cancel):
            return None
        if cancel is not None and cancel < plan.end and now >= cancel:
            done = cancel + CANCEL_GRACE_S
            return ("Cancelled", done) if now >= done else ("InProgress", None)
        if now < plan.end:
            return "InProgress", None
        return plan.outcome, plan.end

    def activity_json(self, plan: ActivityPlan, status: str, end: float | None) -> dict[str, Any]:
        failed = status == "Failed" and plan.error is not None
        error = dict(plan.error) if failed and plan.error else {"errorCode": "", "message": "", "failureType": ""}
        error["target"] = plan.name
        output: dict[str, Any] = {}
        if plan.child_run_id is not None:
            output = {"pipelineName": plan.child_pipeline, "pipelineRunId": plan.child_run_id}
        return {
            "activityRunEnd": isoformat(end) if end is not None else None,
            "activityName": plan.name,
            "activityRunStart": isoformat(plan.start),
            "activityType": plan.type,
            "durationInMs": round((end - plan.start) * 1000) if end is not None else None,
            "retryAttempt": None,
            "error": error,
            "activityRunId": plan.run_id,
            "input": {},
            "linkedServiceName": "",
            "output": output,
            "userProperties": {},
            "pipelineName": self.pipeline,
            "pipelineRunId": self.run_id,
            "status": status,
        }


@dataclass(frozen=True)
class _Step:
    name: str
    type: str
    offset: float
    length: float
    outcome: str
    error: Mapping[str, str] | None
    child: PipelineSpec | None


def _simulate(
    spec: PipelineSpec,
    pipelines: Mapping[str, PipelineSpec],
    start_index: int,
    force_success: bool,
    depth: int = 0,
) -> list[_Step]:
    """The activities a run will execute, with offsets from the moment it leaves the queue."""
    chosen = list(spec.activities)[start_index:]
    share = spec.duration_s / max(len(chosen), 1)
    steps: list[_Step] = []
    offset = 0.0
    for activity in chosen:
        child = pipelines.get((activity.pipeline or "").lower()) if activity.pipeline else None
        outcome, error, length = "Succeeded", None, share
        if child is not None:
            child_steps = _simulate(child, pipelines, 0, False, depth + 1) if depth < MAX_NESTING else []
            length = child.queue_s + (child_steps[-1].offset + child_steps[-1].length if child_steps else 0.0)
            inner_error = child_steps[-1].error if child_steps and child_steps[-1].outcome == "Failed" else None
            if inner_error is not None:
                error = {
                    "errorCode": inner_error["errorCode"],
                    "message": f"Operation on target {child_steps[-1].name} failed: {inner_error['message']}",
                    "failureType": "UserError",
                }
                outcome = "Failed"
        failure = spec.failure
        if not force_success and failure is not None and failure.activity == activity.name:
            outcome = "Failed"
            error = {
                "errorCode": failure.error_code,
                "message": failure.message,
                "failureType": failure.failure_type,
            }
        steps.append(_Step(activity.name, activity.type, offset, length, outcome, error, child))
        offset += length
        if outcome == "Failed":
            break
    return steps


def plan_activities(
    spec: PipelineSpec,
    pipelines: Mapping[str, PipelineSpec],
    started: float,
    start_index: int,
    force_success: bool,
) -> tuple[ActivityPlan, ...]:
    """Each activity's times and outcome for a run of ``spec`` that leaves the queue at ``started``."""
    return tuple(
        ActivityPlan(
            str(uuid.uuid4()),
            step.name,
            step.type,
            started + step.offset,
            started + step.offset + step.length,
            step.outcome,
            step.error,
            step.child.name if step.child else None,
            str(uuid.uuid4()) if step.child else None,
        )
        for step in _simulate(spec, pipelines, start_index, force_success)
    )


def verdict(plans: tuple[ActivityPlan, ...], started: float) -> tuple[float, str, str]:
    """The run's end, outcome and failure message: those of its last activity."""
    last = plans[-1] if plans else None
    outcome = last.outcome if last is not None else "Succeeded"
    message = ""
    if last is not None and outcome == "Failed" and last.error is not None:
        message = f"Operation on target {last.name} failed: {last.error['message']}"
    return (last.end if last is not None else started), outcome, message
