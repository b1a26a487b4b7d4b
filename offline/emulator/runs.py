"""Pipeline runs of ADF factories and Synapse workspaces: one store, one state machine.

A run's whole timeline is planned when it is created (queue, then each activity in turn, then the
verdict), and its status is read off that plan with the emulated clock. So nothing runs in the
background, ten thousand runs cost only memory, and a test sees a run finish by advancing the clock.
Cancelling records a time; the run is ``Canceling`` for a second of emulated time, then ``Cancelled``.

Queries page through a frozen list of matching runs (a cursor kept for the continuation token), so
each page after the first costs only its own hundred runs.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .clock import Clock, isoformat, parse_iso
from .config import PipelineSpec
from .server import ApiError

Service = Literal["datafactory", "synapse"]
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
CANCEL_GRACE_S = 1.0
MAX_NESTING = 8
MAX_CURSORS = 256

PIPELINE_OPERANDS = frozenset({"PipelineName", "Status", "RunStart", "RunEnd", "RunGroupId", "LatestOnly"})
ACTIVITY_OPERANDS = frozenset({"ActivityName", "ActivityRunStart", "ActivityRunEnd", "ActivityType", "Status"})
ALL_OPERANDS = frozenset(PIPELINE_OPERANDS | ACTIVITY_OPERANDS | {"TriggerName", "TriggerRunTimestamp"})
OPERATORS = frozenset({"Equals", "NotEquals", "In", "NotIn"})
PIPELINE_ORDER = frozenset({"RunStart", "RunEnd", "PipelineName", "Status"})
ACTIVITY_ORDER = frozenset({"ActivityName", "ActivityRunStart", "ActivityRunEnd", "Status"})
ALL_ORDER = frozenset(PIPELINE_ORDER | ACTIVITY_ORDER | {"TriggerName", "TriggerRunTimestamp"})


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


@dataclass
class RunQuery:
    after: float
    before: float
    filters: list[tuple[str, str, list[str]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    token: str | None = None


def parse_query(body: Any, kind: Literal["pipeline", "activity"]) -> RunQuery:
    """Validates ``RunFilterParameters`` like the spec does (approximate wording, ADF's codes)."""
    if not isinstance(body, dict):
        raise ApiError(
            400, "BadRequest", "The request body must be a RunFilterParameters object.", target="filterParameters"
        )
    times: dict[str, float] = {}
    for name in ("lastUpdatedAfter", "lastUpdatedBefore"):
        raw = body.get(name)
        if not isinstance(raw, str) or not raw:
            raise ApiError(400, "BadRequest", f"The '{name}' property is required.", target=name)
        try:
            times[name] = parse_iso(raw)
        except ValueError as exc:
            raise ApiError(
                400, "BadRequest", f"The value '{raw}' of '{name}' is not a valid date-time.", target=name
            ) from exc
    if times["lastUpdatedAfter"] > times["lastUpdatedBefore"]:
        raise ApiError(400, "BadRequest", "'lastUpdatedAfter' must be earlier than 'lastUpdatedBefore'.")
    operands = PIPELINE_OPERANDS if kind == "pipeline" else ACTIVITY_OPERANDS
    orderable = PIPELINE_ORDER if kind == "pipeline" else ACTIVITY_ORDER
    query = RunQuery(times["lastUpdatedAfter"], times["lastUpdatedBefore"])
    for item in _list(body, "filters"):
        operand, operator, values = (
            item.get(k) if isinstance(item, dict) else None for k in ("operand", "operator", "values")
        )
        if not isinstance(operand, str) or not isinstance(operator, str) or not isinstance(values, list):
            raise ApiError(400, "BadRequest", "Each filter needs 'operand', 'operator' and 'values'.", target="filters")
        _enum(operand, ALL_OPERANDS, "operand")
        _enum(operator, OPERATORS, "operator")
        if operand not in operands:
            raise ApiError(
                400, "BadRequest", f"The operand '{operand}' cannot be used to query {kind} runs.", target="filters"
            )
        if not values or not all(isinstance(v, str) for v in values):
            raise ApiError(400, "BadRequest", "Filter 'values' must be a non-empty list of strings.", target="filters")
        if operator in ("Equals", "NotEquals") and len(values) != 1:
            raise ApiError(400, "BadRequest", f"The operator '{operator}' takes exactly one value.", target="filters")
        query.filters.append((operand, operator, list(values)))
    for item in _list(body, "orderBy"):
        order_by, order = (item.get(k) if isinstance(item, dict) else None for k in ("orderBy", "order"))
        if not isinstance(order_by, str) or not isinstance(order, str):
            raise ApiError(400, "BadRequest", "Each orderBy needs 'orderBy' and 'order'.", target="orderBy")
        _enum(order_by, ALL_ORDER, "orderBy")
        _enum(order, frozenset({"ASC", "DESC"}), "order")
        if order_by not in orderable:
            raise ApiError(
                400, "BadRequest", f"{kind.capitalize()} runs cannot be ordered by '{order_by}'.", target="orderBy"
            )
        query.order.append((order_by, order == "DESC"))
    token = body.get("continuationToken")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, "BadRequest", "'continuationToken' must be a string.", target="continuationToken")
    query.token = token or None
    return query


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "BadRequest", f"'{name}' must be a list.", target=name)
    return value


