"""`pipeline-gateway alerts`, `alert ID` and `ack ID`: what on-call reads, and how they clear it."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from offline.stack import OfflineStack
from shared.context import AppContext
from tests.cli.conftest import Cli


def test_alerts_lists_the_failures_newest_first_without_taking_them(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str, synapse: str
) -> None:
    older = fail_and_alert((adf, "copy_sales"))[0]
    newer = fail_and_alert((synapse, "build_marts"))[0]

    result = cli("alerts")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "When (UTC)" in line)
    assert [word for word in ("Target", "Pipeline", "Status", "Summary", "Alert id") if word not in header] == []
    rows = [line for line in lines if f"{newer}:failed" in line or f"{older}:failed" in line]
    assert len(rows) == 2 and f"{newer}:failed" in rows[0], "newest first"
    assert "build_marts" in rows[0] and "Failed" in rows[0] and "failed at activity BuildSalesMart" in rows[0]
    assert "copy_sales" in rows[1] and "SqlFailedToConnect" in rows[1]
    assert "\x1b[" not in result.stdout, "no colour when the output is not a terminal"
    assert len(context.alerts.peek()) == 2, "nothing was taken off the queue"

    raw = cli("alerts", "--json")
    assert raw.returncode == 0
    assert json.loads(raw.stdout) == sorted(context.alerts.peek(), key=lambda a: a["raisedAt"], reverse=True)


def queue_later_copies(context: AppContext, count: int) -> None:
    """Copies of the one alert on the queue, ``copy0``.. raised a minute apart after it (newest last)."""
    alert = context.alerts.peek()[0]
    raised = datetime.fromisoformat(alert["raisedAt"])
    for index in range(count):
        later = (raised + timedelta(minutes=index + 1)).isoformat().replace("+00:00", "Z")
        context.alerts.send({**alert, "alertId": f"{alert['runId']}:copy{index}", "raisedAt": later})


def test_alerts_shows_past_the_32_messages_storage_lets_anyone_peek(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    fail_and_alert((adf, "copy_sales"))
    queue_later_copies(context, 40)

    listed = cli("alerts", "--json", "--limit", "100")

    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 41
    assert json.loads(listed.stdout)[0]["alertId"].endswith(":copy39")
    assert context.alerts.count() == 41 and len(context.alerts.peek()) == 32, "all still there and visible"


def test_alerts_limit_shows_the_newest_not_the_first_on_the_queue(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    fail_and_alert((adf, "copy_sales"))
    queue_later_copies(context, 40)

    listed = cli("alerts", "--json", "--limit", "5")

    assert listed.returncode == 0, listed.stderr
    assert [a["alertId"].rsplit(":", 1)[1] for a in json.loads(listed.stdout)] == [
        f"copy{index}" for index in (39, 38, 37, 36, 35)
    ]


def test_alert_shows_one_alert_in_full_by_any_unique_part_of_its_id(
    cli: Cli, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    first, second = fail_and_alert((adf, "copy_sales"), (adf, "daily_load"))
    third = fail_and_alert((adf, "copy_sales"))[0]

    result = cli("alert", third[-10:])

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Run failed: {adf}/copy_sales" in out
    assert "Failed activity CopySales (Copy), UserError 2200" in out and "SqlFailedToConnect" in out
    assert "Open in ADF Studio: https://adf.azure.com/en/monitoring/pipelineruns/" in out
    assert "repeat failure" in out
    assert f"Runs of {adf}/copy_sales, newest first:" in out
    runs = out.split("newest first:")[1]
    assert runs.index(third) < runs.index(first), "the pipeline's runs, this one and the one before"
    assert second not in runs, "only this pipeline's runs"


def test_an_unknown_or_ambiguous_alert_id_exits_with_its_own_code_and_one_line(
    cli: Cli, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    fail_and_alert((adf, "copy_sales"), (adf, "copy_sales"))

    missing = cli("alert", "no-such-alert")
    ambiguous = cli("alert", ":failed")

    assert missing.returncode == 3
    assert missing.stderr.strip().startswith("error: No alert 'no-such-alert'") and "Traceback" not in missing.stderr
    assert ambiguous.returncode == 2 and "matches several alerts" in ambiguous.stderr


def test_ack_removes_the_alert_and_its_repeats_and_records_who_and_when(
    cli: Cli, context: AppContext, stack: OfflineStack, fail_and_alert: Callable[..., list[str]], adf: str, synapse: str
) -> None:
    handled, other = fail_and_alert((adf, "copy_sales"), (synapse, "build_marts"))
    repeat = next(a for a in context.alerts.peek() if a["runId"] == handled)
    context.alerts.send(repeat)  # the rare resend at-least-once delivery allows

    result = cli("ack", f"{handled}:failed")

    assert result.returncode == 0, result.stderr
    client_id = stack.emulator.info["client_id"]
    assert f"Acknowledged {handled}:failed as " in result.stdout and f"(identity {client_id})" in result.stdout
    assert f"2 from {context.settings.alert_queue}" in result.stdout
    assert [a["runId"] for a in context.alerts.peek()] == [other]
    record = context.alert_history.get(f"{handled}:failed")
    assert record is not None and record.acknowledged_at is not None
    assert record.acknowledged_by is not None and client_id in record.acknowledged_by

    waiting = json.loads(cli("alerts", "--json").stdout)
    everything = cli("alerts", "--all")
    again = cli("ack", f"{handled}:failed")
    assert [a["runId"] for a in waiting] == [other]
    assert "acknowledged" in next(line for line in everything.stdout.splitlines() if handled in line)
    assert again.returncode == 0 and "was already acknowledged by" in again.stdout


def test_follow_prints_new_alerts_as_they_arrive_until_interrupted(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    process = cli.popen("alerts", "--follow", "--json", "--interval", "0.3")
    try:
        time.sleep(1.5)  # it has started watching an empty queue
        run_id = fail_and_alert((adf, "copy_sales"))[0]
        assert process.stdout is not None
        line = process.stdout.readline()
        assert json.loads(line)["runId"] == run_id
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
    assert process.returncode == 0
