"""The offline stack for measurements, each part in a process of its own as in Azure.

The emulator runs apart (like Azure), the app runs on the local Functions host in a child process (like
the Functions worker), and Azurite is the usual child; the measuring process only sends HTTP, so its
own work never competes with the app's for the interpreter lock. Everything binds 127.0.0.1 and every
child stops with its parent.

    python -m bench.harness --serve INFO [--port P] [--function-key K] [--triggers]
                                         (internal: the app's process)

``--port`` and ``--function-key`` let a benchmark kill the app's process and start it again where its
callers expect it, with the key they hold; ``--triggers`` also runs the app's timer (on the schedule its
settings give) and its queue triggers, as the Functions host does on every instance.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from offline.azurite import Azurite, _die_with_parent
from offline.stack import ROOT, app_settings, catalog_for
from offline.tls import ensure_tls_files

STARTUP_SECONDS = 60


@dataclass(frozen=True)
class Gateway:
    """Where the app and the emulator answer, and what a caller needs."""

    api_url: str
    function_key: str
    emulator: dict[str, Any]  # the emulator's info document

    def admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The emulator's control API (counters, runs, faults)."""
        response = requests.request(
            method,
            f"{self.emulator['admin_endpoint']}/{path}",
            json=body,
            verify=self.emulator["ca_bundle"],
            timeout=30,
        )
        response.raise_for_status()
        return response.json() if response.content else None


def _child(arguments: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent(),
    )


def wait_for(path: Path, process: subprocess.Popen[bytes], what: str) -> dict[str, Any]:
    """The JSON a started child writes to ``path`` once it serves; exits when it dies or takes too long."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)
    info: dict[str, Any] = json.loads(path.read_text())
    return info


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def gateway(
    workdir: Path,
    *,
    latency_ms: float = 0.0,
    settings: Mapping[str, str] | None = None,
    catalog: Callable[[dict[str, Any]], dict[str, Any]] = catalog_for,
) -> Iterator[Gateway]:
    """The emulator (``latency_ms`` on every call), Azurite and the app on its local host, started and
    stopped in order; ``catalog`` makes the app's catalog from the emulator's info."""
    tls = ensure_tls_files(workdir / "tls")
    emulator_info = workdir / "emulator.json"
    emulator = _child(
        ["-m", "offline.emulator", "--port", "0", "--info", str(emulator_info), "--tls-dir", str(workdir / "tls"),
         "--latency-ms", str(latency_ms)]
    )  # fmt: skip
    try:
        info = wait_for(emulator_info, emulator, "the emulator")
        with Azurite(workdir / "azurite", tls) as azurite:
            env = {**os.environ, **app_settings(info, azurite, tls.ca_bundle, catalog(info)), **(settings or {})}
            env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
            app_info = workdir / "app.json"
            app = _child(["-m", "bench.harness", "--serve", str(app_info)], env)
            try:
                served = wait_for(app_info, app, "the app")
                yield Gateway(served["api_url"], served["function_key"], info)
            finally:
                _stop(app)
    finally:
        _stop(emulator)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(round(fraction * len(ordered), 9)) - 1)]


def _queue_client(queue: str, connection: str) -> Any:
    """The queue triggers' client: undecoded, like the Functions host reads queues; the app's identity."""
    from azure.storage.queue import QueueClient

    from shared.context import app_context

    return QueueClient(
        account_url=os.environ[f"{connection}__queueServiceUri"],
        queue_name=queue,
        credential=app_context().tokens.credential,
    )


def _serve(info: Path, *, port: int = 0, function_key: str | None = None, triggers: bool = False) -> int:
    from function_app import app
    from offline.localhost import LocalHost

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    local = LocalHost(
        app,
        port=port,
        function_key=function_key,
        host_json=ROOT / "host.json",
        run_timers=triggers,
        queue_client_factory=_queue_client if triggers else None,
    )
    with local as host:
        temporary = info.with_suffix(".tmp")
        temporary.write_text(json.dumps({"api_url": host.api_url, "function_key": host.function_key}))
        temporary.replace(info)
        stop.wait()
    return 0


def parser() -> argparse.ArgumentParser:
    parsing = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parsing.add_argument("--serve", type=Path, required=True, help="where to write the app's URL and key")
    parsing.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parsing.add_argument("--function-key", help="the host's default function key (default: a new one)")
    parsing.add_argument("--triggers", action="store_true", help="also run the timer and queue triggers")
    return parsing


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return _serve(args.serve, port=args.port, function_key=args.function_key, triggers=args.triggers)


if __name__ == "__main__":
    sys.exit(main())
