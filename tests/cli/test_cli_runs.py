"""`pipeline-gateway runs`, `run`, `cancel`, `rerun` and `targets`: the registry and the API's actions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from offline.emulator import Fault
from offline.stack import OfflineStack
from shared.context import AppContext
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.cli.conftest import FINISH, Cli, started


def test_runs_lists_newest_first_across_targets_with_filters(
    cli: Cli, fail_and_alert: Callable[..., list[str]], adf: str, synapse: str
) -> None:
    ok, failed, lake = fail_and_alert((adf, "daily_load"), (adf, "copy_sales"), (synapse, "refresh_lake"))

    everything = cli("runs", "--json")
    failures = cli("runs", "--status", "failed", "--json")
    of_adf = cli("runs", "--target", adf, "--since", "1h")
    none_yet = cli("runs", "--since", "2999-01-01")

    assert everything.returncode == 0, everything.stderr
    assert [run["id"] for run in json.loads(everything.stdout)] == [lake, failed, ok]
    assert [(run["id"], run["status"]) for run in json.loads(failures.stdout)] == [(failed, RunStatus.FAILED)]
    rows = [line for line in of_adf.stdout.splitlines() if adf in line]
    assert len(rows) == 2 and failed in rows[0] and "Failed" in rows[0] and "Succeeded" in rows[1]
    assert lake not in of_adf.stdout
    assert none_yet.returncode == 0 and "No runs match." in none_yet.stderr


def test_runs_refuses_bad_filters_with_usage_and_not_found_codes(cli: Cli) -> None:
    bad_status = cli("runs", "--status", "Exploded")
    bad_since = cli("runs", "--since", "yesterday-ish")
    unknown = cli("runs", "--target", "nowhere")

    assert bad_status.returncode == 2 and "one of Submitting" in bad_status.stderr
    assert bad_since.returncode == 2 and "90m" in bad_since.stderr
    assert unknown.returncode == 3 and "no target named 'nowhere'" in unknown.stderr


def test_rerun_then_run_shows_the_chain_and_the_alert(
    cli: Cli, context: AppContext, stack: OfflineStack, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    failed = fail_and_alert((adf, "copy_sales"))[0]

    rerun = cli("rerun", failed, "--from-failure", "--json")
    assert rerun.returncode == 0, rerun.stderr
    new = json.loads(rerun.stdout)
    assert new["rerunOf"] == failed and new["options"]["startFromFailure"] is True
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    cli("ack", f"{failed}:failed")

    shown = cli("run", failed)
    as_json = json.loads(cli("run", new["id"], "--json").stdout)
    again = cli("rerun", failed)

    assert shown.returncode == 0, shown.stderr
    chain = shown.stdout.split("Rerun chain, oldest first:")[1]
    assert chain.index(failed) < chain.index(new["id"]) and "Succeeded" in chain
    assert f"Alert {failed}:failed" in shown.stdout and "acknowledged by" in shown.stdout
    assert [link["id"] for link in as_json["chain"]] == [failed, new["id"]] and as_json["status"] == "Succeeded"
    assert context.registry.get(new["id"]).caller.startswith("cli:"), "the audit trail names the CLI user"
    assert again.returncode == 4 and "already rerun" in again.stderr


def test_cancel_asks_azure_and_refuses_a_finished_run(
    cli: Cli, context: AppContext, stack: OfflineStack, adf: str
) -> None:
    running = started(adf, "long_running")
    stack.emulator.clock.advance(10)
    Poller(context).tick()

    cancelled = cli("cancel", running)
    twice = cli("cancel", running)
    stack.emulator.clock.advance(5)
    Poller(context).tick()
    finished = cli("cancel", running)
    missing = cli("cancel", f"{adf}.0000000000000aaaaaaaa")

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"Run {running} is Canceling" in cancelled.stdout
    assert twice.returncode == 0, "cancelling twice is harmless"
    record = context.registry.get(running)
    assert record.status == RunStatus.CANCELLED and (record.cancel_requested_by or "").startswith("cli:")
    assert finished.returncode == 4 and "already ended" in finished.stderr
    assert missing.returncode == 3


def test_targets_lists_the_catalog_and_exits_7_when_a_check_fails(
    cli: Cli, stack: OfflineStack, adf: str, synapse: str
) -> None:
    checked = cli("targets")
    stack.emulator.faults.add(Fault(route="Factories_Get", kind="status", status=403))
    try:
        broken = cli("targets", "--json")
    finally:
        stack.emulator.faults.clear()
    listed = cli("targets", "--no-check", "--json")

    # The sample workspace's managed private endpoint to Azure ML waits for approval: a warning, exit 7.
    assert checked.returncode == 7, checked.stderr
    rows = {line.split()[0]: line for line in checked.stdout.splitlines() if line.strip().startswith(("contoso",))}
    assert {adf, synapse} <= set(rows) and rows[adf].rstrip().endswith(" ok") and "2 warnings" in rows[synapse]
    assert f"{synapse}: 2 warnings: managedPrivateEndpoint:mpe-contoso-aml" in checked.stdout
    assert "to do: approve it on Azure Machine Learning workspace contoso-aml (rg-ml)" in checked.stdout
    assert "factory contoso-adf (rg-data)" in rows[adf] and "workspace contoso-syn (rg-synapse)" in rows[synapse]
    assert broken.returncode == 7
    report = {item["target"]["name"]: item for item in json.loads(broken.stdout)["value"]}
    assert report[adf]["healthy"] is False and report[synapse]["healthy"] is True
    assert listed.returncode == 0 and [t["name"] for t in json.loads(listed.stdout)["value"]][:2] == [adf, synapse]


def test_run_follow_waits_for_the_end_and_exits_as_the_run_ended(
    cli: Cli, context: AppContext, stack: OfflineStack, adf: str
) -> None:
    failing = started(adf, "copy_sales")
    succeeding = started(adf, "daily_load")
    follow_failing = cli.popen("run", failing, "--follow", "--interval", "0.3")
    follow_succeeding = cli.popen("run", succeeding, "--follow", "--json", "--interval", "0.3")
    try:
        assert follow_failing.stdout and follow_succeeding.stdout
        first = [follow_failing.stdout.readline(), follow_succeeding.stdout.readline()]  # both follow a live run
        stack.emulator.clock.advance(FINISH)
        Poller(context).tick()
        failed_out, _ = follow_failing.communicate(timeout=30)
        succeeded_out, _ = follow_succeeding.communicate(timeout=30)
        failed_out, succeeded_out = first[0] + failed_out, first[1] + succeeded_out
    finally:
        for process in (follow_failing, follow_succeeding):
            if process.poll() is None:
                process.kill()
    assert follow_failing.returncode == 8
    assert "Queued" in failed_out and f"{failing} Failed: " in failed_out
    assert follow_succeeding.returncode == 0
    assert [json.loads(line)["status"] for line in succeeded_out.splitlines()][-1] == "Succeeded"


def test_run_follow_waits_until_the_alert_of_an_ended_run_is_out(
    cli: Cli, context: AppContext, adf: str, stack: OfflineStack
) -> None:
    failing = started(adf, "copy_sales")
    stack.emulator.clock.advance(FINISH)
    record = context.registry.get(failing)
    ended = context.registry.save(record.evolve(status=RunStatus.FAILED), keep_live=True)  # as before its alert
    follow = cli.popen("run", failing, "--follow", "--interval", "0.2")
    try:
        assert follow.stdout
        seen = follow.stdout.readline()  # it has read the run as Failed
        time.sleep(1.0)  # five more looks
        waiting = follow.poll()
        context.registry.save(ended.evolve(alerted_at=ended.updated_at), keep_live=False)  # as the poller flags it
        follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert f"{failing} Failed" in seen
    assert waiting is None, "an ended run whose alert is not out yet is still followed"
    assert follow.returncode == 8
