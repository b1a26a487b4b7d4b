"""Azurite (the npm Storage emulator) as a child process, over HTTPS with OAuth.

The app reaches Storage with a managed identity, never a connection string, and azure-core refuses bearer
tokens over plain HTTP; so Azurite runs with ``--oauth basic`` and a certificate from the stack's shared
CA (:mod:`offline.tls`), and the very same client code as in Azure is exercised.

The child must never outlive the process that started it, not even a ``kill -9``'d test run: it gets its
own process group (a terminal's Ctrl-C reaches us, not it, so we can stop it in order), is stopped by its
PID only, on ``stop()``, at interpreter exit, and, on Linux, by the kernel when its parent dies.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from offline.tls import TlsFiles, ensure_tls_files

ACCOUNT_NAME = "devstoreaccount1"
LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
SERVICES = ("blob", "queue", "table")
LOG_TAIL_LINES = 20
START_ATTEMPTS = 3
PR_SET_PDEATHSIG = 1


class AzuriteError(RuntimeError):
    """Azurite could not be started (or restarted); the message carries the tail of its log."""


class _PortTaken(AzuriteError):
    """Another process bound one of our ports between choosing it and Azurite binding it."""


@dataclass(frozen=True)
class Ports:
    blob: int
    queue: int
    table: int

    def of(self, service: str) -> int:
        port: int = getattr(self, service)
        return port


def free_ports(count: int = 3) -> list[int]:
    """Distinct free loopback ports, held together while chosen so they cannot repeat.

    They are released before Azurite binds them, so another process may take one meanwhile: the caller
    retries on ``EADDRINUSE``.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the thread that forked it dies.

    The death signal follows the forking *thread*, so start Azurite from a thread that lives as long as
    the stack (the main thread does). ``prctl`` is looked up here, before the fork: loading a library in
    the child of a threaded parent can deadlock. If the parent died before ``prctl`` took effect, the
    child exits at once.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Azurite:
    """One Azurite process serving blob, queue and table on loopback over HTTPS.

    Data lives in ``workdir/data`` and survives ``stop()`` and ``start()`` (or ``restart()``), which come
    back on the same ports so clients built before keep working. Its console goes to ``workdir/azurite.log``.
    """

    def __init__(
        self,
        workdir: Path,
        tls: TlsFiles,
        *,
        ports: Ports | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.workdir = workdir
        self.tls = tls
        self.data_dir = workdir / "data"
        self.log_path = workdir / "azurite.log"
        self._ports = ports
        self._ports_fixed = ports is not None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # -- endpoints -------------------------------------------------------------------------------

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise AzuriteError("Azurite has no ports yet: call start() first")
        return self._ports

    @property
    def account_name(self) -> str:
        return ACCOUNT_NAME

    @property
    def blob_endpoint(self) -> str:
        return self.endpoint("blob")

    @property
    def queue_endpoint(self) -> str:
        return self.endpoint("queue")

    @property
    def table_endpoint(self) -> str:
        return self.endpoint("table")

    def endpoint(self, service: str) -> str:
        """Path-style account URL, as the SDK clients take it (``https://127.0.0.1:P/devstoreaccount1``)."""
        return f"https://{LOOPBACK}:{self.ports.of(service)}/{ACCOUNT_NAME}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts Azurite and returns once all three services answer over verified HTTPS."""
        with self._lock:
            if self.is_running():
                return
            if not AZURITE_BIN.exists():
                raise AzuriteError(f"{AZURITE_BIN} is missing: run `make install` to install Azurite")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, START_ATTEMPTS + 1):
                if not self._ports_fixed:
                    self._ports = Ports(*free_ports())
                try:
                    self._launch_and_wait()
                except _PortTaken:
                    if self._ports_fixed or attempt == START_ATTEMPTS:
                        raise
                    continue
                # Clients keep the endpoints they were given: a later start() comes back on these ports.
                self._ports_fixed = True
                atexit.register(self.stop)
                return

    def stop(self) -> None:
        """SIGTERM (Azurite then saves its data), and SIGKILL if it has not exited in time."""
        with self._lock:
            process, self._process = self._process, None
            atexit.unregister(self.stop)
            if process is not None:
                _terminate(process, self._stop_timeout)

    def restart(self) -> None:
        """Stops and starts again on the same ports with the same data folder."""
        self.stop()
        self.start()

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def info(self) -> dict[str, object]:
        """What another process needs to use this Azurite (the CLI writes it as JSON)."""
        return {
            "account_name": ACCOUNT_NAME,
            "blob_endpoint": self.blob_endpoint,
            "queue_endpoint": self.queue_endpoint,
            "table_endpoint": self.table_endpoint,
            "ca_bundle": str(self.tls.ca_bundle),
            "azurite_pid": self.pid,
            "log": str(self.log_path),
        }

    # -- internals -------------------------------------------------------------------------------

    def command(self) -> list[str]:
        ports = self.ports
        return [
            str(AZURITE_BIN),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--location", str(self.data_dir),
            "--blobHost", LOOPBACK,
            "--queueHost", LOOPBACK,
            "--tableHost", LOOPBACK,
            "--blobPort", str(ports.blob),
            "--queuePort", str(ports.queue),
            "--tablePort", str(ports.table),
            "--oauth", "basic",
            "--cert", str(self.tls.cert),
            "--key", str(self.tls.key),
        ]  # fmt: skip

    def _launch_and_wait(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting on {self.ports}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                process_group=0,
                preexec_fn=_die_with_parent(),
            )
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            _terminate(self._process, self._stop_timeout)
            self._process = None
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        context = ssl.create_default_context(cafile=str(self.tls.ca_bundle))
        deadline = time.monotonic() + self._startup_timeout
        pending = list(SERVICES)
        while pending:
            if process.poll() is not None:
                self._fail(f"Azurite exited with code {process.returncode} while starting")
            if time.monotonic() > deadline:
                self._fail(f"Azurite did not answer within {self._startup_timeout:.0f} s ({pending} pending)")
            pending = [s for s in pending if not _answers(s, self.ports.of(s), context)]
            if pending:
                time.sleep(0.05)

    def _fail(self, reason: str) -> NoReturn:
        tail = self.log_tail()
        error = _PortTaken if "EADDRINUSE" in tail else AzuriteError
        raise error(f"{reason}; last lines of {self.log_path}:\n{tail}")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _answers(service: str, port: int, context: ssl.SSLContext) -> bool:
    """True when that port serves Azurite's ``service`` over TLS that our CA verifies.

    Any HTTP answer counts (unauthenticated requests get 403), but it must come from the right Azurite
    service: a foreign process that grabbed the port must not pass for it.
    """
    connection = http.client.HTTPSConnection(LOOPBACK, port, timeout=2, context=context)
    try:
        connection.request("GET", f"/{ACCOUNT_NAME}?restype=service&comp=properties")
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    server = response.getheader("Server", "")
    return server.lower().startswith(f"azurite-{service}")


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- CLI -----------------------------------------------------------------------------------------


def _write_info(path: Path, info: dict[str, object]) -> None:
    """Atomically, so a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(info, indent=2) + "\n")
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.azurite",
        description="Run Azurite over HTTPS with OAuth until SIGTERM or SIGINT.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="work folder: data, log")
    parser.add_argument("--tls-dir", type=Path, help="shared CA and certificate folder (default: DIR/tls)")
    parser.add_argument("--info", type=Path, help="write endpoints, CA bundle and pid here as JSON")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    tls = ensure_tls_files(args.tls_dir or args.dir / "tls")
    with Azurite(args.dir, tls) as azurite:
        info = {**azurite.info(), "pid": os.getpid()}
        if args.info:
            _write_info(args.info, info)
        print(json.dumps(info, indent=2), flush=True)
        try:
            while not stopping.wait(0.5):
                if not azurite.is_running():
                    print(f"Azurite exited unexpectedly:\n{azurite.log_tail()}", file=sys.stderr)
                    return 1
        finally:
            if args.info:
                args.info.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
