"""Fixtures for the emulator's fidelity tests: an emulator per module, real SDK clients per test.

Timing-sensitive pipelines here queue and run for tens of emulated seconds, so a slow machine never
sees a run move on its own; tests move the emulated clock instead of sleeping.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.synapse.artifacts import ArtifactsClient

from offline.emulator import (
    ActivitySpec,
    Emulator,
    EmulatorConfig,
    FactorySpec,
    FailureSpec,
    PipelineSpec,
    WorkspaceSpec,
)
from offline.emulator.config import SAMPLE_FACTORY, SAMPLE_WORKSPACE

ARM = "https://management.azure.com"
SYNAPSE = "https://dev.azuresynapse.net"

SLOW = {"queue_s": 30.0, "duration_s": 60.0}
SLOW_PIPELINES = (
    PipelineSpec(
        "slow_ok",
        activities=(
            ActivitySpec("Extract", "Copy"),
            ActivitySpec("Transform", "DatabricksNotebook"),
            ActivitySpec("Load", "Copy"),
        ),
        **SLOW,
    ),
    PipelineSpec(
        "slow_fail",
        outcome="Failed",
        activities=(
            ActivitySpec("Extract", "Copy"),
            ActivitySpec("Transform", "DatabricksNotebook"),
            ActivitySpec("Load", "Copy"),
        ),
        failure=FailureSpec("Transform", "3204", "Job failed: notebook raised ValueError('bad row')", "UserError"),
        **SLOW,
    ),
    PipelineSpec(
        "parent",
        activities=(ActivitySpec("RunChild", "ExecutePipeline", pipeline="slow_ok"), ActivitySpec("After", "Wait")),
        queue_s=10.0,
        duration_s=10.0,
    ),
    PipelineSpec("paged", **SLOW),
    PipelineSpec("load_test", **SLOW),
    PipelineSpec(
        "typed",
        activities=(
            ActivitySpec("LookupWatermark", "Lookup"),
            ActivitySpec("RunChild", "ExecutePipeline", pipeline="slow_ok"),
            ActivitySpec("Settle", "Wait"),
        ),
        parameters={"day": "String", "tables": "Array", "limit": "Int", "password": "SecureString"},
        **SLOW,
    ),
    PipelineSpec("declares_nothing", parameters={}, **SLOW),
)


def fidelity_config() -> EmulatorConfig:
    """The sample estate plus slow pipelines; names and outcomes of the sample stay as shipped."""
    factory = replace(SAMPLE_FACTORY, pipelines=(*SAMPLE_FACTORY.pipelines, *SLOW_PIPELINES))
    workspace = replace(SAMPLE_WORKSPACE, pipelines=(*SAMPLE_WORKSPACE.pipelines, *SLOW_PIPELINES))
    other = FactorySpec("other-adf", resource_group="rg-other")
    return EmulatorConfig(factories=(factory, other), workspaces=(workspace, WorkspaceSpec("empty-syn")))


@pytest.fixture(scope="module")
def emu(tls_dir: Path) -> Iterator[Emulator]:
    """The module's emulator, on the worker's CA (``tls_dir`` in tests/conftest.py)."""
    with Emulator(fidelity_config(), tls_dir=tls_dir) as emulator:
        yield emulator


@pytest.fixture
def info(emu: Emulator) -> dict[str, Any]:
    emu.faults.clear()
    emu.set_page_size(100)
    emu.set_latency(0)
    return emu.info


@pytest.fixture
def credential(info: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ManagedIdentityCredential:
    monkeypatch.setenv("IDENTITY_ENDPOINT", info["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", info["identity_header"])
    return ManagedIdentityCredential(client_id=info["client_id"], connection_verify=info["ca_bundle"])


@pytest.fixture
def factory(info: dict[str, Any]) -> dict[str, Any]:
    return dict(info["factories"][0])


@pytest.fixture
def workspace(info: dict[str, Any]) -> dict[str, Any]:
    return dict(info["workspaces"][0])


@pytest.fixture
def adf(
    credential: ManagedIdentityCredential, info: dict[str, Any], factory: dict[str, Any]
) -> DataFactoryManagementClient:
    """azure-mgmt-datafactory on the sample factory's subscription, as the app builds it."""
    return DataFactoryManagementClient(
        credential, factory["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
    )


@pytest.fixture
def artifacts(
    credential: ManagedIdentityCredential, info: dict[str, Any], workspace: dict[str, Any]
) -> ArtifactsClient:
    """azure-synapse-artifacts on the sample workspace's data-plane endpoint."""
    return ArtifactsClient(credential, workspace["endpoint"], connection_verify=info["ca_bundle"])


def window(emulator: Emulator, hours: float = 1.0) -> tuple[datetime, datetime]:
    """A lastUpdated window around the emulated now (which tests move forward)."""
    now = datetime.fromtimestamp(emulator.clock.now(), UTC)
    return now - timedelta(hours=hours), now + timedelta(hours=hours)


def iso_window(emulator: Emulator, hours: float = 1.0) -> dict[str, str]:
    after, before = window(emulator, hours)
    return {"lastUpdatedAfter": after.isoformat(), "lastUpdatedBefore": before.isoformat()}


def factory_path(factory: dict[str, Any], suffix: str = "", api_version: str | None = "2018-06-01") -> str:
    path = (
        f"/subscriptions/{factory['subscription_id']}/resourceGroups/{factory['resource_group']}"
        f"/providers/Microsoft.DataFactory/factories/{factory['name']}{suffix}"
    )
    return f"{path}?api-version={api_version}" if api_version else path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes
    body: Any = field(default=None)


class RawClient:
    """Plain HTTPS calls, for what the SDKs hide: status codes, headers, error bodies."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.context = ssl.create_default_context(cafile=str(emulator.ca_bundle))

    def token(self, resource: str) -> str:
        return self.emulator.authority.mint(resource)[0]

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.emulator.port, context=self.context, timeout=30)

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: str | None = ARM,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        connection: http.client.HTTPSConnection | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if auth is not None:
            sent.setdefault("Authorization", f"Bearer {self.token(auth)}" if auth.startswith("https://") else auth)
        payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        own = connection is None
        conn = connection or self.connection()
        try:
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
        finally:
            if own:
                conn.close()
        if raw:
            reply.body = json.loads(raw)
        return reply


@pytest.fixture
def raw(emu: Emulator, info: dict[str, Any]) -> RawClient:
    return RawClient(emu)
