"""``python -m offline.emulator``: info file, serving, clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    info_path = tmp_path / "info.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "offline.emulator",
            "--port",
            "0",
            "--info",
            str(info_path),
            "--tls-dir",
            str(tmp_path / "tls"),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not info_path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        assert time.monotonic() < deadline, "the emulator did not write its info file"
        time.sleep(0.05)
    return process, json.loads(info_path.read_text())


def stop(process: subprocess.Popen[bytes]) -> int:
    os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_serves_and_exits_cleanly(tmp_path: Path) -> None:
    process, info = start(tmp_path, "--page-size", "5", "--token-lifetime", "7200")
    try:
        for key in (
            "arm_endpoint",
            "ca_bundle",
            "identity_endpoint",
            "identity_header",
            "client_id",
            "tenant_id",
            "admin_endpoint",
            "factories",
            "workspaces",
        ):
            assert key in info
        assert str(info["arm_endpoint"]).startswith("https://127.0.0.1:")
        factory = info["factories"][0]  # type: ignore[index]
        assert {"name": "copy_sales", "outcome": "Failed"} in factory["pipelines"]
        workspace = info["workspaces"][0]  # type: ignore[index]
        assert workspace["endpoint"] == f"{info['arm_endpoint']}/synapse/contoso-syn"
        assert [p["name"] for p in workspace["spark_pools"]] == ["small", "large"]
        context = ssl.create_default_context(cafile=str(info["ca_bundle"]))
        with urllib.request.urlopen(f"{info['admin_endpoint']}/info", context=context, timeout=10) as reply:
            served = json.load(reply)
        assert served["page_size"] == 5 and served["token_lifetime_s"] == 7200
        request = urllib.request.Request(
            f"{info['identity_endpoint']}?api-version=2019-08-01&resource=https://management.azure.com&client_id={info['client_id']}",
            headers={"X-IDENTITY-HEADER": str(info["identity_header"])},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            assert json.load(reply)["token_type"] == "Bearer"
    finally:
        code = stop(process)
    assert code == 0
    assert not (tmp_path / "info.json").exists()


def test_cli_takes_a_config_file(tmp_path: Path) -> None:
    config = {
        "factories": [
            {"name": "my-adf", "resource_group": "rg-mine", "pipelines": [{"name": "p1", "outcome": "Failed"}]}
        ],
        "workspaces": [],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    process, info = start(tmp_path, "--config", str(path))
    try:
        assert info["factories"] == [
            {
                "subscription_id": "00000000-0000-0000-0000-000000000001",
                "resource_group": "rg-mine",
                "name": "my-adf",
                "location": "West Europe",
                "pipelines": [{"name": "p1", "outcome": "Failed"}],
            }
        ]
        assert info["workspaces"] == []
    finally:
        assert stop(process) == 0


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"factories": [{"name": "x"}]}))
    result = subprocess.run(
        [sys.executable, "-m", "offline.emulator", "--info", str(tmp_path / "i.json"), "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and b"factory name" in result.stderr