def _enum(value: str, allowed: frozenset[str], name: str) -> None:
    if value not in allowed:
        raise ApiError(
            400,
            "BadRequest",
            f"The value '{value}' is not valid for '{name}'. Allowed values: {', '.join(sorted(allowed))}.",
            target=name,
        )


def _matches(actual: str | None, operator: str, values: list[str], *, fold: bool) -> bool:
    if fold:
        actual = actual.lower() if actual is not None else None
        values = [v.lower() for v in values]
    inside = actual in values
    return inside if operator in ("Equals", "In") else not inside


def _time_matches(actual: float | None, operator: str, values: list[str]) -> bool:
    wanted = {round(parse_iso(v), 3) for v in values}
    inside = actual is not None and round(actual, 3) in wanted
    return inside if operator in ("Equals", "In") else not inside


def _keyed(get: Callable[[Any, str, float], Any], name: str, now: float, item: Any) -> tuple[int, Any]:
    return _sort_key(get(item, name, now))


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nothing yet (an unfinished run's end) sorts after every real value, like "still going".
    return (1, 0) if value is None else (0, value)


def to_parameter_strings(parameters: Any) -> dict[str, str]:
    """Parameter values as ADF stores them: strings, anything else JSON-encoded."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ApiError(400, "BadRequest", "The pipeline parameters must be a JSON object.", target="parameters")
    return {
        str(name): value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in parameters.items()
    }


class RunStore:
    """Every pipeline run, by scope (one factory or workspace) and by run id."""

    def __init__(self, clock: Clock, page_size: int = 100) -> None:
        self.clock = clock
        self.page_size = page_size
        self._lock = threading.RLock()
        self._pipelines: dict[str, dict[str, PipelineSpec]] = {}
        self._services: dict[str, Service] = {}
        self._by_scope: dict[str, list[PipelineRun]] = {}
        self._by_id: dict[str, PipelineRun] = {}
        self._spawns: list[tuple[float, int, str, int]] = []  # (when, seq, parent run id, step index)
        self._seq = itertools.count()
        self._cursors: OrderedDict[str, list[Any]] = OrderedDict()

    def register(self, scope: str, service: Service, pipelines: Sequence[PipelineSpec]) -> None:
        self._pipelines[scope] = {p.name.lower(): p for p in pipelines}
        self._services[scope] = service
        self._by_scope[scope] = []

    def pipeline(self, scope: str, name: str) -> PipelineSpec | None:
        return self._pipelines[scope].get(name.lower())

    def create(
        self,
        scope: str,
        spec: PipelineSpec,
        parameters: Mapping[str, str],
        *,
        reference_run_id: str | None = None,
        is_recovery: bool = False,
        start_activity: str | None = None,
        start_from_failure: bool = False,
    ) -> PipelineRun:
        with self._lock:
            now = self.clock.now()
            self._materialize(now)
            reference = None
            if reference_run_id:
                reference = self._by_id.get(reference_run_id)
                if reference is None or reference.scope != scope or reference.pipeline != spec.name:
                    raise ApiError(
                        400,
                        "ReferencedPipelineRunNotValid",
                        f"Referenced pipeline run id {reference_run_id} is not a valid run id.",
                        target=f"pipeline/{spec.name}/",
                    )
                parameters = reference.parameters
            start_index = 0
            names = [a.name for a in spec.activities]
            if reference is not None and start_activity:
                match = [i for i, n in enumerate(names) if n.lower() == start_activity.lower()]
                if not match:
                    raise ApiError(
                        400,
                        "InvalidStartActivity",
                        f"Activity '{start_activity}' does not exist in pipeline '{spec.name}'.",
                        target="startActivityName",
                    )
                start_index = match[0]
            elif reference is not None and start_from_failure:
                failed = [a.name for a in reference.activities if a.outcome == "Failed"]
                start_index = names.index(failed[0]) if failed and failed[0] in names else 0
            force_success = reference is not None and spec.recover_on_rerun
            run_id = str(uuid.uuid4())
            group_id = run_id
            if reference is not None and is_recovery:
                group_id = reference.group_id
                for earlier in self._by_scope[scope]:
                    if earlier.group_id == group_id:
                        earlier.superseded = True
            invoked_by = {"name": "Manual", "id": uuid.uuid4().hex, "invokedByType": "Manual"}
            return self._start(
                scope, spec, run_id, group_id, dict(parameters), invoked_by, now, start_index, force_success
            )

    def _start(
        self,
        scope: str,
        spec: PipelineSpec,
        run_id: str,
        group_id: str,
        parameters: dict[str, str],
        invoked_by: dict[str, str],
        created: float,
        start_index: int,
        force_success: bool,
        parent_run_id: str | None = None,
    ) -> PipelineRun:
        started = created + spec.queue_s
        steps = _simulate(spec, self._pipelines[scope], start_index, force_success)
        plans = tuple(
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
            for step in steps
        )
        last = plans[-1] if plans else None
        outcome = last.outcome if last is not None else "Succeeded"
        message = ""
        if last is not None and outcome == "Failed" and last.error is not None:
            message = f"Operation on target {last.name} failed: {last.error['message']}"
        run = PipelineRun(
            run_id=run_id,
            scope=scope,
            service=self._services[scope],
            pipeline=spec.name,
            group_id=group_id,
            parameters=parameters,
            invoked_by=invoked_by,
            created=created,
            started=started,
            ended=last.end if last is not None else started,
            outcome=outcome,
            message=message,
            activities=plans,
            seq=next(self._seq),
            parent_run_id=parent_run_id,
        )
        self._by_scope[scope].append(run)
        self._by_id[run_id] = run
        for index, plan in enumerate(plans):
            if plan.child_run_id is not None:
                heapq.heappush(self._spawns, (plan.start, next(self._seq), run_id, index))
        return run

    def _materialize(self, now: float) -> None:
        """Creates the child runs whose ExecutePipeline activity has started by ``now``."""
        while self._spawns and self._spawns[0][0] <= now:
            when, _, parent_id, index = heapq.heappop(self._spawns)
            parent = self._by_id[parent_id]
            if parent.cancel_at is not None and parent.cancel_at <= when:
                continue
            plan = parent.activities[index]
            child = self._pipelines[parent.scope][(plan.child_pipeline or "").lower()]
            invoked_by = {
                "name": plan.name,
                "id": plan.run_id,
                "invokedByType": "PipelineActivity",
                "pipelineName": parent.pipeline,
                "pipelineRunId": parent.run_id,
            }
            child_id = plan.child_run_id or str(uuid.uuid4())
            self._start(parent.scope, child, child_id, child_id, {}, invoked_by, when, 0, False, parent.run_id)

    def get(self, scope: str, run_id: str) -> PipelineRun:
        with self._lock:
            self._materialize(self.clock.now())
            run = self._by_id.get(run_id)
        if run is None or run.scope != scope:
            raise ApiError(404, "PipelineRunNotFound", f"Pipeline run '{run_id}' was not found.", target=run_id)
        return run

    def cancel(self, scope: str, run_id: str, recursive: bool) -> None:
        run = self.get(scope, run_id)
        with self._lock:
            now = self.clock.now()
            status = run.status(now)
            if status in TERMINAL:
                raise ApiError(
                    400,
                    "PipelineRunNotRunning",
                    f"Pipeline run '{run_id}' cannot be cancelled because it is already {status}.",
                    target=run_id,
                )
            if run.cancel_at is None:
                run.cancel_at = now
            if recursive:
                for child in [r for r in self._by_scope[scope] if r.parent_run_id == run.run_id]:
                    if child.status(now) not in TERMINAL and child.cancel_at is None:
                        self.cancel(scope, child.run_id, True)

    def query_runs(self, scope: str, query: RunQuery) -> dict[str, Any]:
        now = self.clock.now()

        def select() -> list[Any]:
            with self._lock:
                self._materialize(now)
                runs = list(self._by_scope[scope])
            chosen = [
                r for r in runs if query.after <= r.last_updated(now) < query.before and self._keep_run(r, query, now)
            ]
            return self._ordered(chosen, query.order, self._run_field, now, default=("RunStart", True))

        return self._page(query, select, lambda run: run.to_json(self.clock.now()))

    def query_activities(self, scope: str, run_id: str, query: RunQuery, pipeline: str | None = None) -> dict[str, Any]:
        run = self.get(scope, run_id)
        if pipeline is not None and pipeline.lower() != run.pipeline.lower():
            raise ApiError(
                404,
                "PipelineRunNotFound",
                f"Pipeline run '{run_id}' of pipeline '{pipeline}' was not found.",
                target=run_id,
            )
        now = self.clock.now()

        def select() -> list[Any]:
            rows = []
            for plan in run.activities:
                view = run.activity_view(plan, now)
                if view is None:
                    continue
                status, end = view
                updated = end if end is not None else plan.start
                if query.after <= updated < query.before and _keep_activity(plan, status, end, query):
                    rows.append((plan, status, end))
            return self._ordered(rows, query.order, _activity_field, now, default=("ActivityRunStart", False))

        return self._page(query, select, lambda row: run.activity_json(*row))

    def all_runs(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            self._materialize(now)
            runs = sorted(self._by_id.values(), key=lambda r: r.seq)
        return [
            {
                "service": run.service,
                "scope": run.scope,
                "pipeline": run.pipeline,
                "runId": run.run_id,
                "runGroupId": run.group_id,
                "parentRunId": run.parent_run_id,
                "status": run.status(now),
                "runStart": isoformat(run.created),
                "parameters": dict(run.parameters),
            }
            for run in runs
        ]

    def _keep_run(self, run: PipelineRun, query: RunQuery, now: float) -> bool:
        for operand, operator, values in query.filters:
            if operand == "PipelineName":
                ok = _matches(run.pipeline, operator, values, fold=True)
            elif operand == "Status":
                ok = _matches(run.status(now), operator, values, fold=True)
            elif operand == "RunGroupId":
                ok = _matches(run.group_id, operator, values, fold=True)
            elif operand == "RunStart":
                ok = _time_matches(run.created, operator, values)
            elif operand == "RunEnd":
                ok = _time_matches(run.run_end(now), operator, values)
            else:  # LatestOnly: "true" asks for the latest run of each group only
                wants_latest = (values[0].lower() == "true") != (operator in ("NotEquals", "NotIn"))
                ok = not (wants_latest and run.superseded)
            if not ok:
                return False
        return True

    @staticmethod
    def _run_field(run: PipelineRun, name: str, now: float) -> Any:
        if name == "RunStart":
            return run.created
        if name == "RunEnd":
            return run.run_end(now)
        if name == "PipelineName":
            return run.pipeline.lower()
        return run.status(now)

    @staticmethod
    def _ordered(
        items: list[Any],
        order: list[tuple[str, bool]],
        get: Callable[[Any, str, float], Any],
        now: float,
        *,
        default: tuple[str, bool],
    ) -> list[Any]:
        for name, descending in reversed(order or [default]):
            items.sort(key=functools.partial(_keyed, get, name, now), reverse=descending)
        return items

    def _page(
        self, query: RunQuery, select: Callable[[], list[Any]], render: Callable[[Any], dict[str, Any]]
    ) -> dict[str, Any]:
        cursor_id, offset = None, 0
        if query.token:
            cursor_id, offset = _decode_token(query.token)
        with self._lock:
            items = self._cursors.get(cursor_id) if cursor_id else None
            if items is not None and cursor_id is not None:
                self._cursors.move_to_end(cursor_id)
        if items is None:
            items = select()
        size = self.page_size
        page = items[offset : offset + size]
        token = None
        if offset + size < len(items):
            cursor_id = cursor_id or uuid.uuid4().hex
            with self._lock:
                self._cursors[cursor_id] = items
                self._cursors.move_to_end(cursor_id)
                while len(self._cursors) > MAX_CURSORS:
                    self._cursors.popitem(last=False)
            token = json.dumps({"cursor": cursor_id, "offset": offset + size}, separators=(",", ":"))
        return {"value": [render(item) for item in page], "continuationToken": token}


def _decode_token(token: str) -> tuple[str, int]:
    try:
        data = json.loads(token)
        cursor, offset = str(data["cursor"]), int(data["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "BadRequest", "The continuation token is not valid.", target="continuationToken") from exc
    if offset < 0:
        raise ApiError(400, "BadRequest", "The continuation token is not valid.", target="continuationToken")
    return cursor, offset


def _keep_activity(plan: ActivityPlan, status: str, end: float | None, query: RunQuery) -> bool:
    for operand, operator, values in query.filters:
        if operand == "ActivityName":
            ok = _matches(plan.name, operator, values, fold=True)
        elif operand == "ActivityType":
            ok = _matches(plan.type, operator, values, fold=True)
        elif operand == "Status":
            ok = _matches(status, operator, values, fold=True)
        elif operand == "ActivityRunStart":
            ok = _time_matches(plan.start, operator, values)
        else:
            ok = _time_matches(end, operator, values)
        if not ok:
            return False
    return True


def _activity_field(row: tuple[ActivityPlan, str, float | None], name: str, now: float) -> Any:
    plan, status, end = row
    if name == "ActivityName":
        return plan.name.lower()
    if name == "ActivityRunStart":
        return plan.start
    if name == "ActivityRunEnd":
        return end
    return status
