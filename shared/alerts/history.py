"""The alert history: alerts forwarded to a webhook or acknowledged by on-call, kept in the registry's table.

A queue forgets a message once it is taken, but on-call still needs to see what was raised, where it
was sent and who handled it. One entity per alert id, in partition ``_alerts`` (never a target name,
which starts with a letter or digit) with row keys that never fall among a target's ``live-``/``past-``
rows. The row key is the alert id turned around, ``{descending time}{random}:{target}:{kind}``, so the
newest runs list first across targets and a repeat of the same alert lands on the same entity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.alerts.model import Alert, read_alert
from shared.azure.storage import split_property, storage_errors
from shared.runs.model import target_of

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_guarded = partial(storage_errors, what="the alert history", role="Storage Table Data Contributor")

PARTITION = "_alerts"
# Open (unacknowledged) alerts are looked for among at most this many of the newest entries.
SCAN_LIMIT = 1000


@dataclass(frozen=True)
class AlertRecord:
    alert: Alert
    forwarded_at: datetime | None = None
    forwarded_to: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @property
    def alert_id(self) -> str:
        return self.alert.alertId


class AlertHistory:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, alert_id: str) -> AlertRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        with _guarded("read an alert"):
            try:
                entity = self._table.get_entity(PARTITION, row_key(alert_id))
            except ResourceNotFoundError:
                return None
        return _from_entity(entity)

    def record_forwarded(self, alert: Alert, *, to: str, at: datetime) -> None:
        self._merge(alert, {"ForwardedAt": at, "ForwardedTo": to}, "record a forwarded alert")

    def acknowledge(self, alert: Alert, *, by: str, at: datetime) -> AlertRecord:
        self._merge(alert, {"AcknowledgedAt": at, "AcknowledgedBy": by}, "record an acknowledgement")
        record = self.get(alert.alertId)
        assert record is not None  # just written
        return record

    def recent(self, *, limit: int, open_only: bool) -> list[AlertRecord]:
        """The newest alerts first (by their run's start), until ``limit`` of them, or of the open ones.

        With ``open_only`` the acknowledged alerts met on the way are returned too, so a caller can
        recognise their repeats; it filters them out itself.
        """
        found: list[AlertRecord] = []
        counted = 0
        with _guarded("list alerts"):
            entities = self._table.query_entities(
                "PartitionKey eq @partition", parameters={"partition": PARTITION}, results_per_page=min(limit, 1000)
            )
            for record in _records(entities):
                found.append(record)
                counted += not open_only or record.acknowledged_at is None
                if counted >= limit or len(found) >= SCAN_LIMIT:
                    break
        return found

    def for_run(self, run_id: str) -> list[AlertRecord]:
        prefix = row_key(f"{run_id}:")  # "{rest}:{target}:" for one of our runs
        query = "PartitionKey eq @partition and RowKey ge @low and RowKey lt @high"
        params = {"partition": PARTITION, "low": prefix, "high": prefix[:-1] + chr(ord(":") + 1)}
        with _guarded("list the alerts of a run"):
            return list(_records(self._table.query_entities(query, parameters=params)))

    def _merge(self, alert: Alert, changes: dict[str, Any], action: str) -> None:
        from azure.data.tables import UpdateMode

        entity = {**_alert_properties(alert), **changes}
        with _guarded(action):
            self._table.upsert_entity(entity, mode=UpdateMode.MERGE)


def row_key(alert_id: str) -> str:
    """``{target}.{rest}:{kind}`` becomes ``{rest}:{target}:{kind}``: newest runs first, any target."""
    run_id, _, kind = alert_id.rpartition(":")
    target = target_of(run_id)
    if target is None:
        return "~" + hashlib.sha256(alert_id.encode()).hexdigest()  # not one of ours: after all of ours
    return f"{run_id.partition('.')[2]}:{target}:{kind}"


def _alert_properties(alert: Alert) -> dict[str, Any]:
    text = json.dumps(alert.queue_message(), separators=(",", ":"), sort_keys=True)
    chunks = split_property(text)
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": row_key(alert.alertId),
        "AlertId": alert.alertId,
        "RunId": alert.runId,
        "Summary": alert.summary[:1000],
        "AlertChunks": len(chunks),
    }
    entity.update({f"Alert{index}": chunk for index, chunk in enumerate(chunks)})
    return entity


def _from_entity(entity: Mapping[str, Any]) -> AlertRecord | None:
    """The record, or None for an entity whose alert JSON is unreadable (only ever written whole)."""
    text = "".join(entity.get(f"Alert{index}", "") for index in range(int(entity.get("AlertChunks", 0))))
    try:
        alert = read_alert(json.loads(text))
    except ValueError:
        alert = None
    if alert is None:
        return None
    return AlertRecord(
        alert=alert,
        forwarded_at=entity.get("ForwardedAt"),
        forwarded_to=entity.get("ForwardedTo"),
        acknowledged_at=entity.get("AcknowledgedAt"),
        acknowledged_by=entity.get("AcknowledgedBy"),
    )


def _records(entities: Iterable[Mapping[str, Any]]) -> Iterable[AlertRecord]:
    for entity in entities:
        record = _from_entity(entity)
        if record is not None:
            yield record
