"""The whole offline stack in one object: the Azure emulator, Azurite, and the app's settings.

Tests, ``make run`` and ``make demo`` all start the stack this way, so the app always runs the same
code path as in Azure: a managed identity (the emulator's endpoint, through azure-identity), Storage
over HTTPS with bearer tokens (Azurite with OAuth), and certificate verification on.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from offline.azurite import Azurite
from offline.emulator import ActivitySpec, Emulator, EmulatorConfig, PipelineSpec
from offline.localhost import LocalHost
from offline.tls import ensure_tls_files

SCHEDULE_EVERY_10_SECONDS = "*/10 * * * * *"
ROOT = Path(__file__).resolve().parent.parent


def catalog_for(info: Mapping[str, Any], *, alert_on_cancelled: bool = False) -> dict[str, Any]:
    """A catalog with one target per emulated factory and workspace, every pipeline allowed (Fabric's by
    item id, as the info file gives them)."""
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
    for workspace in info.get("ml_workspaces", []):
        targets.append(
            {
                "name": workspace["name"],
                "kind": "machinelearning",
                "subscriptionId": workspace["subscription_id"],
                "resourceGroup": workspace["resource_group"],
                "workspaceName": workspace["name"],
                "jobs": [_job_template(workspace, template) for template in workspace["templates"]],
            }
        )
    for fabric in info["fabric"]["workspaces"]:
        targets.append(
            {
                "name": fabric["name"],
                "kind": "fabric",
                "workspaceId": fabric["id"],
                "workspaceName": fabric["name"],
                "pipelines": [{"match": p["name"], "itemId": p["id"]} for p in fabric["pipelines"]],
            }
        )
    return {"targets": targets, "alertOnCancelled": alert_on_cancelled}


def _job_template(workspace: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog job template for an emulated one: its job type's required fields, and a data input
    callers may point anywhere under the workspace datastore's paths."""
    name = template["name"]
    compute = (
        f"/subscriptions/{workspace['subscription_id']}/resourceGroups/{workspace['resource_group']}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace['name']}/computes/cpu-cluster"
    )
    data = "azureml://datastores/workspaceblobstore/paths/"
    job: dict[str, Any] = {"name": name, "jobType": template["job_type"], "computeId": compute}
    if template["job_type"] == "Command":
        job |= {"command": f"python {name}.py --data ${{{{inputs.data}}}}", "environmentId": "azureml:gateway-env:1"}
    else:
        job["componentId"] = f"azureml:{name}:1"
    job["inputs"] = {
        "data": {"type": "uri_folder", "default": data + "sales/", "settable": True, "allowedPrefixes": [data]}
    }
    return job


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
        "GATEWAY_FABRIC_ENDPOINT": info["fabric"]["api_endpoint"],
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


def sandbox_config() -> EmulatorConfig:
    """The sample estate, plus a pipeline that runs for an hour: something on-call can watch and cancel."""
    sample = EmulatorConfig.default()
    factory = sample.factories[0]
    waiting = PipelineSpec(
        "long_running", queue_s=5, duration_s=3600, activities=(ActivitySpec("WaitForPartner", "Until"),)
    )
    pipelines = (*factory.pipelines, waiting)
    return replace(sample, factories=(replace(factory, pipelines=pipelines), *sample.factories[1:]))


