"""The composition root: builds each dependency once per process, on first use.

Nothing heavy (azure-identity, requests, the Storage SDKs) is imported until a function needs it,
so the host indexes the app quickly; and nothing here holds state that matters across instances.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared.config.catalog import Catalog, DataFactoryTarget, SynapseTarget, load_catalog
from shared.config.settings import Settings

if TYPE_CHECKING:
    from shared.azure.identity import TokenProvider
    from shared.azure.queues import JsonQueue
    from shared.azure.transport import UpstreamClient
    from shared.kinds.pipelines import PipelineService
    from shared.kinds.spark import SparkClient
    from shared.runs.registry import RunRegistry


class AppContext:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._tokens: TokenProvider | None = None
        self._upstream: UpstreamClient | None = None
        self._registry: RunRegistry | None = None
        self._queues: dict[str, JsonQueue] = {}
        self._services: dict[str, PipelineService] = {}

    @property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings)

    @property
    def tokens(self) -> TokenProvider:
        with self._lock:
            if self._tokens is None:
                from shared.azure.identity import token_provider

                self._tokens = token_provider(self.settings)
            return self._tokens

    @property
    def upstream(self) -> UpstreamClient:
        with self._lock:
            if self._upstream is None:
                from shared.azure.transport import UpstreamClient, new_session

                self._upstream = UpstreamClient(new_session(), self.tokens, timeout=self.settings.upstream_timeout)
            return self._upstream

    @property
    def registry(self) -> RunRegistry:
        with self._lock:
            if self._registry is None:
                from shared.runs.registry import RunRegistry

                registry = RunRegistry.connect(
                    table_name=self.settings.runs_table,
                    endpoint=self.settings.table_service_uri,
                    connection_string=self.settings.storage_connection_string,
                    credential=self.tokens.credential,
                )
                registry.ensure_table()
                self._registry = registry
            return self._registry

    @property
    def alerts(self) -> JsonQueue:
        """The queue on-call engineers read."""
        return self._queue(self.settings.alert_queue)

    @property
    def poll_queue(self) -> JsonQueue:
        """Per-target poll work, when the poller fans out."""
        return self._queue(self.settings.poll_queue)

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

    def spark(self, target: SynapseTarget, pool: str) -> SparkClient:
        """The Livy client of one Spark pool (cheap to build; sessions and tokens are shared)."""
        from shared.kinds.spark import SparkClient

        return SparkClient(self.upstream, target, pool, scope=self.settings.synapse_scope)

    def pipelines(self, target: DataFactoryTarget | SynapseTarget) -> PipelineService:
        """The pipeline client of a target, built once per target."""
        with self._lock:
            service = self._services.get(target.name)
            if service is None:
                if isinstance(target, DataFactoryTarget):
                    from shared.kinds.datafactory import DataFactoryClient

                    service = DataFactoryClient(
                        self.upstream, target, arm_endpoint=self.settings.arm_endpoint, scope=self.settings.arm_scope
                    )
                else:
                    from shared.kinds.synapse import SynapsePipelineClient

                    service = SynapsePipelineClient(self.upstream, target, scope=self.settings.synapse_scope)
                self._services[target.name] = service
            return service


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
