"""``LocalHost``: the app's functions served over HTTP, with its timers and queue triggers, in one object.

Everything is read from the app's own metadata and ``host.json``, so the app is described once, for the
real host and this one alike.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import azure.functions as func

from offline.localhost.config import HostConfig, resolve_settings
from offline.localhost.invoke import Invoker
from offline.localhost.metadata import FunctionSpec, HttpFunction, QueueFunction, TimerFunction, read_functions
from offline.localhost.triggers import (
    Interval,
    QueueClientFactory,
    QueueRunner,
    Schedule,
    TimerRunner,
    parse_schedule,
)
from offline.localhost.web import HttpDispatcher, Keys, LocalHttpServer

logger = logging.getLogger("offline.localhost")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit
STOP_TIMEOUT = 10.0
SHUTDOWN_POLL = 0.05  # seconds; how soon serve_forever notices stop()
HOSTNAME_SETTING = "WEBSITE_HOSTNAME"


def new_key() -> str:
    return secrets.token_urlsafe(40)


class LocalHost:
    """Serves ``app`` on ``http://host:port/<routePrefix>/...``; ``port=0`` takes a free port.

    Keys not given are generated: ``master_key`` (admin and every function), ``function_key`` (the host's
    default key: every function-level function) and one key per HTTP function in ``function_keys``.
    Timers run only with ``run_timers``; ``timer_interval_override`` makes every timer fire each N seconds
    instead of on its schedule. Queue triggers run only with a ``queue_client_factory(queue_name,
    connection)``. ``%SETTING%`` values resolve from ``environ`` (default: ``os.environ``) at start.

    Like the Functions host (App Service, and Core Tools locally), it tells the app its own address in
    ``WEBSITE_HOSTNAME`` while it runs: the one request host the app trusts for absolute links.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        master_key: str | None = None,
        function_key: str | None = None,
        function_keys: Mapping[str, str] | None = None,
        run_timers: bool = False,
        timer_interval_override: float | None = None,
        queue_client_factory: QueueClientFactory | None = None,
        queue_poll_interval: float = 1.0,
        host_json: Path | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        environ: Mapping[str, str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.config = HostConfig.load(host_json)
        self.functions: list[FunctionSpec] = read_functions(app)
        http = [f for f in self.functions if isinstance(f, HttpFunction)]
        given = dict(function_keys or {})
        self.keys = Keys(
            master=master_key or new_key(),
            default=function_key or new_key(),
            functions={f.name: given.get(f.name) or new_key() for f in http},
        )
        self._invoke = Invoker()
        self._dispatcher = HttpDispatcher(http, self.config, self.keys, self._invoke)
        self._address = (host, port)
        self._run_timers = run_timers
        self._timer_interval_override = timer_interval_override
        self._queue_clients = queue_client_factory
        self._queue_poll_interval = queue_poll_interval
        self._max_body_bytes = max_body_bytes
        self._environ = environ
        self._verbose = verbose
        self._server: LocalHttpServer | None = None
        self._hostname_before: str | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- what clients need -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the local host is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without the route prefix."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base of function routes: ``url`` plus the route prefix (``/api``)."""
        prefix = self.config.route_prefix
        return f"{self.url}/{prefix}" if prefix else self.url

    @property
    def master_key(self) -> str:
        return self.keys.master

    @property
    def function_key(self) -> str:
        return self.keys.default

    @property
    def function_keys(self) -> Mapping[str, str]:
        return self.keys.functions

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Binds, then starts serving and the triggers; returns once requests are accepted."""
        if self._server is not None:
            return
        runners = self._trigger_runners()
        server = LocalHttpServer(self._address, self._dispatcher, self._max_body_bytes, self._verbose)
        self._server = server
        self._hostname_before = os.environ.get(HOSTNAME_SETTING)
        os.environ[HOSTNAME_SETTING] = f"{self._address[0]}:{self.port}"
        self._stopping.clear()
        self._invoke.start()
        self._threads = [
            threading.Thread(target=lambda: server.serve_forever(SHUTDOWN_POLL), name="localhost-http", daemon=True)
        ]
        self._threads += [threading.Thread(target=run, name=f"localhost-{name}", daemon=True) for name, run in runners]
        for thread in self._threads:
            thread.start()
        logger.info("local Functions host on %s (%d functions)", self.api_url, len(self.functions))

    def stop(self) -> None:
        """Stops accepting, ends kept-alive connections, lets running timer and queue functions finish
        (up to a timeout)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        if self._hostname_before is None:
            os.environ.pop(HOSTNAME_SETTING, None)
        else:
            os.environ[HOSTNAME_SETTING] = self._hostname_before
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                logger.warning("%s still running after %.0f s", thread.name, STOP_TIMEOUT)
        self._invoke.stop()

    def __enter__(self) -> LocalHost:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- triggers ----------------------------------------------------------------------------

    def _trigger_runners(self) -> list[tuple[str, Callable[[], None]]]:
        """Built before anything starts, so a bad schedule or a missing setting fails ``start()`` cleanly."""
        environ = self._environ if self._environ is not None else os.environ
        runners: list[tuple[str, Callable[[], None]]] = []
        for function in self.functions:
            if isinstance(function, TimerFunction) and self._run_timers:
                schedule = self._schedule(resolve_settings(function.schedule, environ))
                runners.append((function.name, TimerRunner(function, schedule, self._invoke, self._stopping).run))
            elif isinstance(function, QueueFunction) and self._queue_clients is not None:
                queue_name = resolve_settings(function.queue_name, environ)
                runner = QueueRunner(function, queue_name, self._queue_clients, self.config, self._invoke,
                                     self._stopping, self._queue_poll_interval)  # fmt: skip
                runners.append((function.name, runner.run))
        return runners

    def _schedule(self, text: str) -> Schedule:
        parsed = parse_schedule(text)  # validated even when overridden: Azure would refuse it
        if self._timer_interval_override is not None:
            return Interval(self._timer_interval_override)
        return parsed
