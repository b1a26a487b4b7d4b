"""`pipeline-gateway summary`: the hand-over view of a shift, from a seeded registry and real alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.cli.summary import percentile, summarize
from shared.context import AppContext
from shared.runs.model import Run, RunStatus, new_run_id, utcnow
from tests.cli.conftest import Cli


def seeded(
    target: str,
    kind: str,
    name: str,
    status: str,
    created: datetime,
    took_s: int | None = None,
    pool: str | None = None,
) -> Run:
    """A run as the registry keeps it, created at ``created`` and, when ``took_s`` is given, ended after it."""
    end = created + timedelta(seconds=took_s) if took_s is not None else None
    return Run(
        id=new_run_id(target, now=created.timestamp()),
        target=target,
        kind=kind,
        pipeline=name,
        spark_pool=pool,
        status=status,
        created_at=created,
        updated_at=end or created,
        run_start=created,
        run_end=end,
        duration_ms=took_s * 1000 if took_s is not None else None,
    )


def test_summary_reports_each_pipeline_what_runs_what_failed_and_the_alerts(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str, synapse: str
) -> None:
    copy_sales = fail_and_alert((adf, "copy_sales"), (adf, "copy_sales"), (synapse, "build_marts"))[0]
    assert cli("ack", f"{copy_sales}:failed").returncode == 0
    now = utcnow()
    hours = [now - timedelta(hours=n) for n in range(31)]
    running = seeded(adf, "datafactory", "long_running", RunStatus.IN_PROGRESS, hours[3])
    running_longer = seeded(adf, "datafactory", "long_running", RunStatus.IN_PROGRESS, hours[30])  # before the shift
    context.registry.import_runs(
        [
            *(
                seeded(adf, "datafactory", "nightly_export", RunStatus.SUCCEEDED, hours[n], took_s=10 * n)
                for n in (1, 2, 3, 4)
            ),
            seeded(adf, "datafactory", "nightly_export", RunStatus.FAILED, hours[2], took_s=50),
            seeded(adf, "datafactory", "nightly_export", RunStatus.FAILED, hours[1], took_s=60),
            seeded(adf, "datafactory", "nightly_export", RunStatus.FAILED, hours[30], took_s=5),  # before the shift
            running,
            running_longer,
            seeded(synapse, "spark", "aggregates", RunStatus.FAILED, hours[5], took_s=30, pool="small"),
        ]
    )

    result = cli("summary", "--json")
    shown = cli("summary", "--since", "24h")
    recent = json.loads(cli("summary", "--since", "30m", "--json").stdout)

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    work = {(row["target"], row["noun"], row["name"]): row for row in found["work"]}
    export = work[adf, "Pipeline", "nightly_export"]
    assert (export["runs"], export["succeeded"], export["failed"]) == (6, 4, 2)
    assert round(export["successRate"], 3) == 0.667 and (export["p50Ms"], export["p95Ms"]) == (30_000, 60_000)
    copy_sales_row = work[adf, "Pipeline", "copy_sales"]
    assert copy_sales_row["failed"] == 2 and copy_sales_row["successRate"] == 0
    assert work[synapse, "Spark pool", "small"]["failed"] == 1, "batches are grouped by their pool"
    assert work[adf, "Pipeline", "long_running"]["live"] == 1
    assert (found["runs"], found["failed"], found["live"]) == (11, 6, 2)
    longest = [run["id"] for run in found["longestRunning"]]
    assert longest == [running_longer.id, running.id], "the longest first, whenever it began"
    assert [(step["step"], step["failures"]) for step in found["failingSteps"]] == [
        ("CopySales", 2),
        ("BuildSalesMart", 1),
    ]
    assert found["alerts"] == {"waiting": 2, "undelivered": 0, "acknowledged": 1}
    assert found["bucketHours"] == 1 and len(found["failuresPerBucket"]) == 25
    assert sum(bucket["failures"] for bucket in found["failuresPerBucket"]) == found["failed"]

    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "nightly_export" in line)
    assert row.split()[-6:] == ["6", "2", "67%", "30s", "1m00s", "0"]
    assert "Failures per hour (UTC):" in shown.stdout and "█" in shown.stdout
    assert "Most frequent failing activities" in shown.stdout and "CopySales" in shown.stdout
    assert "2 waiting, 0 undelivered, 1 acknowledged" in shown.stdout

    assert recent["runs"] == 3 and "nightly_export" not in {row["name"] for row in recent["work"]}


def test_summary_widens_the_buckets_of_a_long_window_and_ranks_nearest() -> None:
    now = utcnow()
    runs = [
        seeded("contoso-adf", "datafactory", "daily_load", RunStatus.FAILED, now - timedelta(hours=70), took_s=1),
        seeded("contoso-adf", "datafactory", "daily_load", RunStatus.SUCCEEDED, now - timedelta(hours=1), took_s=3),
    ]

    found = summarize(runs, [], [], since=now - timedelta(days=3), until=now)

    assert found.bucket_hours == 2 and len(found.failures_per_bucket) <= 48
    assert found.failures_per_bucket[1].failures == 1 and found.work[0].success_rate == 0.5
    assert percentile([5, 1, 4, 2, 3], 0.5) == 3 and percentile([5, 1, 4, 2, 3], 0.95) == 5
    assert percentile([], 0.5) is None