def settings_document(settings: Mapping[str, str]) -> dict[str, Any]:
    """The settings in ``local.settings.json``'s format, for ``func start`` or ``pipeline-gateway --settings``."""
    return {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", **settings}}


def env_script(api: str, key: str, admin: str, settings: Mapping[str, str], bin_dir: Path) -> str:
    """A shell file to ``source``: the API and its key, the emulator's admin URL, every app setting (so the
    CLI reads what the app reads), curl's CA bundle, and the virtual environment's ``bin`` on PATH."""
    exported = {
        "API": api,
        "KEY": key,
        "ADMIN": admin,
        **settings,
        "CURL_CA_BUNDLE": settings["REQUESTS_CA_BUNDLE"],
    }
    bin_path = shlex.quote(str(bin_dir))
    lines = [
        "# Pipeline Gateway sandbox (make run), rewritten at each start: `source .local/env` in another terminal.",
        *(f"export {name}={shlex.quote(value)}" for name, value in exported.items()),
        f'case ":$PATH:" in *:{bin_path}:*) ;; *) export PATH={bin_path}:"$PATH" ;; esac',
    ]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Whole or not at all (a reader never sees half a file), readable by the owner only: it holds keys."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)


def _shown(path: Path) -> str:
    """A path as the user would type it from here."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


@contextlib.contextmanager
def _exclusive(workdir: Path) -> Iterator[None]:
    """One stack per folder: two Azurites on one data folder would corrupt it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "stack.lock").open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise SystemExit(f"Another stack (pid {lock.read().strip() or '?'}) is using {_shown(workdir)}.") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def _forgotten_runs() -> int:
    """Runs the registry holds as in flight as the stack starts. The emulator keeps Azure's runs in memory,
    so after a restart it no longer knows them, and they will never move; the user should be told."""
    from shared.context import app_context
    from shared.runs.model import RunStatus

    registry = app_context().registry
    registry.ensure_table()
    return sum(1 for row in registry.live_rows() if row.status in RunStatus.IN_FLIGHT)


def _serve(args: argparse.Namespace) -> int:
    from function_app import app

    workdir = Path(args.dir).resolve()  # Azurite runs in a folder of its own
    with _exclusive(workdir), OfflineStack(workdir, emulator_config=sandbox_config()) as stack:
        stack.apply_environment()
        forgotten = _forgotten_runs()  # before anyone can start a run
        host = stack.local_host(app, port=args.port, poll_seconds=args.poll_seconds)
        try:
            host.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            print(f"Port {args.port} is taken (another make run?): make run API_PORT=<another port>", file=sys.stderr)
            return 1
        # Links in runs and alerts point where callers reach the API, as APIM's URL does in Azure.
        os.environ["GATEWAY_PUBLIC_BASE_URL"] = host.api_url
        info = stack.emulator.info
        settings = {**stack.environment(), "GATEWAY_PUBLIC_BASE_URL": host.api_url}
        admin = info["admin_endpoint"]
        files = (workdir / "settings.json", workdir / "env")
        _write_private(files[0], json.dumps(settings_document(settings), indent=2) + "\n")
        _write_private(
            files[1], env_script(host.api_url, host.function_key, admin, settings, Path(sys.executable).parent)
        )
        target = info["factories"][0]["name"]
        print(
            f"""Pipeline Gateway is running offline. Its state stays in {_shown(workdir)}/ (make clean forgets it).

  API            {host.api_url}
  function key   {host.function_key}
  Azure emulator {info["arm_endpoint"]}  (admin: {admin})
  Azurite        tables {stack.azurite.table_endpoint}
                 queues {stack.azurite.queue_endpoint}
  CA bundle      {_shown(stack.tls.ca_bundle)}
  settings       {_shown(files[0])} (local.settings.json format), {_shown(files[1])} (to source)
  poller         every {args.poll_seconds:g}s

In another terminal, from this folder:
  source {_shown(files[1])}
  curl -s "$API/health"
  curl -s -H "x-functions-key: $KEY" "$API/targets"
  curl -s -X POST "$API/targets/{target}/pipelines/copy_sales/runs" -H "x-functions-key: $KEY" \\
       -H "Content-Type: application/json" -d '{{"parameters": {{"date": "2026-11-21"}}}}'
  pipeline-gateway runs
  pipeline-gateway alerts
  pipeline-gateway summary
  curl -s "$ADMIN"

Ctrl+C stops everything.""",
            flush=True,
        )
        if forgotten:
            print(
                f"Note: {forgotten} run(s) were in flight when the stack last stopped. The emulator keeps Azure's "
                "runs in memory and has forgotten them, so they will stay as they are; make clean starts afresh.",
                flush=True,
            )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            with contextlib.suppress(KeyboardInterrupt):
                stopped.wait()
        finally:
            for path in files:  # they describe a stack that is no longer there
                path.unlink(missing_ok=True)
            host.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Pipeline Gateway offline: emulator, Azurite, local host.")
    parser.add_argument("--port", type=int, default=7071, help="port of the local Functions host (0: any free one)")
    parser.add_argument(
        "--dir", default=".local", help="working folder (certificates, Azurite data, settings); kept across runs"
    )
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="how often the poller ticks")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
