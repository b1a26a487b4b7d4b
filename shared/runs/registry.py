"""The run registry in Azure Table Storage.

Layout (one table):

* partition ``{target}``: one entity per run. While the poller still has work on it (in flight, or
  an alert not yet sent) its row key is ``live-{id}``; afterwards the record moves to ``past-{id}``
  in a single entity-group transaction, so the poller reads only live rows and a move is atomic.
  Ids count time down, so each prefix lists newest first. Beside them, ``upstream-{kind key}`` rows
  index which record owns each Azure run, written in the same transaction as the record that claims
  it: an Azure run is never attributed to two records, live or past.
* partition ``_idempotency``: one entity per (caller, Idempotency-Key), see ``shared.runs.idempotency``.
* partition ``_alerts``: the alert history (forwarded and acknowledged alerts), see ``shared.alerts.history``.

Every update is conditional on the ETag read, so overlapping poller ticks or a racing cancel never
overwrite each other's work: the loser gets ``ConcurrentUpdate`` and re-reads.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import fields, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.azure.storage import AlreadyExists, ConcurrentUpdate, split_property, storage_errors
from shared.errors import RunNotFound
from shared.runs.model import Run, target_of

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_guarded = partial(storage_errors, what="the run registry", role="Storage Table Data Contributor")

LIVE = "live-"
PAST = "past-"
OWNER = "upstream-"  # sorts after every live- and past- row, so run listings never meet it
TRANSACTION_LIMIT = 100  # operations per entity-group transaction
_JSON_FIELDS = ("parameters", "options")
_DATETIME_FIELDS = {f.name for f in fields(Run) if "datetime" in str(f.type)}
_INTERNAL = {"row_key", "etag", "id", "target", *_JSON_FIELDS}


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
            raise RunNotFound(f"There is no run {run_id!r}.")
        from azure.core.exceptions import ResourceNotFoundError

        for prefix in (LIVE, PAST):
            with _guarded("read the run"):
                try:
                    entity = self._table.get_entity(target, prefix + _key(run_id))
                except ResourceNotFoundError:
                    continue
            return _from_entity(entity)
        raise RunNotFound(f"There is no run {run_id!r}.")

    def save(self, run: Run, *, keep_live: bool | None = None, owns: str | None = None) -> Run:
        """Writes ``run`` if nobody changed it since it was read; moves it to the past when done.

        ``keep_live`` defaults to "still in flight"; the poller keeps a finished run live until its
        alert is sent. ``owns`` (a kind's ownership key) records, in the same transaction, that the
        run owns that Azure run: ``AlreadyExists`` when another record does, and nothing is written.
        A record another writer changed or moved raises ``ConcurrentUpdate``.
        """
        operations, row_key = _save_operations(run, keep_live)
        if owns is not None:
            operations.insert(0, ("create", {"PartitionKey": run.target, "RowKey": OWNER + owns, "RunId": run.id}))
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

    def owner_of(self, target: str, key: str) -> str | None:
        """The id of the run that owns the Azure run ``key`` names (see ``save(owns=...)``), or None."""
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("read who owns an Azure run"):
            try:
                entity = self._table.get_entity(target, OWNER + key)
            except ResourceNotFoundError:
                return None
        return str(entity["RunId"])

    @staticmethod
    def is_live(run: Run) -> bool:
        """Whether the poller still has work on the record (it sits among the live rows)."""
        return bool(run.row_key and run.row_key.startswith(LIVE))

    def all_live_runs(self) -> Iterator[Run]:
        """The live records of every target (one query across partitions): runs in flight, for caps."""
        query = "RowKey ge @low and RowKey lt @high"
        with _guarded("list the runs in flight"):
            for entity in self._table.query_entities(query, parameters={"low": LIVE, "high": _after(LIVE)}):
                yield _from_entity(entity)

    def live_runs(self, target: str) -> Iterator[Run]:
        query = "PartitionKey eq @target and RowKey ge @low and RowKey lt @high"
        params = {"target": target, "low": LIVE, "high": _after(LIVE)}
        with _guarded("list the runs in flight"):
            for entity in self._table.query_entities(query, parameters=params, results_per_page=1000):
                yield _from_entity(entity)

    def list_runs(
        self,
        *,
        target: str | None = None,
        pipeline: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        continuation: str | None = None,
        finished_only: bool = False,
    ) -> tuple[list[Run], str | None]:
        """One page of runs, newest first within each target (runs in flight first); the token
        resumes after it."""
        clauses = ["RowKey ge @low", "RowKey lt @high"]
        params: dict[str, Any] = {"low": PAST if finished_only else LIVE, "high": _after(PAST)}
        if target:
            clauses.append("PartitionKey eq @target")
            params["target"] = target
        if pipeline:
            clauses.append("Pipeline eq @pipeline")
            params["pipeline"] = pipeline
        if status:
            clauses.append("Status eq @status")
            params["status"] = status
        if since:
            clauses.append("CreatedAt ge @since")
            params["since"] = since
        token = _decode_token(continuation)
        runs: list[Run] = []
        next_token: dict[str, str] | None = None
        with _guarded("list runs"):
            pages = self._table.query_entities(
                " and ".join(clauses), parameters=params, results_per_page=limit
            ).by_page(continuation_token=token)  # type: ignore[arg-type]  # tables tokens are dicts
            for page in pages:
                runs.extend(_from_entity(entity) for entity in page)
                next_token = pages.continuation_token  # type: ignore[attr-defined]
                if runs or next_token is None:
                    break
        return runs, _encode_token(next_token)


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
    entity: dict[str, Any] = {"PartitionKey": run.target, "RowKey": prefix + _key(run.id)}
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


def _encode_token(token: Mapping[str, str] | None) -> str | None:
    if not token:
        return None
    raw = json.dumps(dict(token), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str | None) -> dict[str, str] | None:
    """Tokens come back from callers: anything not ours is refused, not passed to storage."""
    if not token:
        return None
    from shared.errors import ValidationFailed

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        data = None
    if (
        not isinstance(data, dict)
        or set(data) - {"PartitionKey", "RowKey"}
        or not all(isinstance(v, str) and len(v) < 200 for v in data.values())
    ):
        raise ValidationFailed(
            "The continuation token is not valid.",
            [{"field": "continuation", "message": "use the token a previous page returned"}],
        )
    return data
