"""bench.poller --kind fabric keeps its contract (one JSON object last) and its point: the bulk poller's
calls grow with the Fabric pipelines that have runs in flight, not with the runs. It runs as its own
process, as people run it: the benchmark points its environment at servers it stops when it ends."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_fabric_poller_lists_each_pipeline_instead_of_reading_each_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.poller", "--kind", "fabric", "--runs", "120", "--targets", "4"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["kind"], result["runs"], result["errors"]) == ("fabric", 120, [])
    assert result["naive_calls"] >= 120  # one Get Item Job Instance per run
    assert result["calls"] <= 4 + 4  # one list per pipeline (each under a page), an activity query per alert
