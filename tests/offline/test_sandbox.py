"""``make run``, the on-call sandbox: what it writes for a second terminal, what it prints, and what it
keeps across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from offline.stack import settings_document
from tests.offline.sandbox import ROOT, Sandbox

# What the CLI and curl need besides the API: the identity, Storage, the catalog, Azure, the CA.
CLI_NEEDS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_CLIENT_ID",
    "REQUESTS_CA_BUNDLE",
    "GATEWAY_CATALOG",
    "GATEWAY_ARM_ENDPOINT",
    "GATEWAY_STORAGE__tableServiceUri",
    "GATEWAY_STORAGE__queueServiceUri",
    "GATEWAY_ALERT_QUEUE",
)


def test_make_run_writes_the_settings_a_second_terminal_sources(sandbox: Sandbox) -> None:
    env = sandbox.environment()
    document = json.loads((sandbox.state / "settings.json").read_text(encoding="utf-8"))

    assert {"API", "KEY", "ADMIN", "CURL_CA_BUNDLE", *CLI_NEEDS} <= set(env)
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent), "pipeline-gateway is on PATH"
    assert document["IsEncrypted"] is False
    values = {name: value for name, value in document["Values"].items() if name != "FUNCTIONS_WORKER_RUNTIME"}
    assert {name: env[name] for name in values} == values, "the env exports the settings.json values"
    assert document == settings_document(values)
    assert env["CURL_CA_BUNDLE"] == env["REQUESTS_CA_BUNDLE"] == str(sandbox.state / "tls" / "ca.pem")
    for name in ("env", "settings.json"):
        assert (sandbox.state / name).stat().st_mode & 0o077 == 0, f"{name} holds keys: the owner's only"
    assert requests.get(f"{env['API']}/targets", headers={"x-functions-key": env["KEY"]}, timeout=10).ok


def test_make_run_prints_the_endpoints_and_an_admin_url_that_answers(sandbox: Sandbox) -> None:
    env = sandbox.environment()
    printed = sandbox.printed

    for endpoint in (env["API"], env["KEY"], env["GATEWAY_STORAGE__tableServiceUri"], env["ADMIN"]):
        assert endpoint in printed
    assert env["GATEWAY_STORAGE__queueServiceUri"] in printed
    assert f"source {sandbox.state / 'env'}" in printed and "pipeline-gateway summary" in printed
    index = requests.get(env["ADMIN"], verify=env["REQUESTS_CA_BUNDLE"], timeout=10)
    assert index.status_code == 200
    paths = {endpoint["path"] for endpoint in index.json()["endpoints"]}
    assert {"/_emulator/runs", "/_emulator/faults", "/_emulator/clock"} <= paths
    assert all(
        requests.get(env["ADMIN"] + path[len("/_emulator") :], verify=env["REQUESTS_CA_BUNDLE"], timeout=10).ok
        for path in ("/_emulator/runs", "/_emulator/info")
    )


def test_a_second_stack_on_the_same_folder_is_refused(sandbox: Sandbox) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "offline.stack", "--dir", str(sandbox.state), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert second.returncode != 0 and "Another stack" in second.stderr and str(sandbox.process.pid) in second.stderr


def test_make_run_keeps_runs_alerts_and_certificates_across_a_restart(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path).start()
    try:
        before = sandbox.environment()
        ca = (sandbox.state / "tls" / "ca.pem").read_bytes()
        started = requests.post(
            f"{before['API']}/targets/contoso-adf/pipelines/long_running/runs",
            headers={"x-functions-key": before["KEY"]},
            json={},
            timeout=30,
        )
        assert started.status_code == 202, started.text
    finally:
        sandbox.stop()
    assert not (sandbox.state / "env").exists() and not (sandbox.state / "settings.json").exists(), (
        "a stopped stack leaves no settings pointing at it"
    )

    sandbox.start()
    try:
        after = sandbox.environment()
        again = requests.get(
            f"{after['API']}/runs/{started.json()['id']}", headers={"x-functions-key": after["KEY"]}, timeout=30
        )
    finally:
        sandbox.stop()

    assert again.status_code == 200 and again.json()["pipeline"] == "long_running"
    assert (sandbox.state / "tls" / "ca.pem").read_bytes() == ca, "the CA is reused, so trust survives"
    assert "1 run(s) were in flight" in sandbox.printed, "the run the emulator forgot is named"
