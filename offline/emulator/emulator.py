"""The emulator as one object: wires the clock, the stores and the APIs onto one HTTPS server."""

from __future__ import annotations

import http.client
import os
import ssl
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from offline.tls import ensure_tls_files

from .admin import AdminApi
from .arm import ArmDirectory
from .clock import Clock
from .config import EmulatorConfig, pipeline_summary
from .datafactory import DataFactoryApi
from .fabric import FabricApi
from .fabric_config import fabric_summary
from .faults import FaultRegistry
from .identity import BearerCheck, IdentityEndpoint, TokenAuthority, new_identity_header
from .machinelearning import MachineLearningApi, MlJobStore, region_host
from .runhistory import RunHistoryApi
from .server import Counters, Dispatcher, HttpsServer, Latency, Router, tls_context
from .spark import SparkApi
from .store import RunStore
from .synapse import SynapsePipelinesApi
from .synapse_network import SynapseNetworkApi, endpoints_of
from .workspaces import WorkspacesApi

STARTUP_TIMEOUT_S = 10.0


class Emulator:
    """ADF, Synapse (pipelines, Spark, workspace lookup), Azure ML (workspace, jobs, run history) and
    managed identity on one local port.

    ``start()`` returns once the server answers over TLS; the serving thread is a daemon, so a
    forgotten emulator does not keep the interpreter alive.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        tls_dir: Path | None = None,
        port: int = 0,
        verbose: bool = False,
        latency_s: float = 0.0,
    ) -> None:
        self.config = config or EmulatorConfig.default()
        self.tls_dir = tls_dir
        self.requested_port = port
        self.verbose = verbose
        self.clock = Clock()
        self.faults = FaultRegistry()
        self.latency = Latency(latency_s)
        self._counters = Counters()
        self.identity_header = new_identity_header()
        self.authority = TokenAuthority(
            self.clock, self.config.tenant_id, self.config.identity, self.config.token_lifetime_s
        )
        self.store = RunStore(self.clock, self.config.page_size)
        self.base_url = ""
        self.ca_bundle: Path | None = None
        self._server: HttpsServer | None = None
        self._thread: threading.Thread | None = None

        directory = ArmDirectory(
            [(f.subscription_id, f.resource_group) for f in self.config.factories]
            + [(w.subscription_id, w.resource_group) for w in self.config.workspaces]
            + [(w.subscription_id, w.resource_group) for w in self.config.ml_workspaces]
        )
        created = self.clock.now() - 90 * 24 * 3600
        self.router = Router()
        identity = IdentityEndpoint(self.authority, self.identity_header, self._counters)
        self.router.add("ManagedIdentity_GetToken", "GET", "/msi/token", identity.get_token, "identity")
        DataFactoryApi(
            self.config.factories, self.store, directory, tenant_id=self.config.tenant_id, created=created
        ).register(self.router)
        WorkspacesApi(
            self.config.workspaces,
            directory,
            tenant_id=self.config.tenant_id,
            identity=self.config.identity,
            endpoint_of=self.workspace_endpoint,
        ).register(self.router)
        SynapsePipelinesApi(self.config.workspaces, self.store).register(self.router)
        synapse_network = SynapseNetworkApi(
            self.config.workspaces, page_size=lambda: self.store.page_size, endpoint_of=self.workspace_endpoint
        )
        synapse_network.register(self.router)
        self.spark = SparkApi(self.config.workspaces, self.clock, self.config.identity, self.workspace_endpoint)
        self.spark.register(self.router)
        self.fabric = FabricApi(
            self.config.fabric_workspaces,
            self.clock,
            page_size=lambda: self.store.page_size,
            endpoint=self.fabric_endpoint,
        )
        self.fabric.register(self.router)
        self.ml_jobs = MlJobStore(self.config.ml_workspaces, self.clock)
        machine_learning = MachineLearningApi(
            self.config.ml_workspaces,
            self.ml_jobs,
            directory,
            tenant_id=self.config.tenant_id,
            created=created,
            base_url=lambda: self.base_url,
            page_size=lambda: self.store.page_size,
            connections_to=synapse_network.connections_to,
        )
        machine_learning.register(self.router)
        RunHistoryApi(machine_learning, self.ml_jobs, lambda: self.base_url).register(self.router)
        AdminApi(self).register(self.router)
        self.dispatcher = Dispatcher(
            self.router,
            faults=self.faults,
            counters=self._counters,
            latency=self.latency,
            authorize=BearerCheck(self.authority),
        )

    def workspace_endpoint(self, workspace: str) -> str:
        """The data-plane endpoint the Synapse SDKs take for ``workspace``."""
        return f"{self.base_url}/synapse/{workspace}"

    def fabric_endpoint(self) -> str:
        """Fabric's ``https://api.fabric.microsoft.com/v1`` here; the Fabric SDK takes this without ``v1``."""
        return f"{self.base_url}/v1"

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        tls_dir = self.tls_dir or Path(tempfile.mkdtemp(prefix="emulator-tls-"))
        files = ensure_tls_files(tls_dir)
        self.ca_bundle = files.ca_bundle
        server = HttpsServer(
            self.requested_port,
            self.dispatcher,
            tls_context(str(files.cert), str(files.key)),
            verbose=self.verbose,
            now=self.clock.now,
        )
        self._server = server
        self.base_url = f"https://127.0.0.1:{server.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="azure-emulator", daemon=True
        )
        self._thread.start()
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=2)
            try:
                connection.request("GET", "/_emulator/info")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                connection.close()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.port

    @property
    def info(self) -> dict[str, Any]:
        """What a client needs to talk to this instance; the CLI writes the same to its info file."""
        config = self.config
        return {
            "arm_endpoint": self.base_url,
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "identity_endpoint": f"{self.base_url}/msi/token",
            "identity_header": self.identity_header,
            "client_id": config.identity.client_id,
            "principal_id": config.identity.principal_id,
            "identity_resource_id": config.identity.resource_id,
            "tenant_id": config.tenant_id,
            "admin_endpoint": f"{self.base_url}/_emulator",
            "port": self.port if self._server else None,
            "pid": os.getpid(),
            "token_lifetime_s": self.authority.lifetime_s,
            "page_size": self.store.page_size,
            "factories": [
                {
                    "subscription_id": f.subscription_id,
                    "resource_group": f.resource_group,
                    "name": f.name,
                    "location": f.location,
                    "pipelines": pipeline_summary(f.pipelines),
                }
                for f in config.factories
            ],
            "workspaces": [
                {
                    "name": w.name,
                    "endpoint": self.workspace_endpoint(w.name),
                    "subscription_id": w.subscription_id,
                    "resource_group": w.resource_group,
                    "location": w.location,
                    "pipelines": pipeline_summary(w.pipelines),
                    "spark_pools": [
                        {"name": p.name, "node_size": p.node_size, "outcome": p.outcome} for p in w.spark_pools
                    ],
                    "managed_virtual_network": w.managed_virtual_network,
                    "exfiltration_protection": w.exfiltration_protection,
                    "managed_private_endpoints": [
                        {
                            "name": e.name,
                            "group_id": e.group_id,
                            "private_link_resource_id": e.private_link_resource_id,
                            "state": e.state,
                        }
                        for e in endpoints_of(w)
                    ],
                    "linked_services": [{"name": ls.name, "type": ls.type} for ls in w.linked_services],
                }
                for w in config.workspaces
            ],
            "ml_workspaces": [
                {
                    "subscription_id": w.subscription_id,
                    "resource_group": w.resource_group,
                    "name": w.name,
                    "location": w.location,
                    "api_endpoint": region_host(self.base_url, w.location),
                    "templates": [{"name": t.name, "job_type": t.job_type, "outcome": t.outcome} for t in w.templates],
                }
                for w in config.ml_workspaces
            ],
            "fabric": {
                "api_endpoint": self.fabric_endpoint(),
                "workspaces": fabric_summary(config.fabric_workspaces),
            },
        }

    @property
    def counters(self) -> dict[str, int]:
        """Calls per route operationId, plus ``ManagedIdentity_GetToken:<resource>`` per token resource."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

    def runs(self) -> list[dict[str, Any]]:
        """Every pipeline run, Spark batch, Fabric job instance and Azure ML job (with its started pipeline
        steps) created so far, oldest first per service.

        Each item's ``createCorrelationId`` is the ``x-ms-correlation-request-id`` its create call sent
        (``None`` without one, and for child runs), which the Azure-facing APIs never return: it is how
        a benchmark tells which of the app's requests created which run.
        """
        return [*self.store.all_runs(), *self.spark.all_batches(), *self.fabric.all_jobs(), *self.ml_jobs.all_runs()]

    def set_page_size(self, size: int) -> None:
        if not 1 <= size <= 1000:
            raise ValueError("page size must be between 1 and 1000")
        self.store.page_size = size

    def set_latency(self, seconds: float, route: str | None = None) -> None:
        self.latency.set(seconds, route)
