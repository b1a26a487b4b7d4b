"""The thread-safe in-memory store of the pipeline runs of every ADF factory and Synapse workspace,
one for both services because their runs behave alike. All mutable state lives here behind one lock
(runs by scope and by id, child runs still to be created when their ``ExecutePipeline`` activity
starts, the frozen result lists that continuation tokens page through), so the timelines and query
logic it uses stay plain values and functions.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .clock import Clock, isoformat
from .config import PipelineSpec
from .queries import (
    RunQuery,
    activity_rows,
    decode_token,
    encode_token,
    keep_run,
    ordered,
    run_field,
)
from .server import ApiError
from .timelines import TERMINAL, PipelineRun, Service, plan_activities, verdict

MAX_CURSORS = 256


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
        correlation_id: str | None = None,
    ) -> PipelineRun:
        """A new run of ``spec``.

        It keeps of ``parameters`` only what the pipeline declares (``PipelineSpec.run_parameters``), and
        records ``correlation_id``, the create call's ``x-ms-correlation-request-id``, for the admin listing.
        """
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
            if spec.failures is not None:  # transient: the group's first runs fail, later ones succeed
                group = [r for r in self._by_scope[scope] if reference is not None and r.group_id == reference.group_id]
                force_success = len(group) >= spec.failures
            else:
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
                scope,
                spec,
                run_id,
                group_id,
                spec.run_parameters(parameters),
                invoked_by,
                now,
                start_index,
                force_success,
                correlation_id=correlation_id,
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
        correlation_id: str | None = None,
    ) -> PipelineRun:
        started = created + spec.queue_s
        plans = plan_activities(spec, self._pipelines[scope], started, start_index, force_success)
        ended, outcome, message = verdict(plans, started)
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
            ended=ended,
            outcome=outcome,
            message=message,
            activities=plans,
            seq=next(self._seq),
            parent_run_id=parent_run_id,
            create_correlation_id=correlation_id,
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
            chosen = [r for r in runs if query.after <= r.last_updated(now) < query.before and keep_run(r, query, now)]
            return ordered(chosen, query.order, run_field, now, default=("RunStart", True))

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
        return self._page(query, lambda: activity_rows(run, query, now), lambda row: run.activity_json(*row))

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
                "createCorrelationId": run.create_correlation_id,
            }
            for run in runs
        ]

    def _page(
        self, query: RunQuery, select: Callable[[], list[Any]], render: Callable[[Any], dict[str, Any]]
    ) -> dict[str, Any]:
        cursor_id, offset = None, 0
        if query.token:
            cursor_id, offset = decode_token(query.token)
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
            token = encode_token(cursor_id, offset + size)
        return {"value": [render(item) for item in page], "continuationToken": token}
