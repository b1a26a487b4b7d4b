"""The whole offline stack in one object: the Azure emulator, Azurite, and the app's settings.

Tests, ``make run`` and ``make demo`` all start the stack this way, so the app always runs the same
code path as in Azure: a managed identity (the emulator's endpoint, through azure-identity), Storage
over HTTPS with bearer tokens (Azurite with OAuth), and certificate verification on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from offline.azurite import Azurite
from offline.emulator import Emulator, EmulatorConfig
from offline.localhost import LocalHost
from offline.tls import ensure_tls_files

SCHEDULE_EVERY_10_SECONDS = "*/10 * * * * *"
ROOT = Path(__file__).resolve().parent.parent


def catalog_for(info: Mapping[str, Any], *, alert_on_cancelled: bool = False) -> dict[str, Any]:
    """A catalog with one target per emulated factory and workspace, every pipeline allowed."""
    targets: list[dict[str, Any]] = []
    for factory in info["factories"]:
        targets.append(
            {
                "name": factory["name"],
                "kind": "datafactory",
                "subscriptionId": factory["subscription_id"],
                "resourceGroup": factory["resource_group"],
                "factoryName": factory["name"],
                "pipelines": ["*"],
            }
        )
    for workspace in info["workspaces"]:
        targets.append(
            {
                "name": workspace["name"],
                "kind": "synapse",
                "workspaceName": workspace["name"],
                "endpoint": workspace["endpoint"],
                "subscriptionId": workspace["subscription_id"],
                "resourceGroup": workspace["resource_group"],
                "pipelines": ["*"],
                "sparkPools": ["*"],
            }
        )
    return {"targets": targets, "alertOnCancelled": alert_on_cancelled}


def app_settings(
    info: Mapping[str, Any], azurite: Azurite, ca_bundle: Path, catalog: Mapping[str, Any]
) -> dict[str, str]:
    """The settings that point the app at an emulator (identity, ARM) and an Azurite (tables, queues)."""
    return {
        "IDENTITY_ENDPOINT": info["identity_endpoint"],
        "IDENTITY_HEADER": info["identity_header"],
        "AZURE_CLIENT_ID": info["client_id"],
        "REQUESTS_CA_BUNDLE": str(ca_bundle),
        "GATEWAY_CATALOG": json.dumps(catalog),
        "GATEWAY_ARM_ENDPOINT": info["arm_endpoint"],
        "GATEWAY_STORAGE__tableServiceUri": azurite.table_endpoint,
        "GATEWAY_STORAGE__queueServiceUri": azurite.queue_endpoint,
        "GATEWAY_STORAGE__credential": "managedidentity",
        "GATEWAY_STORAGE__clientId": info["client_id"],
    }


class OfflineStack:
    def __init__(
        self,
        workdir: Path | None = None,
        *,
        emulator_config: EmulatorConfig | None = None,
        emulator_latency_s: float = 0.0,
        catalog: Mapping[str, Any] | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pipeline-gateway-"))
        self.tls = ensure_tls_files(self.workdir / "tls")
        self.emulator = Emulator(emulator_config, tls_dir=self.workdir / "tls", latency_s=emulator_latency_s)
        self.azurite = Azurite(self.workdir / "azurite", self.tls)
        self._catalog = catalog

    def start(self) -> OfflineStack:
        self.emulator.start()
        try:
            self.azurite.start()
        except Exception:
            self.emulator.stop()
            raise
        return self

    def stop(self) -> None:
        self.azurite.stop()
        self.emulator.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OfflineStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def catalog(self) -> Mapping[str, Any]:
        return self._catalog or catalog_for(self.emulator.info)

    def environment(self) -> dict[str, str]:
        """The app settings (and identity variables) that point the app at this stack."""
        return {
            **app_settings(self.emulator.info, self.azurite, self.tls.ca_bundle, self.catalog),
            "GATEWAY_POLL_SCHEDULE": SCHEDULE_EVERY_10_SECONDS,
            "GATEWAY_POLL_QUEUE": "gateway-poll",
            # The local host resolves %GATEWAY_ALERT_QUEUE% (the alert forwarder's trigger) from here.
            "GATEWAY_ALERT_QUEUE": "pipeline-failures",
        }

    def apply_environment(self) -> None:
        """Sets the environment of this process; azure-identity reads it when a credential is built."""
        os.environ.update(self.environment())

    def local_host(self, app: Any, *, port: int = 0, poll_seconds: float | None = None) -> LocalHost:
        """The app on a local Functions host: HTTP routes, the poller's timer and its queue trigger."""
        from azure.storage.queue import QueueClient

        from shared.context import app_context

        def queue_client(queue: str, connection: str) -> QueueClient:
            # Undecoded, like the Functions host reads queues; the identity is the app's own.
            return QueueClient(
                account_url=os.environ[f"{connection}__queueServiceUri"],
                queue_name=queue,
                credential=app_context().tokens.credential,
            )

        return LocalHost(
            app,
            port=port,
            host_json=ROOT / "host.json",
            run_timers=poll_seconds is not None,
            timer_interval_override=poll_seconds,
            queue_client_factory=queue_client,
        )


def _serve(args: argparse.Namespace) -> int:
    from function_app import app

    with OfflineStack(Path(args.dir) if args.dir else None) as stack:
        stack.apply_environment()
        host = stack.local_host(app, port=args.port, poll_seconds=args.poll_seconds)
        host.start()
        key = host.function_key
        target = stack.emulator.info["factories"][0]["name"]
        print(
            f"""Pipeline Gateway is running offline.

  API            {host.api_url}
  function key   {key}
  Azure emulator {stack.emulator.info["arm_endpoint"]}  (admin: {stack.emulator.info["admin_endpoint"]})
  Azurite        {stack.azurite.table_endpoint}
  CA bundle      {stack.tls.ca_bundle}
  poller         every {args.poll_seconds:g}s

Try:
  curl -s {host.api_url}/health
  curl -s -H 'x-functions-key: {key}' {host.api_url}/targets
  curl -s -X POST -H 'x-functions-key: {key}' -H 'Content-Type: application/json' \\
       -d '{{"parameters": {{"date": "2026-11-22"}}}}' {host.api_url}/targets/{target}/pipelines/daily_load/runs
  curl -s -H 'x-functions-key: {key}' {host.api_url}/runs

Ctrl+C stops everything.""",
            flush=True,
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        host.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Pipeline Gateway offline: emulator, Azurite, local host.")
    parser.add_argument("--port", type=int, default=7071, help="port of the local Functions host")
    parser.add_argument("--dir", help="working folder (certificates, Azurite data); default: a temp folder")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="how often the poller ticks")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
