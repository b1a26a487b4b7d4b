"""The composition root: builds each dependency once per context, on first use, and hands it out.

Nothing heavy (azure-identity, requests, the Storage SDKs) is imported until a function needs it,
so the host indexes the app quickly; and nothing here holds state that matters across instances.
The process has one context (``app_context``); tests and the local host build their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared.config.settings import Settings

if TYPE_CHECKING:
    from shared.alerts.history import AlertHistory
    from shared.azure.identity import TokenProvider
    from shared.azure.queues import JsonQueue
    from shared.azure.transport import UpstreamClient
    from shared.config.catalog import Catalog
    from shared.runs.idempotency import IdempotencyKeys
    from shared.runs.registry import RunRegistry

C = TypeVar("C")


class AppContext:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._tokens: TokenProvider | None = None
        self._upstream: UpstreamClient | None = None
        self._registry: RunRegistry | None = None
        self._queues: dict[str, JsonQueue] = {}
        self._clients: dict[tuple[str, ...], Any] = {}

    @property
    def catalog(self) -> Catalog:
        from shared.config.catalog import load_catalog

        return load_catalog(self.settings)

    @property
    def tokens(self) -> TokenProvider:
        """The identity's tokens, one cached per audience."""
        with self._lock:
            if self._tokens is None:
                from shared.azure.identity import TokenProvider

                self._tokens = TokenProvider.from_settings(self.settings)
            return self._tokens

    @property
    def upstream(self) -> UpstreamClient:
        with self._lock:
            if self._upstream is None:
                from shared.azure.transport import UpstreamClient, new_session

                self._upstream = UpstreamClient(new_session(), self.tokens, timeout=self.settings.upstream_timeout)
            return self._upstream

    def client(self, key: tuple[str, ...], build: Callable[[], C]) -> C:
        """The Azure client ``key`` names (a kind, a target...), built once: tokens and connections are shared."""
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            return client

    @property
    def registry(self) -> RunRegistry:
        with self._lock:
            if self._registry is None:
                from shared.runs.registry import RunRegistry

                registry = RunRegistry(self._table())
                registry.ensure_table()
                self._registry = registry
            return self._registry

    @property
    def idempotency(self) -> IdempotencyKeys:
        """Idempotency keys live beside the runs, in the registry's table."""
        from shared.runs.idempotency import IdempotencyKeys

        return IdempotencyKeys(self.registry.table)

    @property
    def alert_history(self) -> AlertHistory:
        """Alerts forwarded or acknowledged, kept beside the runs."""
        from shared.alerts.history import AlertHistory

        return AlertHistory(self.registry.table)

    @property
    def alerts(self) -> JsonQueue:
        """The queue on-call engineers read."""
        return self._queue(self.settings.alert_queue)

    @property
    def poll_queue(self) -> JsonQueue:
        """Per-target poll work, when the poller fans out."""
        return self._queue(self.settings.poll_queue)

    def _table(self) -> Any:
        from shared.azure.storage import table_client

        return table_client(self.settings, self.tokens.credential)

    def _queue(self, name: str) -> JsonQueue:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                from shared.azure.queues import JsonQueue

                queue = JsonQueue.connect(
                    queue_name=name,
                    endpoint=self.settings.queue_service_uri,
                    connection_string=self.settings.storage_connection_string,
                    credential=self.tokens.credential,
                )
                queue.ensure_queue()
                self._queues[name] = queue
            return queue


_context_lock = threading.Lock()
_context: AppContext | None = None


def app_context() -> AppContext:
    """The process's context, built from the environment on first use."""
    global _context
    with _context_lock:
        if _context is None:
            _context = AppContext()
        return _context


def set_app_context(context: AppContext | None) -> None:
    """Replaces the process's context; tests and the local host use it to point at the emulators."""
    global _context
    with _context_lock:
        _context = context
