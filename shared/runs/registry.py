"""The run registry in Azure Table Storage.

Layout (one table):

* partition ``{target}``: one entity per run. While the poller still has work on it (in flight, or
  an alert not yet sent) its row key is ``live-{id}``; afterwards the record moves to ``past-{id}``
  in a single entity-group transaction, so the poller reads only live rows and a move is atomic. A
  row only ever moves from live to past. Ids count time down, so each prefix lists newest first.
  Beside them, ``upstream-{kind key}`` rows index which record owns each Azure run, written in the
  same transaction as the record that claims it: an Azure run is never attributed to two records,
  live or past.
* every run entity carries ``Tenant``, derived from the product that started it (``tenant``), so a
  listing for one product is filtered by the table query itself and never reads another's runs.
* listings page by the id part of the run, across both prefixes (``shared.runs.paging`` states the
  rule): a run that ends between two pages is neither returned twice nor skipped.
* retention: ``expired`` finds past runs older than a time and ``delete`` removes them with their
  ownership rows; runs still live are never deleted.
* partition ``_idempotency``: one entity per (caller, Idempotency-Key), see ``shared.runs.idempotency``.
* partition ``_alerts``: the alert history (forwarded and acknowledged alerts), see ``shared.alerts.history``.

Every update is conditional on the ETag read, so overlapping poller ticks or a racing cancel never
overwrite each other's work: the loser gets ``ConcurrentUpdate`` and re-reads.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.azure.storage import AlreadyExists, ConcurrentUpdate, split_property, storage_errors
from shared.config import names
from shared.errors import RunNotFound, ValidationFailed
from shared.runs.model import Run, target_of, time_key
from shared.runs.paging import LIVE, PAST, Cursor, Entity, Position, Token, page

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_guarded = partial(storage_errors, what="the run registry", role="Storage Table Data Contributor")

OWNER = "upstream-"  # sorts after every live- and past- row, so run listings never meet it
DIRECT = "direct"  # the tenant of calls without an API product (the function key used directly)
TRANSACTION_LIMIT = 100  # operations per entity-group transaction
_JSON_FIELDS = ("parameters", "options", "retry_options")
_DATETIME_FIELDS = {f.name for f in fields(Run) if "datetime" in str(f.type)}
_INTERNAL = {"row_key", "etag", "id", "target", *_JSON_FIELDS}


class Unset:
    """No filter (``None`` is a value: the runs started without a product)."""


UNSET = Unset()
LIVE_COLUMNS = ["PartitionKey", "Kind", "Pipeline", "SparkPool", "Product", "Status"]


@dataclass(frozen=True)
class LiveRow:
    """A live record as caps count it: where it runs, what it is, whose it is, how far it has got."""

    target: str
    kind: str
    pipeline: str
    spark_pool: str | None
    product: str | None
    status: str


class RunRegistry:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @property
    def table(self) -> TableClient:
        """The registry's table, which also holds the idempotency keys and the alert history."""
        return self._table

    def ensure_table(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with (
            _guarded("create its table"),
            contextlib.suppress(ResourceExistsError),
        ):
            self._table.create_table()

    def create(self, run: Run) -> Run:
        entity = _to_entity(run, LIVE)
        with _guarded("record the run"):
            metadata = self._table.create_entity(entity)
        return _with_location(run, entity["RowKey"], metadata)

    def import_runs(self, runs: list[Run]) -> None:
        """Bulk insert, a transaction per 100: migrations, load tests and benchmarks."""
        by_target: dict[str, list[Run]] = {}
        for run in runs:
            by_target.setdefault(run.target, []).append(run)
        with _guarded("import runs"):
            for target_runs in by_target.values():
                for start in range(0, len(target_runs), TRANSACTION_LIMIT):
                    self._table.submit_transaction(
                        [
                            ("create", _to_entity(run, LIVE if not run.terminal else PAST))
                            for run in target_runs[start : start + TRANSACTION_LIMIT]
                        ]
                    )

    def get(self, run_id: str) -> Run:
        target = target_of(run_id)
        if target is None:
            raise no_such_run(run_id)
        from azure.core.exceptions import ResourceNotFoundError

        for prefix in (LIVE, PAST):
            with _guarded("read the run"):
                try:
                    entity = self._table.get_entity(target, prefix + _key(run_id))
                except ResourceNotFoundError:
                    continue
            return _from_entity(entity)
        raise no_such_run(run_id)

    def save(
        self, run: Run, *, keep_live: bool | None = None, owns: str | Sequence[str] = (), contests: bool = False
    ) -> Run:
        """Writes ``run`` if nobody changed it since it was read; moves it to the past when done.

        ``keep_live`` defaults to "still in flight"; the poller keeps a finished run live until its
        alert is sent. ``owns`` (kinds' ownership keys) records, in the same transaction, that the run
        owns those Azure runs, or with ``contests`` that it holds them as contested (an Unknown record
        that could not tell them from its own, so that no other guess takes them): ``AlreadyExists``
        when another record holds one, and nothing is written. An Azure run's own answer outranks a
        contest: a record that owns a run another only contests takes the index row over. A record
        another writer changed or moved raises ``ConcurrentUpdate``.
        """
        keys = [owns] if isinstance(owns, str) else list(owns)
        try:
            return self._save(run, keep_live, keys, contests, taken={})
        except AlreadyExists:
            if contests or len(keys) != 1:
                raise
            held = self._owner_row(run.target, keys[0])
            if held is None or not held.get("Contested"):
                raise
            return self._save(run, keep_live, keys, contests, taken={keys[0]: str(held.metadata["etag"])})

    def _save(self, run: Run, keep_live: bool | None, keys: list[str], contests: bool, taken: Mapping[str, str]) -> Run:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        operations, row_key = _save_operations(run, keep_live)
        for key in keys:
            row: dict[str, Any] = {"PartitionKey": run.target, "RowKey": OWNER + key, "RunId": run.id}
            if contests:
                row["Contested"] = True
            if key in taken:
                condition = {
                    "mode": UpdateMode.REPLACE,
                    "etag": taken[key],
                    "match_condition": MatchConditions.IfNotModified,
                }
                operations.insert(0, ("update", row, condition))
            else:
                operations.insert(0, ("create", row))
        with _guarded("update the run", moved_is_conflict=True):
            if len(operations) == 1:
                _, entity, condition = operations[0]
                metadata: Mapping[str, Any] = self._table.update_entity(entity, **condition)
            else:
                metadata = self._table.submit_transaction(operations)[-1]
        return _with_location(run, row_key, metadata)

    def save_many(self, changes: list[tuple[Run, bool]]) -> list[Run | None]:
        """Saves many runs of one target in entity-group transactions (up to 100 operations each).

        Each result is the saved run, or None where the record changed since it was read. A chunk
        that fails on one conflict is retried run by run, so one stale record never blocks the rest.
        """
        results: list[Run | None] = [None] * len(changes)
        chunk: list[tuple[int, int, str]] = []  # (index in changes, operations, row key after)
        operations: list[Any] = []

        def flush() -> None:
            try:
                with _guarded("update runs", moved_is_conflict=True):
                    metadata = self._table.submit_transaction(operations)
            except (ConcurrentUpdate, AlreadyExists):
                for index, _, _ in chunk:
                    run, keep_live = changes[index]
                    try:
                        results[index] = self.save(run, keep_live=keep_live)
                    except (ConcurrentUpdate, AlreadyExists):
                        results[index] = None
            else:
                position = 0
                for index, count, row_key in chunk:
                    position += count
                    results[index] = _with_location(changes[index][0], row_key, metadata[position - 1])
            chunk.clear()
            operations.clear()

        for index, (run, keep_live) in enumerate(changes):
            pending, row_key = _save_operations(run, keep_live)
            if len(operations) + len(pending) > TRANSACTION_LIMIT:
                flush()
            chunk.append((index, len(pending), row_key))
            operations.extend(pending)
        if chunk:
            flush()
        return results

    def owner_of(self, target: str, key: str, *, contests_count: bool = True) -> str | None:
        """The id of the run that owns the Azure run ``key`` names (see ``save``), or None; a run that
        only contests it counts unless ``contests_count`` is false (for a proof, which outranks it)."""
        entity = self._owner_row(target, key)
        if entity is None or (not contests_count and entity.get("Contested")):
            return None
        return str(entity["RunId"])

    def _owner_row(self, target: str, key: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("read who owns an Azure run"):
            try:
                return self._table.get_entity(target, OWNER + key)
            except ResourceNotFoundError:
                return None

    @staticmethod
    def is_live(run: Run) -> bool:
        """Whether the poller still has work on the record (it sits among the live rows)."""
        return bool(run.row_key and run.row_key.startswith(LIVE))

    def live_rows(self, *, target: str | None = None, product: str | Unset | None = UNSET) -> Iterator[LiveRow]:
        """What caps count of the live records, in one query filtered by target (its partition) and by
        ``product`` (its tenant) where given, reading only the columns they need."""
        clauses, params = ["RowKey ge @low", "RowKey lt @high"], {"low": LIVE, "high": _after(LIVE)}
        if target is not None:
            clauses.append("PartitionKey eq @target")
            params["target"] = target
        if not isinstance(product, Unset):
            clauses.append("Tenant eq @tenant")
            params["tenant"] = tenant(product)
        with _guarded("count the runs in flight"):
            for entity in self._table.query_entities(" and ".join(clauses), parameters=params, select=LIVE_COLUMNS):
                yield LiveRow(
                    target=entity["PartitionKey"],
                    kind=entity.get("Kind", ""),
                    pipeline=entity.get("Pipeline", ""),
                    spark_pool=entity.get("SparkPool"),
                    product=entity.get("Product"),
                    status=entity.get("Status", ""),
                )

    def live_runs(self, target: str) -> Iterator[Run]:
        query = "PartitionKey eq @target and RowKey ge @low and RowKey lt @high"
        params = {"target": target, "low": LIVE, "high": _after(LIVE)}
        with _guarded("list the runs in flight"):
            for entity in self._table.query_entities(query, parameters=params, results_per_page=1000):
                yield _from_entity(entity)

    def list_runs(
        self,
        *,
        tenant: str | None = None,
        target: str | None = None,
        pipeline: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        continuation: str | None = None,
        finished_only: bool = False,
    ) -> tuple[list[Run], str | None]:
        """One page of runs, each target's newest first (live and past alike, targets by name), and the
        token of the next page, None at the end (``shared.runs.paging`` states the rule).

        ``tenant`` (see ``tenant``; None: every tenant's, for operators) is a clause of the query like
        every filter, all of them parameterized; one call makes a bounded number of reads.
        """
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for name, column, value in (
            ("tenant", "Tenant", tenant),
            ("target", "PartitionKey", target),
            ("pipeline", "Pipeline", pipeline),
            ("status", "Status", status),
            ("since", "CreatedAt", since),
        ):
            if value is not None:
                clauses.append(f"{column} {'ge' if name == 'since' else 'eq'} @{name}")
                params[name] = value
        cursor = _decode_cursor(continuation, target)
        with _guarded("list runs"):
            rows, following = page(
                partial(self._read, clauses, params, single_target=target is not None),
                cursor,
                limit,
                finished_only=finished_only,
            )
        return [_from_entity(row) for row in rows], _encode_cursor(following)

    def _read(
        self,
        clauses: list[str],
        params: dict[str, Any],
        prefix: str,
        after: Position | None,
        upto: Position | None,
        token: Token | None,
        top: int,
        *,
        single_target: bool,
    ) -> tuple[list[Entity], Token | None]:
        """One page of one stream (``paging.Read``): the filters, the prefix's rows, the positions.

        Parameters stand alone between spaces: the SDK substitutes them word by word.
        """
        query = [*clauses, "RowKey ge @low", "RowKey lt @high"]
        values = {**params, "low": prefix, "high": _after(prefix)}
        for name, bound, other in (("after", after, "gt"), ("upto", upto, "lt")):
            if bound is None:
                continue
            partition, key, itself = bound
            # after the run itself: gt; after the point just before it: ge. Up to the run: le; before it: lt.
            comparison = {("after", 1): "gt", ("after", 0): "ge", ("upto", 1): "le", ("upto", 0): "lt"}[name, itself]
            values[f"{name}_row"] = prefix + key
            if single_target:  # every position is in the target's partition
                query.append(f"RowKey {comparison} @{name}_row")
            else:
                values[f"{name}_partition"] = partition
                query.append(
                    f"( PartitionKey {other} @{name}_partition or "
                    f"( PartitionKey eq @{name}_partition and RowKey {comparison} @{name}_row ) )"
                )
        resume = {"PartitionKey": token[0], "RowKey": token[1]} if token else None
        pages = self._table.query_entities(" and ".join(query), parameters=values, results_per_page=top).by_page(
            continuation_token=resume  # type: ignore[arg-type]  # tables tokens are dicts
        )
        rows: list[Entity] = list(next(pages, []))
        following = pages.continuation_token  # type: ignore[attr-defined]
        return rows, (following.get("PartitionKey"), following.get("RowKey")) if following else None

    def expired(self, target: str, before: datetime, limit: int) -> list[Run]:
        """Up to ``limit`` of the target's past runs created before ``before`` (one read): ids count
        time down, so they are the past rows after ``before``'s key; live rows are never among them."""
        query = "PartitionKey eq @target and RowKey gt @low and RowKey lt @high and CreatedAt lt @before"
        params = {"target": target, "low": PAST + time_key(before), "high": _after(PAST), "before": before}
        with _guarded("read expired runs"):
            pages = self._table.query_entities(query, parameters=params, results_per_page=limit).by_page()
            return [_from_entity(entity) for entity in next(pages, [])]

    def delete(self, runs: list[Run], owned: Mapping[str, Sequence[str]]) -> int:
        """Deletes past runs of one target with the ownership rows that point at them (``owned``: run
        id to ownership keys), a transaction per 50 runs at most (fewer when runs hold several rows);
        a run changed since it was read stays, as does a batch that fails, run by run. Returns how many
        runs were deleted."""
        from azure.core import MatchConditions

        def operations(run: Run) -> list[Any]:
            if not run.row_key or not run.row_key.startswith(PAST) or run.etag is None:
                raise ValueError("only past runs read from the registry are deleted")
            condition = {"etag": run.etag, "match_condition": MatchConditions.IfNotModified}
            found: list[Any] = [("delete", {"PartitionKey": run.target, "RowKey": run.row_key}, condition)]
            found.extend(
                ("delete", {"PartitionKey": run.target, "RowKey": OWNER + key}) for key in owned.get(run.id, ())
            )
            return found

        chunks: list[list[Run]] = [[]]
        size = 0
        for run in runs:
            count = 1 + len(owned.get(run.id, ()))
            if size + count > TRANSACTION_LIMIT:
                chunks.append([])
                size = 0
            chunks[-1].append(run)
            size += count
        deleted = 0
        for chunk in chunks:
            if not chunk:
                continue
            try:
                with _guarded("delete expired runs", moved_is_conflict=True):
                    self._table.submit_transaction([op for run in chunk for op in operations(run)])
                deleted += len(chunk)
            except (ConcurrentUpdate, AlreadyExists):
                for run in chunk:
                    with (
                        contextlib.suppress(ConcurrentUpdate, AlreadyExists),
                        _guarded("delete an expired run", moved_is_conflict=True),
                    ):
                        self._table.submit_transaction(operations(run))
                        deleted += 1
        return deleted


def tenant(product: str | None) -> str:
    """The tenant of a run started by ``product``: each API product is one, and calls without a
    product (the function key used directly) are one of their own."""
    return f"product:{product}" if product else DIRECT


def no_such_run(run_id: str) -> RunNotFound:
    """The one answer for a run that does not exist and for a run the caller may not see."""
    return RunNotFound(f"There is no run {run_id!r}.")


def _save_operations(run: Run, keep_live: bool | None) -> tuple[list[Any], str]:
    """The transaction operations that write ``run`` (an update, or a delete and a create when it
    moves between live and past), and its row key afterwards."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    if run.row_key is None or run.etag is None:
        raise ValueError("saving needs a run read from the registry")
    live = (not run.terminal) if keep_live is None else keep_live
    entity = _to_entity(run, LIVE if live else PAST)
    condition = {"etag": run.etag, "match_condition": MatchConditions.IfNotModified}
    if run.row_key == entity["RowKey"]:
        return [("update", entity, {**condition, "mode": UpdateMode.REPLACE})], entity["RowKey"]
    old = {"PartitionKey": run.target, "RowKey": run.row_key}
    return [("delete", old, condition), ("create", entity)], entity["RowKey"]


def _after(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _key(run_id: str) -> str:
    return run_id.partition(".")[2]


def _to_entity(run: Run, prefix: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": run.target,
        "RowKey": prefix + _key(run.id),
        "Tenant": tenant(run.product),
    }
    for item in fields(Run):
        if item.name in _INTERNAL:
            continue
        value = getattr(run, item.name)
        if value is not None:
            entity[_pascal(item.name)] = value
    for name in _JSON_FIELDS:
        text = json.dumps(getattr(run, name), separators=(",", ":"), sort_keys=True)
        chunks = split_property(text) or [""]
        for index, chunk in enumerate(chunks):
            entity[f"{_pascal(name)}{index}"] = chunk
    return entity


def _from_entity(entity: Mapping[str, Any]) -> Run:
    values: dict[str, Any] = {}
    for item in fields(Run):
        if item.name in _INTERNAL:
            continue
        value = entity.get(_pascal(item.name))
        if item.name in _DATETIME_FIELDS and value is not None and not isinstance(value, datetime):
            value = None
        if value is not None:
            values[item.name] = value
    for name in _JSON_FIELDS:
        parts = []
        index = 0
        while f"{_pascal(name)}{index}" in entity:
            parts.append(entity[f"{_pascal(name)}{index}"])
            index += 1
        values[name] = json.loads("".join(parts)) if parts else {}
    row_key: str = entity["RowKey"]
    run_key = row_key.partition("-")[2]
    metadata = getattr(entity, "metadata", {})
    return Run(
        id=f"{entity['PartitionKey']}.{run_key}",
        target=entity["PartitionKey"],
        row_key=row_key,
        etag=metadata.get("etag"),
        **values,
    )


def _with_location(run: Run, row_key: str, metadata: Mapping[str, Any]) -> Run:
    return replace(run, row_key=row_key, etag=metadata.get("etag"))


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_RUN_KEY = re.compile(r"[0-9a-z]{21}")
_MAX_TOKEN_PART = 256


def _encode_cursor(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    data: dict[str, Any] = {"a": list(cursor.after) if cursor.after else None}
    if cursor.live:
        data["l"] = list(cursor.live)
    if cursor.past:
        data["p"] = list(cursor.past)
        data["u"] = list(cursor.past_upto) if cursor.past_upto else None
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str | None, target: str | None) -> Cursor | None:
    """Tokens come back from callers: anything not ours (or of another target's listing) is refused.

    A token names positions and Azure's resume points only; the query's own filters, the tenant
    among them, still apply to whatever it names.
    """
    if not token:
        return None
    try:
        cursor = _cursor(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))
        if target is not None and any(at and at[0] != target for at in (cursor.after, cursor.past_upto)):
            raise ValueError("a token of another target's listing")
    except ValueError:  # binascii.Error and JSONDecodeError among them
        raise ValidationFailed(
            "The continuation token is not valid.",
            [{"field": "continuation", "message": "use the token a previous page returned, with the same filters"}],
        ) from None
    return cursor


def _cursor(data: Any) -> Cursor:
    """The cursor a token's JSON describes; ValueError when it is not one the registry wrote."""
    if not isinstance(data, dict) or set(data) - {"a", "l", "p", "u"}:
        raise ValueError("not a cursor")
    after, live, past = (_pair(data.get(name)) for name in ("a", "l", "p"))
    upto = data.get("u")
    if upto is not None:
        if not (isinstance(upto, list) and len(upto) == 3 and upto[2] in (0, 1) and not isinstance(upto[2], bool)):
            raise ValueError("not a bound")
        upto = (*_run_position(_pair(upto[:2])), upto[2])
    return Cursor(_run_position(after) if after else None, live, past, upto)


def _run_position(pair: Token | None) -> tuple[str, str]:
    partition, key = pair or (None, None)
    if not partition or not key or names.TARGET.problem(partition) or not _RUN_KEY.fullmatch(key):
        raise ValueError("not a run's position")
    return partition, key


def _pair(value: Any) -> Token | None:
    """Two short printable ASCII strings (or nulls); None when absent."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("not a pair")
    for part in value:
        if part is not None and not (
            isinstance(part, str) and part.isascii() and part.isprintable() and len(part) <= _MAX_TOKEN_PART
        ):
            raise ValueError("not a short printable string")
    return value[0], value[1]
