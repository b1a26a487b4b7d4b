"""Timer and queue triggers, run the way the Functions host runs them.

Timers: NCRONTAB with six fields, seconds first, in UTC, day-of-month AND day-of-week (NCrontab's rule,
not cron's OR), parsed by ``croniter``; or a ``TimeSpan`` interval (``00:05:00``). One thread per timer
function, so a function never overlaps itself, and occurrences missed while it ran are skipped, as
the host does.

Queues: messages are taken in batches with a lease, decoded from base64 text (host.json
``messageEncoding``), passed as ``azure.functions.QueueMessage`` and deleted on success. A failure makes
the message visible again after ``visibilityTimeout``; once it has been dequeued ``maxDequeueCount``
times it moves, as it was sent, to ``<queue>-poison``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from croniter import croniter

from offline.localhost.config import HostConfig, HostConfigError, parse_timespan
from offline.localhost.invoke import Invoker
from offline.localhost.metadata import QueueFunction, TimerFunction

logger = logging.getLogger("offline.localhost")

PAST_DUE_AFTER = timedelta(seconds=1)
QUEUE_LEASE_SECONDS = 600  # the host's initial visibility timeout for a message it works on
NEVER = "0001-01-01T00:00:00+00:00"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime: ...


@dataclass(frozen=True)
class Interval:
    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        return moment + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Ncrontab:
    expression: str

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 6 or not croniter.is_valid(self.expression, second_at_beginning=True):
            raise HostConfigError(
                f"schedule {self.expression!r} is not a six-field NCRONTAB expression "
                "({second} {minute} {hour} {day} {month} {day-of-week}) nor a TimeSpan"
            )

    def next_after(self, moment: datetime) -> datetime:
        schedule = croniter(self.expression, moment, second_at_beginning=True, day_or=False)
        return cast(datetime, schedule.get_next(datetime))


def parse_schedule(text: str) -> Schedule:
    seconds = parse_timespan(text)
    if seconds is None:
        return Ncrontab(text)
    if seconds <= 0:
        raise HostConfigError(f"schedule {text!r}: an interval must be positive")
    return Interval(seconds)


class TimerRunner:
    def __init__(self, function: TimerFunction, schedule: Schedule, invoke: Invoker, stopping: threading.Event):
        self.function = function
        self.schedule = schedule
        self._invoke = invoke
        self._stopping = stopping
        self._last: datetime | None = None

    def run(self) -> None:
        if self.function.run_on_startup:
            now = utcnow()
            self._fire(now, now)
        due = self.schedule.next_after(utcnow())
        while not self._stopping.wait(max(0.0, (due - utcnow()).total_seconds())):
            self._fire(due, utcnow())
            due = self.schedule.next_after(max(due, utcnow()))

    def _fire(self, due: datetime, now: datetime) -> None:
        status = {
            "Last": self._last.isoformat() if self._last else NEVER,
            "Next": self.schedule.next_after(max(due, now)).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        timer = TimerRequest(past_due=now - due > PAST_DUE_AFTER, schedule_status=status,
                                  schedule={"AdjustForDST": True})  # fmt: skip
        self._last = now
        try:
            self._invoke(self.function.handler, self.function.param, timer)
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed)", self.function.name)


class ReceivedMessage(Protocol):
    """What the runner reads of a received ``azure.storage.queue.QueueMessage``."""

    @property
    def id(self) -> str: ...
    @property
    def content(self) -> Any: ...
    @property
    def dequeue_count(self) -> int | None: ...
    @property
    def pop_receipt(self) -> str | None: ...
    @property
    def inserted_on(self) -> datetime | None: ...
    @property
    def expires_on(self) -> datetime | None: ...
    @property
    def next_visible_on(self) -> datetime | None: ...


class QueueClientLike(Protocol):
    """The part of ``azure.storage.queue.QueueClient`` the runner uses. Give it clients without message
    encode/decode policies: the host decodes itself, and poison messages are moved as they were sent."""

    def receive_messages(self, *, max_messages: int | None = ..., visibility_timeout: int | None = ...
                         ) -> Iterable[ReceivedMessage]: ...  # fmt: skip
    def delete_message(self, message: str, pop_receipt: str | None = ...) -> None: ...
    def update_message(self, message: str, pop_receipt: str | None = ..., *, visibility_timeout: int | None = ...
                       ) -> Any: ...  # fmt: skip
    def create_queue(self) -> None: ...
    def send_message(self, content: Any) -> Any: ...


QueueClientFactory = Callable[[str, str], QueueClientLike]


class QueueRunner:
    def __init__(
        self,
        function: QueueFunction,
        queue_name: str,
        clients: QueueClientFactory,
        config: HostConfig,
        invoke: Invoker,
        stopping: threading.Event,
        poll_interval: float,
    ) -> None:
        self.function = function
        self.queue_name = queue_name
        self._clients = clients
        self._client = clients(queue_name, function.connection)
        self._config = config
        self._invoke = invoke
        self._stopping = stopping
        self._poll_interval = poll_interval

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = self.poll_once()
            except AzureError as error:
                logger.warning("queue %s: %s", self.queue_name, error)
                handled = 0
            if not handled:
                self._stopping.wait(self._poll_interval)

    def poll_once(self) -> int:
        """Handles one batch; returns how many messages it held (a queue not created yet holds none)."""
        try:
            batch = list(self._client.receive_messages(max_messages=self._config.batch_size,
                                                       visibility_timeout=QUEUE_LEASE_SECONDS))  # fmt: skip
        except ResourceNotFoundError:
            return 0
        for message in batch:
            if self._stopping.is_set():
                self._release(message)
            else:
                self._handle(message)
        return len(batch)

    def _handle(self, message: ReceivedMessage) -> None:
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > self._config.max_dequeue_count:
            self._poison(message)  # it ended a process (or host) that was running it, too often
            return
        try:
            self._invoke(self.function.handler, self.function.param, self._trigger_message(message))
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed) for message %s", self.function.name, message.id)
            if dequeue_count >= self._config.max_dequeue_count:
                self._poison(message)
            else:
                self._release(message, int(self._config.visibility_timeout))
            return
        self._client.delete_message(message.id, message.pop_receipt)

    def _trigger_message(self, message: ReceivedMessage) -> QueueMessage:
        return QueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=self._decode(message.content),
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    def _decode(self, content: Any) -> bytes:
        raw = content.encode() if isinstance(content, str) else bytes(content)
        if self._config.message_encoding == "none":
            return raw
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as error:
            raise ValueError(f"message is not base64 (host.json messageEncoding is base64): {error}") from error

    def _release(self, message: ReceivedMessage, after_seconds: int = 0) -> None:
        self._client.update_message(message.id, message.pop_receipt, visibility_timeout=after_seconds)

    def _poison(self, message: ReceivedMessage) -> None:
        poison_name = f"{self.queue_name}-poison"
        poison = self._clients(poison_name, self.function.connection)
        with contextlib.suppress(ResourceExistsError):
            poison.create_queue()
        poison.send_message(message.content)
        self._client.delete_message(message.id, message.pop_receipt)
        logger.warning("message %s moved to %s after %s dequeues", message.id, poison_name, message.dequeue_count)
