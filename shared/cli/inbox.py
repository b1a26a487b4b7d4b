"""The alerts waiting for on-call: the failure queue, its poison queue, and the alert history.

Without forwarding, alerts wait on the queue until acknowledged. With forwarding, the forwarder
consumes the queue, so what on-call reads is the history of forwarded alerts in the registry, plus
whatever waits on the poison queue because the webhook kept refusing it. Either way an alert is
"waiting" until someone acknowledges it; an acknowledgement removes its messages from the queues
and records who and when in the history, so repeats of the same alert id stay hidden too.

The Storage API peeks at most 32 messages. Past that the queue is browsed by receiving messages
and releasing them at once: they are hidden from other readers for a moment, which is why the
queue the forwarder consumes is only ever peeked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.alerts.history import AlertHistory, AlertRecord
from shared.alerts.model import Alert, read_alert
from shared.azure.queues import JsonQueue, Received
from shared.context import AppContext
from shared.errors import GatewayError, NotFound
from shared.runs.model import utcnow

PEEK_LIMIT = 32
# A queue is browsed up to this many messages: enough to pick the newest, bounded for a backlog.
BROWSE_LIMIT = 1000
BROWSE_HIDE_SECONDS = 30


class AmbiguousAlert(GatewayError):
    status = 400
    slug = "ambiguous-alert"
    title = "Ambiguous alert id"


class Waiting:
    QUEUED = "queued"  # on the alert queue
    FORWARDING = "forwarding"  # on the alert queue, with the forwarder on: about to be posted
    UNDELIVERED = "undelivered"  # on the poison queue: the webhook kept refusing it
    FORWARDED = "forwarded"  # posted to the webhook; in the history
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True)
class Entry:
    alert: Alert
    state: str
    record: AlertRecord | None = None

    @property
    def alert_id(self) -> str:
        return self.alert.alertId

    @property
    def raised_at(self) -> datetime:
        return self.alert.raised


@dataclass(frozen=True)
class Acknowledgement:
    record: AlertRecord
    removed: dict[str, int]  # queue name -> messages deleted
    already: bool


class Inbox:
    def __init__(self, context: AppContext) -> None:
        self._context = context
        self._queues: dict[str, JsonQueue] = {}

    @property
    def forwarding(self) -> bool:
        return self._context.settings.forwarding

    @property
    def queue_name(self) -> str:
        return self._context.settings.alert_queue

    @property
    def poison_name(self) -> str:
        return f"{self.queue_name}-poison"

    def waiting(self, *, limit: int, include_acknowledged: bool = False) -> list[Entry]:
        """Alerts newest first: unacknowledged ones, or every one the history and queues hold."""
        entries: dict[str, Entry] = {}
        acknowledged: set[str] = set()
        for record in self._history().recent(limit=limit, open_only=not include_acknowledged):
            if include_acknowledged or record.acknowledged_at is None:
                entries[record.alert_id] = Entry(record.alert, _state(record), record)
            else:
                acknowledged.add(record.alert_id)  # its repeats on the queues are handled too
        queued_state = Waiting.FORWARDING if self.forwarding else Waiting.QUEUED
        for name, state in ((self.poison_name, Waiting.UNDELIVERED), (self.queue_name, queued_state)):
            for alert in self._read(name, browse=(name == self.poison_name or not self.forwarding)):
                if alert.alertId not in entries and alert.alertId not in acknowledged:
                    entries[alert.alertId] = Entry(alert, state)
        return sorted(entries.values(), key=lambda entry: entry.raised_at, reverse=True)[:limit]

    def find(self, fragment: str) -> Entry:
        """The alert whose id is ``fragment``, or the only one whose id contains it."""
        history = self._history()
        record = history.get(fragment)
        if record is not None:
            return Entry(record.alert, _state(record), record)
        candidates = self.waiting(limit=1000, include_acknowledged=True)
        exact = [entry for entry in candidates if entry.alert_id == fragment]
        matches = exact or [entry for entry in candidates if fragment in entry.alert_id]
        if not matches:
            raise NotFound(f"No alert {fragment!r} on queue {self.queue_name}, its poison queue or the alert history.")
        if len({entry.alert_id for entry in matches}) > 1:
            ids = ", ".join(sorted({entry.alert_id for entry in matches})[:5])
            raise AmbiguousAlert(f"{fragment!r} matches several alerts ({ids}); give more of the id.")
        return matches[0]

    def acknowledge(self, fragment: str, *, by: str) -> Acknowledgement:
        """Records who handled the alert, and removes its messages (repeats included) from the queues."""
        entry = self.find(fragment)
        if entry.record is not None and entry.record.acknowledged_at is not None:
            return Acknowledgement(entry.record, {}, already=True)
        removed: dict[str, int] = {}
        names = [self.poison_name] if self.forwarding else [self.queue_name, self.poison_name]
        for name in names:
            count = self._remove(name, entry.alert_id)
            if count:
                removed[name] = count
        record = self._history().acknowledge(entry.alert, by=by, at=utcnow())
        return Acknowledgement(record, removed, already=False)

    def _history(self) -> AlertHistory:
        return self._context.alert_history

    def _queue(self, name: str) -> JsonQueue:
        queue = self._queues.get(name)
        if queue is None:
            settings = self._context.settings
            queue = JsonQueue.connect(
                queue_name=name,
                endpoint=settings.queue_service_uri,
                connection_string=settings.storage_connection_string,
                credential=self._context.tokens.credential,
            )
            self._queues[name] = queue
        return queue

    def _read(self, name: str, *, browse: bool) -> list[Alert]:
        """The queue's alerts, as many as can be seen: a queue is oldest first, so a caller picks the
        newest from all of them (up to ``BROWSE_LIMIT``), never from the first few."""
        queue = self._queue(name)
        count = queue.count()
        if count == 0:
            return []
        if count <= PEEK_LIMIT or not browse:
            peeked = (read_alert(message) for message in queue.peek(PEEK_LIMIT))
            return [alert for alert in peeked if alert is not None]
        received = queue.receive(min(count + PEEK_LIMIT, BROWSE_LIMIT), visibility_timeout=BROWSE_HIDE_SECONDS)
        for message in received:
            queue.release(message)
        return [alert for alert in (_parse(message) for message in received) if alert is not None]

    def _remove(self, name: str, alert_id: str) -> int:
        queue = self._queue(name)
        count = queue.count()
        if count == 0:
            return 0
        removed = 0
        for message in queue.receive(count + PEEK_LIMIT, visibility_timeout=BROWSE_HIDE_SECONDS):
            alert = _parse(message)
            if alert is not None and alert.alertId == alert_id:
                queue.delete(message)
                removed += 1
            else:
                queue.release(message)
        return removed


def _parse(message: Received) -> Alert | None:
    try:
        return read_alert(message.json())
    except ValueError:
        return None


def _state(record: AlertRecord) -> str:
    if record.acknowledged_at is not None:
        return Waiting.ACKNOWLEDGED
    return Waiting.FORWARDED if record.forwarded_at is not None else Waiting.QUEUED
