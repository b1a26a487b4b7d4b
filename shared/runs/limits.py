"""Caps on paid compute: runs in flight and starts per minute, per APIM product and per catalog entry.

APIM's rate limits count requests at its edge; these count what costs money (runs Azure starts), and
hold across every instance of the app because their state is the registry's table:

* runs in flight are the live records of the cap's scope (one query per cap, filtered by target or
  tenant and reading a few columns, run before each start);
* starts per minute are a counter entity per scope in partition ``_limits``, incremented only if
  nobody else did since it was read (ETag), so two instances cannot both take the last start.

A start over a cap is refused with ``LimitExceeded`` (429 with ``Retry-After``) before anything is
recorded or sent to Azure. Racing starts may exceed the in-flight cap by the number that raced past
the count together; the per-minute counter is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.azure.storage import AlreadyExists, ConcurrentUpdate, storage_errors
from shared.config.targets import RateLimits
from shared.errors import LimitExceeded, StorageUnavailable
from shared.runs.model import RunStatus
from shared.runs.registry import UNSET, LiveRow, RunRegistry, Unset

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_guarded = partial(storage_errors, what="the run registry", role="Storage Table Data Contributor")

PARTITION = "_limits"
COUNTER_ATTEMPTS = 5  # racing instances retry the ETag-conditional increment this often
IN_FLIGHT_RETRY_AFTER = 60  # seconds: a run has to end before another may start


@dataclass(frozen=True)
class Cap:
    """One cap that applies to a start: which limits, for what, and how runs in flight are counted."""

    scope: str  # "API product erp", "Pipeline 'copy_*' on target sales": what the refusal names
    limits: RateLimits
    counts: Callable[[LiveRow], bool]  # which of the scope's live records count against this cap
    target: str | None = None  # the scope's target, read alone; None: every target
    product: str | Unset | None = UNSET  # the scope's product (its tenant), read alone; UNSET: any


class Admission:
    def __init__(self, registry: RunRegistry) -> None:
        self._registry = registry
        self._table: TableClient = registry.table

    def admit(self, caps: list[Cap], now: datetime) -> None:
        """Raises LimitExceeded when a start now would break one of ``caps``; else takes its share."""
        for cap in caps:
            limit = cap.limits.max_runs_in_flight
            if limit is not None:
                rows = self._registry.live_rows(target=cap.target, product=cap.product)
                count = sum(1 for row in rows if row.status in RunStatus.IN_FLIGHT and cap.counts(row))
                if count >= limit:
                    raise LimitExceeded(
                        f"{cap.scope} has {count} runs in flight, its limit (maxRunsInFlight {limit}); "
                        "start again when one has ended.",
                        limit="maxRunsInFlight",
                        scope=cap.scope,
                        retry_after=IN_FLIGHT_RETRY_AFTER,
                    )
        for cap in caps:
            if cap.limits.starts_per_minute is not None:
                self._count_start(cap, cap.limits.starts_per_minute, now)

    def _count_start(self, cap: Cap, limit: int, now: datetime) -> None:
        """Adds one to the scope's counter for this minute, unless it already holds ``limit``."""
        window = now.strftime("%Y-%m-%dT%H:%M")
        for _ in range(COUNTER_ATTEMPTS):
            entity = self._counter(cap.scope)
            count = int(entity["Count"]) if entity is not None and entity.get("Window") == window else 0
            if count >= limit:
                raise LimitExceeded(
                    f"{cap.scope} has started {count} runs this minute, its limit (startsPerMinute {limit}).",
                    limit="startsPerMinute",
                    scope=cap.scope,
                    retry_after=60 - now.second,
                )
            try:
                self._write(cap.scope, window, count + 1, entity)
                return
            except (ConcurrentUpdate, AlreadyExists):
                continue  # another instance counted a start in between: read again
        raise StorageUnavailable(f"The start counter of {cap.scope} kept changing; try again.")

    def _counter(self, scope: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("read a start counter"):
            try:
                return self._table.get_entity(PARTITION, _row(scope))
            except ResourceNotFoundError:
                return None

    def _write(self, scope: str, window: str, count: int, read: Any) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": PARTITION, "RowKey": _row(scope), "Window": window, "Count": count}
        with _guarded("count a start", moved_is_conflict=True):
            if read is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=read.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )


def _row(scope: str) -> str:
    return scope.replace("/", "_").replace("#", "_").replace("?", "_").replace("\\", "_")
