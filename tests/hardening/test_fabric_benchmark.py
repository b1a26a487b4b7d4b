"""bench.poller --kind fabric keeps its contract (one JSON object last) and its point: the bulk poller's
calls grow with the Fabric pipelines that have runs in flight, not with the runs."""

from __future__ import annotations

import json

import pytest

from bench import poller


def test_the_fabric_poller_lists_each_pipeline_instead_of_reading_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert poller.main(["--kind", "fabric", "--runs", "120", "--targets", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["kind"], result["runs"], result["errors"]) == ("fabric", 120, [])
    assert result["naive_calls"] >= 120  # one Get Item Job Instance per run
    assert result["calls"] <= 4 + 4  # one list per pipeline (each under a page), an activity query per alert
