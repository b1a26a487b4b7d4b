"""The ``queryPipelineRuns`` and ``queryActivityRuns`` bodies (``RunFilterParameters``): validated
as the spec describes (ADF's error codes, approximate wording), evaluated as filters and order
against runs and activities at one moment of the emulated clock, and the continuation token (a
cursor over a frozen list of matches plus an offset, so each page after the first costs only its own
hundred runs). None of it holds state, so it stays apart from the store, which selects the runs and
keeps the cursors.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .clock import parse_iso
from .server import ApiError
from .timelines import ActivityPlan, PipelineRun

PIPELINE_OPERANDS = frozenset({"PipelineName", "Status", "RunStart", "RunEnd", "RunGroupId", "LatestOnly"})
ACTIVITY_OPERANDS = frozenset({"ActivityName", "ActivityRunStart", "ActivityRunEnd", "ActivityType", "Status"})
ALL_OPERANDS = frozenset(PIPELINE_OPERANDS | ACTIVITY_OPERANDS | {"TriggerName", "TriggerRunTimestamp"})
OPERATORS = frozenset({"Equals", "NotEquals", "In", "NotIn"})
PIPELINE_ORDER = frozenset({"RunStart", "RunEnd", "PipelineName", "Status"})
ACTIVITY_ORDER = frozenset({"ActivityName", "ActivityRunStart", "ActivityRunEnd", "Status"})
ALL_ORDER = frozenset(PIPELINE_ORDER | ACTIVITY_ORDER | {"TriggerName", "TriggerRunTimestamp"})


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


def keep_run(run: PipelineRun, query: RunQuery, now: float) -> bool:
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


def keep_activity(plan: ActivityPlan, status: str, end: float | None, query: RunQuery) -> bool:
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


class HasActivities(Protocol):
    """A pipeline run whose activities a query reads: ADF's and Synapse's, or a Fabric job instance's."""

    @property
    def activities(self) -> Sequence[ActivityPlan]: ...

    def activity_view(self, plan: ActivityPlan, now: float) -> tuple[str, float | None] | None: ...


ActivityRow = tuple[ActivityPlan, str, float | None]


def activity_rows(run: HasActivities, query: RunQuery, now: float) -> list[ActivityRow]:
    """The activities a ``queryActivityruns`` body selects: started, updated in its window, kept by its
    filters, in its order (activity start, ascending, by default)."""
    rows = []
    for plan in run.activities:
        view = run.activity_view(plan, now)
        if view is None:
            continue
        status, end = view
        updated = end if end is not None else plan.start
        if query.after <= updated < query.before and keep_activity(plan, status, end, query):
            rows.append((plan, status, end))
    return ordered(rows, query.order, activity_field, now, default=("ActivityRunStart", False))


def run_field(run: PipelineRun, name: str, now: float) -> Any:
    if name == "RunStart":
        return run.created
    if name == "RunEnd":
        return run.run_end(now)
    if name == "PipelineName":
        return run.pipeline.lower()
    return run.status(now)


def activity_field(row: ActivityRow, name: str, now: float) -> Any:
    plan, status, end = row
    if name == "ActivityName":
        return plan.name.lower()
    if name == "ActivityRunStart":
        return plan.start
    if name == "ActivityRunEnd":
        return end
    return status


def ordered(
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


def encode_token(cursor: str, offset: int) -> str:
    return json.dumps({"cursor": cursor, "offset": offset}, separators=(",", ":"))


def decode_token(token: str) -> tuple[str, int]:
    try:
        data = json.loads(token)
        cursor, offset = str(data["cursor"]), int(data["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "BadRequest", "The continuation token is not valid.", target="continuationToken") from exc
    if offset < 0:
        raise ApiError(400, "BadRequest", "The continuation token is not valid.", target="continuationToken")
    return cursor, offset
