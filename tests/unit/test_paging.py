"""Paging by run id (shared/runs/paging.py) against a table that behaves as Azure's may: it answers
after scanning a few rows, with no rows and a continuation; its continuations may lie beyond a read's
bound; and runs end (their rows move from live to past) and start between any two reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.runs.paging import LIVE, MAX_READS, MAX_ROWS, PAST, Cursor, Entity, Position, Token, page

Key = tuple[str, str]  # (partition, run key)


class Table:
    """Two streams of rows, each ``(partition, key) -> tenant``, read the way Azure Tables reads them:
    in key order, at most ``scan`` rows examined per answer, each row counted whether it matches or not."""

    def __init__(
        self,
        rows: dict[Key, tuple[str, bool]],
        *,
        tenant: str,
        scan: int,
        overshoot: bool,
        between: Callable[[Table], None],
    ) -> None:
        self.streams: dict[str, dict[Key, str]] = {LIVE: {}, PAST: {}}
        for key, (owner, live) in rows.items():
            self.streams[LIVE if live else PAST][key] = owner
        self.tenant = tenant
        self.scan = scan
        self.overshoot = overshoot  # continuations may point beyond the read's bound
        self.between = between
        self.reads = 0
        self.rows_read = 0

    def read(
        self, prefix: str, after: Position | None, upto: Position | None, token: Token | None, top: int
    ) -> tuple[list[Entity], Token | None]:
        self.between(self)
        self.reads += 1
        found, following = self._scan(prefix, after, upto, token, top)
        self.rows_read += len(found)
        return found, following

    def _scan(
        self, prefix: str, after: Position | None, upto: Position | None, token: Token | None, top: int
    ) -> tuple[list[Entity], Token | None]:
        def started(key: Key) -> bool:
            if token is not None and key < (token[0] or "", token[1] or ""):
                return False
            return after is None or (key > after[:2] if after[2] else key >= after[:2])

        def within(key: Key) -> bool:
            return upto is None or (key <= upto[:2] if upto[2] else key < upto[:2])

        found: list[Entity] = []
        examined = 0
        for key, owner in sorted(self.streams[prefix].items()):
            if not started(key):
                continue
            if not within(key) and not self.overshoot:
                return found, None
            if examined == self.scan or len(found) == top:
                return found, key
            examined += 1
            if within(key) and owner == self.tenant:
                found.append({"PartitionKey": key[0], "RowKey": prefix + key[1]})
        return found, None

    def end(self, key: Key) -> None:
        self.streams[PAST][key] = self.streams[LIVE].pop(key)


def listing(table: Table, limit: int, **bounds: int) -> list[Key]:
    """Every page, in order, until the cursor runs out (a page that goes nowhere would loop: capped)."""
    found: list[Key] = []
    cursor: Cursor | None = None
    for _ in range(10_000):
        before = table.reads
        rows, cursor = page(table.read, cursor, limit, **bounds)
        assert table.reads - before <= bounds.get("max_reads", MAX_READS)
        found += [(str(row["PartitionKey"]), str(row["RowKey"])[5:]) for row in rows]
        if cursor is None:
            return found
    raise AssertionError("the listing never ended")


rows = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(10_000, 10_999).map(lambda n: f"{n:021d}")),
    st.tuples(st.sampled_from(["x", "y"]), st.booleans()),
    max_size=25,
)


# Each read draws what happens before it: a long listing is a large example, by nature.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(
    rows=rows,
    limit=st.integers(1, 6),
    scan=st.integers(1, 5),
    overshoot=st.booleans(),
    max_reads=st.integers(3, 8),
    max_rows=st.sampled_from([2, 3, 5, 12, MAX_ROWS]),
    data=st.data(),
)
def test_a_listing_returns_each_run_once_in_order_while_runs_end_and_start(
    rows: dict[Key, tuple[str, bool]],
    limit: int,
    scan: int,
    overshoot: bool,
    max_reads: int,
    max_rows: int,
    data: Any,
) -> None:
    created: dict[Key, str] = {}

    def between(table: Table) -> None:
        live = sorted(table.streams[LIVE])
        if live and data.draw(st.booleans(), label="a run ends"):
            table.end(live[data.draw(st.integers(0, len(live) - 1), label="which")])
        if data.draw(st.integers(0, 4), label="a run starts") == 0:  # newest: a key before its target's others
            partition = data.draw(st.sampled_from(["a", "b", "c"]), label="where")
            keys = [k for p, k in [*table.streams[LIVE], *table.streams[PAST]] if p == partition]
            key = (partition, f"{int(min(keys, default=f'{10_000:021d}')) - 1:021d}")
            created[key] = data.draw(st.sampled_from(["x", "y"]), label="whose")
            table.streams[LIVE][key] = created[key]

    table = Table(rows, tenant="x", scan=scan, overshoot=overshoot, between=between)
    found = listing(table, limit, max_reads=max_reads, max_rows=max_rows)

    assert found == sorted(set(found)), "in order, none twice"
    theirs = {key for key, (owner, _) in rows.items() if owner == "x"}
    assert theirs <= set(found), f"skipped: {sorted(theirs - set(found))}"
    started_since = {key for key, owner in created.items() if owner == "x"}
    assert set(found) <= theirs | started_since, "only the tenant's runs"


def test_a_page_that_finds_nothing_within_its_reads_still_continues() -> None:
    """A filter matching nothing in a long stretch: each page stops after its reads, with a cursor."""
    many = {("a", f"{n:021d}"): ("y", False) for n in range(200, 400)}
    table = Table(
        {**many, ("a", f"{999:021d}"): ("x", False)}, tenant="x", scan=10, overshoot=False, between=lambda _: None
    )
    rows, cursor = page(table.read, None, 50, max_reads=4)
    assert rows == [] and cursor is not None and table.reads == 4
    assert listing(table, 50, max_reads=4) == [("a", f"{999:021d}")]


def test_one_page_reads_at_most_a_thousand_rows() -> None:
    everything = {("a", f"{n:021d}"): ("x", n % 2 == 0) for n in range(3000)}
    table = Table(everything, tenant="x", scan=5000, overshoot=False, between=lambda _: None)
    rows, cursor = page(table.read, None, 200)
    assert len(rows) == 200 and cursor is not None
    assert table.reads <= MAX_READS and table.rows_read <= MAX_ROWS


def test_a_run_that_ends_between_two_pages_is_returned_once() -> None:
    keys = [("a", f"{n:021d}") for n in (1, 2, 3)]
    table = Table({key: ("x", True) for key in keys}, tenant="x", scan=100, overshoot=False, between=lambda _: None)
    first, cursor = page(table.read, None, 1)
    table.end(keys[0])  # the run just returned ends: its row moves from live- to past-
    rest, _ = page(table.read, cursor, 10)
    assert [r["RowKey"] for r in first + rest] == ["live-" + keys[0][1], "live-" + keys[1][1], "live-" + keys[2][1]]


def test_azure_s_token_is_not_carried_past_a_live_run_still_to_return() -> None:
    """The past read stopped (its rows budget) with a token beyond a live run it has not returned yet:
    had the next page resumed there, that run, ending in between, would be skipped."""
    key = {n: ("a", f"{n:021d}") for n in (1, 3, 5)}
    rows = {key[1]: ("x", False), key[3]: ("x", True), key[5]: ("y", False)}
    table = Table(rows, tenant="x", scan=100, overshoot=True, between=lambda _: None)
    first, cursor = page(table.read, None, 10, max_rows=2)
    assert [r["RowKey"] for r in first] == ["past-" + key[1][1]] and cursor is not None
    table.end(key[3])
    rest, _ = page(table.read, cursor, 10)
    assert [r["RowKey"] for r in rest] == ["past-" + key[3][1]]
