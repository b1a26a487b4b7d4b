"""``make demo``: the whole story offline, over real HTTP.

An external system starts an ADF run and a Synapse run that succeed and an ADF run that fails; the
poller (the app's own timer, on the local host) follows them; the failure alert is read back from
the queue and printed as the on-call engineer sees it. Then two Fabric pipelines, one of which fails.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from offline.stack import OfflineStack
from shared.azure.queues import JsonQueue
from shared.kinds.registry import label_of, step_noun_of

POLL_SECONDS = 2.0
# The emulator fails a batch whose file name contains "fail", with a PySpark traceback in its driver log.
SPARK_BATCH = {
    "name": "nightly-aggregates",
    "file": "abfss://jobs@contosolake.dfs.core.windows.net/spark/fail_aggregate_sales.py",
    "args": ["--day", "2026-11-21"],
    "driverMemory": "4g",
    "executorMemory": "8g",
    "numExecutors": 2,
}
TIMEOUT_SECONDS = 60.0
# The factory's retry policy: SystemErrors (a source that timed out) are rerun from the failed activity.
# DEMO_RETRY_POLICY=off leaves it out, to count the pages it saves.
RETRY_POLICY = {"attempts": 3, "delaySeconds": 2, "maxDelaySeconds": 10, "on": {"failureTypes": ["SystemError"]}}
RETRY_SWITCH = "DEMO_RETRY_POLICY"


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say(f"\n== {title}")


class Caller:
    """The external system: a program with a function key (APIM's, in Azure)."""

    def __init__(self, api: str, key: str) -> None:
        self.api = api
        self.session = requests.Session()
        self.session.headers.update(
            {"x-functions-key": key, "x-apim-subscription-id": "erp-system", "x-apim-product-id": "erp"}
        )

    def start(self, target: str, pipeline: str, parameters: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(
            f"{self.api}/targets/{target}/pipelines/{pipeline}/runs",
            json={"parameters": parameters},
            headers={"Idempotency-Key": f"demo-{target}-{pipeline}"},
        )
        run: dict[str, Any] = response.json()
        say(
            f"POST .../targets/{target}/pipelines/{pipeline}/runs -> {response.status_code} "
            f"{run.get('status')}  id={run.get('id')}  upstream={run.get('upstreamRunId')}"
        )
        return run

    def submit_batch(self, target: str, pool: str, batch: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.api}/targets/{target}/sparkpools/{pool}/batches", json=batch)
        run: dict[str, Any] = response.json()
        say(
            f"POST .../targets/{target}/sparkpools/{pool}/batches -> {response.status_code} {run.get('status')}  "
            f"id={run.get('id')}  batch={run.get('upstreamRunId')}"
        )
        return run

    def start_job(self, target: str, template: str, inputs: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.api}/targets/{target}/jobs/{template}/runs", json={"inputs": inputs})
        run: dict[str, Any] = response.json()
        say(
            f"POST .../targets/{target}/jobs/{template}/runs -> {response.status_code} {run.get('status')}  "
            f"id={run.get('id')}  job={run.get('upstreamRunId')}"
        )
        return run

    def act(self, run_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.api}/runs/{run_id}/{action}", json=body)
        run: dict[str, Any] = response.json()
        say(
            f"POST .../runs/{run_id}/{action} {json.dumps(body)} -> {response.status_code} {run.get('status')}"
            + (f"  new id={run['id']}" if action == "rerun" else "")
        )
        return run

    def get(self, run_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.api}/runs/{run_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def wait_until_finished(caller: Caller, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, str] = {run["id"]: run["status"] for run in runs}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        current = [caller.get(run["id"]) for run in runs]
        for run in current:
            if seen[run["id"]] != run["status"]:
                say(f"  {run['target']}/{run['pipeline']}: {seen[run['id']]} -> {run['status']}")
                seen[run["id"]] = run["status"]
        if all(run["status"] in ("Succeeded", "Failed", "Cancelled", "Unknown") for run in current):
            return current
        time.sleep(0.5)
    raise SystemExit("The runs did not finish in time; see the local host's log.")


def wait_for_alerts(queue: JsonQueue, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    alerts = queue.peek()
    while len(alerts) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        alerts = queue.peek()
    return alerts


def print_alert(alert: dict[str, Any]) -> None:
    say(alert["summary"])
    say("-" * min(100, len(alert["summary"])))
    facts = [
        ("where", f"{alert['target']} ({alert['location']})"),
        ("batch" if alert.get("sparkPool") else "pipeline", alert["pipeline"]),
        ("status", f"{alert['status']} (Azure: {alert['upstreamStatus']})"),
        ("runs", f"gateway {alert['runId']} / Azure {alert['upstreamRunId']}"),
        ("when", f"{alert['start']} -> {alert['end']}"),
        ("caller", f"{alert['caller']} (product {alert['product']}), correlation {alert['correlationId']}"),
        ("studio", alert["links"].get("studio", "-")),
        ("history", "first failure" if alert["firstFailure"] else "repeat failure"),
    ]
    for name, value in facts:
        say(f"{name:>10}  {value}")
    if alert.get("appId"):
        say(f"{'spark app':>10}  {alert['appId']} on pool {alert.get('sparkPool')}")
    for error in alert.get("errors") or []:
        say(f"\n  {label_of(alert['targetKind'])} error: {error}")
    if alert.get("driverLogTail"):
        say(f"\n  {alert.get('logName') or 'driver log'} (last lines):")
        for line in alert["driverLogTail"][-12:]:
            say(f"    {line}")
    for activity in alert["failedActivities"]:
        code = " ".join(part for part in (activity["failureType"], activity["errorCode"]) if part)
        say(f"\n  failed {step_noun_of(alert['targetKind'])} {activity['name']} ({activity['type']}), {code}:")
        say(textwrap.indent(textwrap.fill(activity["message"], 96), "    "))
    say(f"\n  alert id {alert['alertId']} (schema v{alert['schemaVersion']})")


def main() -> int:
    from function_app import app
    from shared.context import app_context

    logging.getLogger("shared").setLevel(logging.ERROR)  # the story is told below, not in the app's log
    with tempfile.TemporaryDirectory(prefix="pipeline-gateway-demo-") as workdir, OfflineStack(Path(workdir)) as stack:
        stack.apply_environment()
        if os.environ.get(RETRY_SWITCH, "on") != "off":
            retrying = with_retry_policy(stack.catalog, stack.emulator.info["factories"][0]["name"])
            os.environ["GATEWAY_CATALOG"] = json.dumps(retrying)
        info = stack.emulator.info
        factory, workspace = info["factories"][0]["name"], info["workspaces"][0]["name"]
        host = stack.local_host(app, poll_seconds=POLL_SECONDS)
        host.start()
        try:
            step("The offline stack")
            say(f"Azure emulator (ADF, Synapse, Azure ML, identity) {info['arm_endpoint']}")
            say(f"Azurite (tables, queues; HTTPS + OAuth)         {stack.azurite.queue_endpoint}")
            say(f"Function app on the local host                  {host.api_url}")
            caller = Caller(host.api_url, host.function_key)
            health = requests.get(f"{host.api_url}/health", timeout=10)
            say(f"GET /api/health -> {health.status_code} {health.json()}")

            step("An external system starts pipelines, a Spark batch and Azure ML jobs (via APIM, Idempotency-Keys)")
            runs = [
                caller.start(factory, "daily_load", {"date": "2026-11-21"}),
                caller.start(workspace, "refresh_lake", {"zone": "silver"}),
                caller.start(factory, "copy_sales", {"date": "2026-11-21"}),
                caller.submit_batch(workspace, "small", SPARK_BATCH),
            ]
            ml_workspace = info["ml_workspaces"][0]["name"]
            features = {"data": "azureml://datastores/workspaceblobstore/paths/sales/2026-11-21/"}
            runs += [
                caller.start_job(ml_workspace, "refresh_features", features),
                caller.start_job(ml_workspace, "score_batch", features),
            ]
            retry = caller.start(factory, "daily_load", {"date": "2026-11-21"})
            say(f"  (the retry with the same key returned the same run: {retry['id'] == runs[0]['id']})")
            unwanted = caller.start(factory, "ingest_orders", {"date": "2026-11-21"})
            caller.act(unwanted["id"], "cancel", {"recursive": True})
            runs.append(unwanted)

            step(f"The poller (timer, every {POLL_SECONDS:g}s) follows them in bulk")
            finished = wait_until_finished(caller, runs)

            step("The on-call engineer reads the failure queue")
            queue = app_context().alerts
            failed = [run for run in finished if run["status"] == "Failed"]
            alerts = wait_for_alerts(queue, len(failed))
            say(f"{len(alerts)} alert(s) on queue '{queue.name}':\n")
            for alert in alerts:
                print_alert(alert)
                say("")

            step("The failed ADF run is rerun from the failed activity, and succeeds")
            copy_sales = next(run for run in failed if run["pipeline"] == "copy_sales")
            rerun = caller.act(copy_sales["id"], "rerun", {"startFromFailure": True})
            (recovered,) = wait_until_finished(caller, [rerun])
            chain = caller.get(copy_sales["id"])["chain"]
            say("rerun chain: " + " -> ".join(f"{link['id']} ({link['status']})" for link in chain))

            ok = (
                len(failed) == 3
                and {alert["runId"] for alert in alerts} == {run["id"] for run in failed}
                and recovered["status"] == "Succeeded"
            )
            fabric_ok, fabric_alerts = fabric_story(caller, info["fabric"]["workspaces"][0]["name"], queue)
            alerts += fabric_alerts
            ok = fabric_ok and ok
            retry_ok, retry_alerts = retry_story(caller, factory, queue)
            alerts += retry_alerts
            ok = retry_ok and ok
            ok = on_call(stack, alerts) and ok
            ok = secure_integration() and ok

            step("Summary")
            cancelled = [run for run in finished if run["status"] == "Cancelled"]
            ok = len(cancelled) == 1 and ok
            say(
                f"first wave: {len(finished) + 1} runs started, {len(failed)} failed, {len(cancelled)} cancelled, "
                f"1 rerun ({recovered['status']}); alerts raised in all: {len(alerts)}"
            )
            say(
                "token requests to the identity endpoint, per audience, over the whole demo: "
                + ", ".join(
                    f"{key.split(':', 1)[1]} x{value}"
                    for key, value in stack.emulator.counters.items()
                    if key.startswith("ManagedIdentity_GetToken:")
                )
            )
        finally:
            host.stop()
    say("\nDemo complete." if ok else "\nDemo FAILED: a step above did not end as it should (its lines say which).")
    return 0 if ok else 1


def fabric_story(caller: Caller, target: str, queue: JsonQueue) -> tuple[bool, list[dict[str, Any]]]:
    """Fabric pipelines through the same route and body: one succeeds, one fails, and the failure's alert
    (Fabric's failureReason, the failed activity, a link to the monitoring hub) is read as on-call reads it."""
    step("The same external system starts two Microsoft Fabric pipelines, through the same route")
    runs = [
        caller.start(target, "load_sales_fabric", {"day": "2026-11-21"}),
        caller.start(target, "refresh_warehouse", {"day": "2026-11-21"}),
    ]
    finished = wait_until_finished(caller, runs)
    failed = {run["id"] for run in finished if run["status"] == "Failed"}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    alerts = [alert for alert in queue.peek() if alert["runId"] in failed]
    while len(alerts) < len(failed) and time.monotonic() < deadline:
        time.sleep(0.5)
        alerts = [alert for alert in queue.peek() if alert["runId"] in failed]
    say(f"{len(alerts)} Fabric alert(s):\n")
    for alert in alerts:
        print_alert(alert)
        say("")
    statuses = [run["status"] for run in finished]
    return statuses == ["Succeeded", "Failed"] and len(alerts) == 1, alerts


def with_retry_policy(catalog: Mapping[str, Any], factory: str) -> dict[str, Any]:
    """The stack's catalog with ``RETRY_POLICY`` as the factory's default."""
    targets = [{**t, "retry": RETRY_POLICY} if t["name"] == factory else t for t in catalog["targets"]]
    return {**catalog, "targets": targets}


def retry_story(caller: Caller, factory: str, queue: JsonQueue) -> tuple[bool, list[dict[str, Any]]]:
    """A pipeline fails once with a SystemError: under the factory's retry policy the poller reruns it from
    the failed activity, it succeeds, and nobody is paged (copy_sales' UserError above was paged at once).
    Without the policy, it pages like any failure."""
    policy = os.environ.get(RETRY_SWITCH, "on") != "off"
    step(f"A pipeline fails once with a SystemError ({'retry policy on' if policy else RETRY_SWITCH + '=off'})")
    run = caller.start(factory, "load_inventory", {"date": "2026-11-21"})
    deadline = time.monotonic() + TIMEOUT_SECONDS
    view = caller.get(run["id"])
    while "finalStatus" not in view and time.monotonic() < deadline:
        time.sleep(0.5)
        view = caller.get(run["id"])
    say("chain: " + " -> ".join(f"{link['id']} ({link['status']})" for link in view["chain"]))
    chain_alert = f"{run['id']}:failed"
    paged = [alert for alert in queue.peek() if alert["alertId"] == chain_alert]
    while not policy and not paged and time.monotonic() < deadline:
        time.sleep(0.5)
        paged = [alert for alert in queue.peek() if alert["alertId"] == chain_alert]
    say(f"how the chain ended: {view.get('finalStatus')}; pages for it: {len(paged)}")
    say(f"alerts raised by the demo: {len(queue.peek())} (retry policy {'on' if policy else 'off'})")
    if policy:
        return view.get("finalStatus") == "Succeeded" and len(view["chain"]) == 2 and not paged, paged
    return view.get("finalStatus") == "Failed" and len(paged) == 1, paged


def pipeline_gateway(*args: str, env: dict[str, str] | None = None) -> bool:
    """Runs the on-call CLI as its own process, showing the command and its output as typed."""
    script = Path(sys.executable).with_name("pipeline-gateway")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "shared.cli"]
    say(f"$ pipeline-gateway {' '.join(args)}")
    # Output is captured by make, not a terminal: give the tables the width of a wide terminal window.
    width = {"COLUMNS": os.environ.get("COLUMNS", "160")}
    done = subprocess.run([*command, *args], env={**os.environ, **width, **(env or {})}, check=False)
    if done.returncode != 0:
        say(f"(exit code {done.returncode})")
    return done.returncode == 0


def on_call(stack: OfflineStack, alerts: list[dict[str, Any]]) -> bool:
    """The end of the story: the alerts reach a Teams channel, and on-call opens them in the terminal.

    Forwarding is an app setting read when the app starts, so it is switched on here as a restart
    would: a host running the forwarder (the app's own blueprint) with GATEWAY_FORWARD_URL set to an
    emulated Teams webhook. The CLI then reads the forwarded-alerts history from the registry.
    """
    import azure.functions as func

    from offline.webhook import WebhookReceiver
    from shared.config.settings import Settings
    from shared.context import AppContext, app_context, set_app_context
    from shared.functions import forwarder as forwarding_functions

    step("Alert forwarding: the platform team sets GATEWAY_FORWARD_URL to a Teams webhook")
    with WebhookReceiver(stack.tls) as teams:
        forwarding = {"GATEWAY_FORWARD_URL": teams.url, "GATEWAY_FORWARD_FORMAT": "teams"}
        os.environ.update(forwarding)
        set_app_context(AppContext(Settings()))
        app = func.FunctionApp()
        app.register_functions(forwarding_functions.blueprint(Settings()))
        logging.disable(logging.WARNING)  # the SDK's notice that an app without HTTP functions has no auth level
        forwarder = stack.local_host(app)  # its queue trigger, with the host's retries and poison queue
        logging.disable(logging.NOTSET)
        forwarder.start()
        try:
            posts = teams.wait_for(len(alerts), timeout=TIMEOUT_SECONDS)
            history = app_context().alert_history
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while any(history.get(a["alertId"]) is None for a in alerts) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            forwarder.stop()
        for post in posts:
            card = post.json()["attachments"][0]["content"]
            facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
            say(
                f"Teams card: {card['body'][0]['text']}  |  {facts.get('When')}  |  buttons: "
                + ", ".join(action["title"] for action in card["actions"])
            )

    step("On call, in the terminal: the failures of the demo, then one of them in full")
    listed = pipeline_gateway("alerts", env=forwarding)
    say("")
    copy_sales = next(alert for alert in alerts if alert["pipeline"] == "copy_sales")
    shown = pipeline_gateway("alert", copy_sales["alertId"], env=forwarding)
    return len(posts) == len(alerts) and listed and shown


def secure_integration() -> bool:
    """The platform team checks the private Synapse ↔ Azure ML setup: the sample workspace's managed
    private endpoint to Azure ML waits for approval, and the report says where to approve it (exit 7:
    something needs a person)."""
    step("The platform team checks the private Synapse ↔ Azure ML setup")
    script = Path(sys.executable).with_name("pipeline-gateway")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "shared.cli"]
    say("$ pipeline-gateway targets")
    width = {"COLUMNS": os.environ.get("COLUMNS", "160")}
    done = subprocess.run(
        [*command, "targets"], env={**os.environ, **width}, capture_output=True, text=True, check=False
    )
    say(done.stdout.rstrip())
    say(f"(exit code {done.returncode}: a check needs a person)")
    return done.returncode == 7 and "approve it on Azure Machine Learning workspace" in done.stdout


if __name__ == "__main__":
    sys.exit(main())
