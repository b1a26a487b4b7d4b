"""Scale: concurrent callers lose and double nothing; a 10,000-run store pages quickly."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from offline.emulator import Emulator

from .conftest import RawClient, factory_path, iso_window


def test_hundreds_of_concurrent_creates(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    before = {r["runId"] for r in emu.runs() if r.get("pipeline") == "load_test"}
    path = factory_path(factory, "/pipelines/load_test/createRun")

    def worker(index: int) -> list[str]:
        connection = raw.connection()
        try:
            return [raw("POST", path, {"i": index * 100 + n}, connection=connection).body["runId"] for n in range(10)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=40) as pool:
        answered = [run_id for batch in pool.map(worker, range(40)) for run_id in batch]
    stored = {r["runId"] for r in emu.runs() if r.get("pipeline") == "load_test"} - before
    assert len(answered) == len(set(answered)) == 400
    assert stored == set(answered)


def test_ten_thousand_runs_page_quickly(raw: RawClient, factory: dict[str, Any], emu: Emulator) -> None:
    scope = f"adf:{factory['subscription_id']}/{factory['resource_group']}/{factory['name']}".lower()
    spec = emu.store.pipeline(scope, "paged")
    assert spec is not None
    created = {emu.store.create(scope, spec, {"n": str(n)}).run_id for n in range(10_000)}
    body: dict[str, Any] = {
        **iso_window(emu),
        "filters": [{"operand": "PipelineName", "operator": "Equals", "values": ["paged"]}],
    }
    seen: list[str] = []
    connection = raw.connection()
    started = time.monotonic()
    try:
        while True:
            page = raw("POST", factory_path(factory, "/queryPipelineRuns"), body, connection=connection).body
            assert len(page["value"]) <= 100
            seen += [r["runId"] for r in page["value"]]
            if not page["continuationToken"]:
                break
            assert isinstance(json.loads(page["continuationToken"]), dict)
            body["continuationToken"] = page["continuationToken"]
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    assert len(seen) == len(set(seen)) and created <= set(seen)
    assert elapsed < 10, f"paging 10,000 runs took {elapsed:.1f}s"
