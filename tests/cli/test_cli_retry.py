"""`pipeline-gateway runs` and `run` show automatic retries, `summary` counts the pages they avoided, and
`run --follow` follows a chain to its end."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from shared.poller.poller import Poller
from shared.runs.model import RunStatus, utcnow
from tests.cli.conftest import FINISH, Cli, started
from tests.conftest import install


def with_retry(stack: OfflineStack, names: dict[str, str], **policy: Any) -> AppContext:
    catalog = catalog_for(stack.emulator.info)
    for target in catalog["targets"]:
        target["retry"] = policy
    return install(stack, names, catalog)


def test_runs_and_run_show_a_scheduled_retry_then_the_chain(
    cli: Cli, stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=2, delaySeconds=600)
    first = started(adf, "copy_sales")  # fails; its recovery rerun succeeds
    stack.emulator.clock.advance(FINISH)
    failed_at = utcnow()
    Poller(context, now=lambda: failed_at).tick()

    waiting = cli("runs")
    shown = cli("run", first)
    assert waiting.returncode == 0 and shown.returncode == 0, waiting.stderr + shown.stderr
    row = next(line for line in waiting.stdout.splitlines() if first in line)
    assert "Failed · retry 2/2 at " in row
    assert "Attempt" in shown.stdout and "1 of 2 (automatic retries)" in shown.stdout
    assert "Next retry" in shown.stdout and "(attempt 2)" in shown.stdout

    Poller(context, now=lambda: failed_at + timedelta(seconds=601)).tick()
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()

    rows = [line for line in cli("runs").stdout.splitlines() if adf in line]
    retry = context.registry.get(first).rerun_by
    assert retry is not None
    assert any(first in line and "Failed · retried" in line for line in rows)
    assert any(retry in line and "Succeeded · attempt 2/2" in line for line in rows)
    chain = json.loads(cli("run", first, "--json").stdout)
    assert chain["finalStatus"] == RunStatus.SUCCEEDED and [link["id"] for link in chain["chain"]] == [first, retry]
    assert "Chain ended" in cli("run", first).stdout
    summary = json.loads(cli("summary", "--json").stdout)
    assert (summary["retries"], summary["pagesAvoided"], summary["alerts"]["waiting"]) == (1, 1, 0)
    assert "pages avoided by retries: 1" in cli("summary").stdout


def test_run_follow_follows_a_failed_run_into_its_retry(
    cli: Cli, stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    context = with_retry(stack, names, attempts=2, delaySeconds=0)
    first = started(adf, "copy_sales")
    following = cli.popen("run", first, "--follow", "--interval", "0.3")
    try:
        time.sleep(1.5)
        stack.emulator.clock.advance(FINISH)
        Poller(context).tick()  # fails, and is retried at once
        time.sleep(1.5)
        stack.emulator.clock.advance(FINISH)
        Poller(context).tick()  # the retry succeeds
        out, err = following.communicate(timeout=30)
    finally:
        if following.poll() is None:
            following.kill()
    retry = context.registry.get(first).rerun_by
    assert following.returncode == 0, out + err
    assert f"{first} retried as {retry}" in out and f"{retry} Succeeded" in out
