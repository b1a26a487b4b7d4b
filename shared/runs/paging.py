"""Paging the run registry by run id, so that a run ending mid-listing is neither repeated nor skipped.

A run's row key is ``live-{key}`` while the poller has work on it and ``past-{key}`` afterwards
(``shared.runs.registry``). The key, the run id without its target, never changes, and a row only
ever moves from live to past. So a listing orders runs by position, (target, key): newest first within
each target, whichever prefix holds the run. It reads two streams, the live rows and the past rows,
and merges them by position. The rules:

* **Resume after the last run returned.** The cursor is the position of the last run a page returned;
  the next page starts strictly after it, so no run is returned twice, whichever row holds it by then.
* **The past stream never reads ahead of the live stream.** Each past read is bounded by what the
  live stream has read. A run the live read did not find at its position had moved to its past row
  before, and the past read comes to that position later; so no run that exists throughout the listing
  is skipped. (Read from both rows within one page, a run is returned once, as its past row has it.)
* **A run is returned once both streams have read past its position**, so runs come in order.
* **Bounded work.** One page makes at most ``MAX_READS`` reads of ``MAX_ROWS`` rows in all; Azure may
  answer a read with no rows and a continuation (it scans for a few seconds at most per answer). A
  page that stops early returns what it has and a cursor, even with no runs. The cursor carries a
  stream's Azure token only where resuming from it cannot skip a run: the live token when no live run
  is waiting to be returned, the past token when its read went no further than the first waiting live
  run. Either way the next page goes further.
* **Azure's tokens are positions in its scan, which may lie beyond a read's bound**: a token is used
  again only with a bound no larger than the one it came with.

Runs created after the first page may or may not appear in later ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# (partition, run key, 1): the run itself; (partition, run key, 0): just before it.
Position = tuple[str, str, int]
Token = tuple[str | None, str | None]  # Azure's next partition and row key: opaque
Entity = Mapping[str, Any]

LIVE = "live-"
PAST = "past-"
END: Position = (chr(0x10FFFF), "", 1)
MAX_READS = 8
MAX_ROWS = 1000


class Read(Protocol):
    def __call__(
        self, prefix: str, after: Position | None, upto: Position | None, token: Token | None, top: int
    ) -> tuple[list[Entity], Token | None]:
        """At most ``top`` rows of the stream ``prefix`` after ``after`` up to ``upto`` (None: from the
        start, to the end), resuming at ``token`` when given; and Azure's continuation."""
        ...


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the run at ``after``, and at a stream's Azure token where that
    is safe (the past token with the bound it must be read to first)."""

    after: tuple[str, str] | None = None
    live: Token | None = None
    past: Token | None = None
    past_upto: Position | None = None


@dataclass
class _Stream:
    prefix: str
    seen: Position | None  # every row of the stream up to here has been read (None: nothing yet)
    token: Token | None = None
    token_upto: Position | None = None  # the bound ``token`` came with (None: unbounded)
    stalled: bool = False  # the last read gave a continuation but no row
    waiting: list[tuple[Position, Entity]] = field(default_factory=list)  # read, not yet returned

    @property
    def ended(self) -> bool:
        return self.seen == END

    def before(self, other: _Stream) -> bool:
        return other.seen is not None and (self.seen is None or self.seen < other.seen)

    def bound(self, wanted: Position | None) -> Position | None:
        """``wanted``, unless the token must first be read to its own, smaller bound."""
        if self.token is not None and self.token_upto is not None and (wanted is None or wanted > self.token_upto):
            return self.token_upto
        return wanted

    def take(self, read: Read, upto: Position | None, top: int) -> int:
        rows, token = read(self.prefix, self.seen, upto, self.token, top)
        self.waiting.extend((position(self.prefix, row), row) for row in rows)
        if token is None:
            self.seen, self.token, self.token_upto, self.stalled = upto or END, None, None, False
        else:
            if rows:
                self.seen = self.waiting[-1][0]
            self.token, self.token_upto, self.stalled = token, upto, not rows
        return len(rows)


def position(prefix: str, row: Entity) -> Position:
    return str(row["PartitionKey"]), str(row["RowKey"])[len(prefix) :], 1


def page(
    read: Read,
    cursor: Cursor | None,
    limit: int,
    *,
    finished_only: bool = False,
    max_reads: int = MAX_READS,
    max_rows: int = MAX_ROWS,
) -> tuple[list[Entity], Cursor | None]:
    """Up to ``limit`` rows after ``cursor`` in position order, and the cursor of the next page (None
    at the end). ``finished_only`` reads the past rows alone."""
    cursor = cursor or Cursor()
    start: Position | None = (*cursor.after, 1) if cursor.after else None
    live = _Stream(LIVE, END) if finished_only else _Stream(LIVE, start, token=cursor.live)
    past = _Stream(PAST, start, token=cursor.past, token_upto=cursor.past_upto)
    found: list[Entity] = []
    after = cursor.after
    reads = rows = 0
    while True:
        for at, row in _ready(live, past, limit - len(found)):
            found.append(row)
            after = at[:2]
        if live.ended and past.ended and not live.waiting and not past.waiting:
            return found, None
        if len(found) >= limit:
            return found, Cursor(after)
        if reads >= max_reads or rows >= max_rows:
            return found, _resume(after, live, past)
        top = min(limit - len(found), max_rows - rows)
        if past.before(live):
            first = (*live.waiting[0][0][:2], 0) if live.waiting else None  # just before the first waiting run
            # After a read that found nothing yet, or on the last read: no further than the first waiting
            # run, so that the token may be carried to the next page (see ``_resume``).
            tight = (
                first is not None
                and (past.stalled or reads == max_reads - 1)
                and (past.seen is None or past.seen < first)
            )
            wanted = first if tight else (None if live.ended else live.seen)
            rows += past.take(read, past.bound(wanted), top)
        else:
            rows += live.take(read, None, top)
        reads += 1


def _ready(live: _Stream, past: _Stream, room: int) -> list[tuple[Position, Entity]]:
    """The waiting rows both streams have read past, in order, one per run (the past row wins: it was
    read later), at most ``room``; removed from the streams."""
    if live.seen is None or past.seen is None:
        return []
    frontier = min(live.seen, past.seen)
    ready = {at: row for at, row in live.waiting if at <= frontier}
    ready.update((at, row) for at, row in past.waiting if at <= frontier)
    taken = sorted(ready)[: max(room, 0)]
    if not taken:
        return []
    last = taken[-1]
    for stream in (live, past):
        stream.waiting = [(at, row) for at, row in stream.waiting if at > last]
    return [(at, ready[at]) for at in taken]


def _resume(after: tuple[str, str] | None, live: _Stream, past: _Stream) -> Cursor:
    """The cursor of a page that stopped early: each stream's Azure token where resuming from it
    cannot skip a run, so the next page goes further even when this one found nothing."""
    first = live.waiting[0][0] if live.waiting else None
    live_token = live.token if first is None else None
    safe = past.token is not None and (first is None or (past.token_upto is not None and past.token_upto < first))
    return Cursor(after, live_token, past.token if safe else None, past.token_upto if safe else None)
