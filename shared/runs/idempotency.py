"""Idempotency keys: a retried or racing start with the same ``Idempotency-Key`` gets the same run.

One entity per (caller, key) in partition ``_idempotency`` of the registry's table ("_" cannot start
a target name), pointing at the run the first request started. Claiming is an insert, so of two racing
requests exactly one wins; taking over an expired or abandoned key is ETag-conditional. The poller
deletes expired keys (``purge``), each only if nobody took it over since it was read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.azure.storage import AlreadyExists, ConcurrentUpdate, storage_errors
from shared.errors import IdempotencyKeyReused, RunNotFound
from shared.runs.model import Run, utcnow

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_guarded = partial(storage_errors, what="the run registry", role="Storage Table Data Contributor")

PARTITION = "_idempotency"
TTL = timedelta(hours=24)
# A key whose run is not recorded after this long belongs to a request that died.
ABANDONED_AFTER = timedelta(seconds=60)
REPLAY_WAIT_SECONDS = 5.0
REPLAY_POLL_SECONDS = 0.1  # the racing request records its run within milliseconds


@dataclass(frozen=True)
class IdempotencyRecord:
    run_id: str
    fingerprint: str
    created_at: datetime
    etag: str


def fingerprint(request: dict[str, Any]) -> str:
    """A digest of the request: the same key with another request is a caller's mistake, not a retry."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, table: TableClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep

    def claim(self, caller: str, key: str, digest: str, run_id: str, now: datetime) -> IdempotencyRecord | None:
        """Records that (caller, key) starts ``run_id``; returns the earlier record if there is one."""
        try:
            with _guarded("record the idempotency key"):
                self._table.create_entity(_entity(caller, key, run_id, digest, now))
            return None
        except AlreadyExists:
            return self.get(caller, key)

    def replay(
        self, earlier: IdempotencyRecord, digest: str, caller: str, key: str, run_id: str, read: Callable[[str], Run]
    ) -> Run | None:
        """The run an earlier request with this key started (``read`` fetches it), or None when the key
        was taken over for ``run_id`` because it expired or its request died before recording a run."""
        now = utcnow()
        expired = now - earlier.created_at > TTL
        if not expired and earlier.fingerprint != digest:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request; use a new key for a new run."
            )
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while not expired:
            try:
                return read(earlier.run_id)
            except RunNotFound:
                if now - earlier.created_at > ABANDONED_AFTER:
                    break
                if time.monotonic() > deadline:
                    raise _in_progress() from None
                self._sleep(REPLAY_POLL_SECONDS)
                now = utcnow()
        try:
            self._replace(caller, key, earlier, run_id, digest, utcnow())
        except ConcurrentUpdate:
            raise _in_progress() from None
        return None

    def release(self, caller: str, key: str) -> None:
        """Frees the key of a request that started nothing, so a retry can start the run."""
        with _guarded("release the idempotency key"):
            self._table.delete_entity(PARTITION, _row(caller, key))

    def purge(self, before: datetime, limit: int) -> int:
        """Deletes up to ``limit`` keys claimed before ``before`` (one read, then one transaction, or a
        delete per key when one was taken over meanwhile); returns how many were deleted."""
        from azure.core import MatchConditions

        query = "PartitionKey eq @partition and CreatedAt lt @before"
        with _guarded("read expired idempotency keys"):
            pages = self._table.query_entities(
                query, parameters={"partition": PARTITION, "before": before}, results_per_page=limit
            ).by_page()
            expired = list(next(pages, []))[:limit]
        deletes = [
            (
                "delete",
                {"PartitionKey": PARTITION, "RowKey": entity["RowKey"]},
                {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified},
            )
            for entity in expired
        ]
        if not deletes:
            return 0
        try:
            with _guarded("delete expired idempotency keys", moved_is_conflict=True):
                self._table.submit_transaction(deletes)
            return len(deletes)
        except ConcurrentUpdate:
            deleted = 0
            for delete in deletes:
                with (
                    contextlib.suppress(ConcurrentUpdate),
                    _guarded("delete an expired idempotency key", moved_is_conflict=True),
                ):
                    self._table.submit_transaction([delete])
                    deleted += 1
            return deleted

    def get(self, caller: str, key: str) -> IdempotencyRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("read the idempotency key"):
            try:
                entity = self._table.get_entity(PARTITION, _row(caller, key))
            except ResourceNotFoundError:
                return None
        return IdempotencyRecord(
            entity["RunId"], entity["Fingerprint"], entity["CreatedAt"], str(entity.metadata["etag"])
        )

    def _replace(
        self, caller: str, key: str, record: IdempotencyRecord, run_id: str, digest: str, now: datetime
    ) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        with _guarded("take over the idempotency key", moved_is_conflict=True):  # purged meanwhile: a race
            self._table.update_entity(
                _entity(caller, key, run_id, digest, now),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )


def _in_progress() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("A request with this Idempotency-Key is still being processed; retry shortly.")


def _row(caller: str, key: str) -> str:
    return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()


def _entity(caller: str, key: str, run_id: str, digest: str, now: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": _row(caller, key),
        "RunId": run_id,
        "Fingerprint": digest,
        "CreatedAt": now,
    }
