"""Fixtures of the hardening tests: the offline stack, and the app served over HTTP by the local host.

The stack is the package's own (not the integration tests' session stack): some modules here stop
Azurite, move the emulator's clock past token expiry or inject faults, and replace it with one of their
own by defining ``stack`` (see ``own_stack``). Environment variables point the app at whichever stack is
live and are restored afterwards, so the integration tests' stack is never disturbed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from offline.emulator import EmulatorConfig
from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack, catalog_for
from shared.azure.identity import reset_token_provider
from shared.config.settings import Settings
from shared.context import AppContext, set_app_context
from tests.integration.conftest import integration_config

PROBLEM = "application/problem+json"


@contextmanager
def own_stack(workdir: Path, config: EmulatorConfig | None = None) -> Iterator[OfflineStack]:
    """A started stack the process's environment points at, restored (with a fresh identity) after."""
    saved = dict(os.environ)
    with OfflineStack(workdir, emulator_config=config or integration_config()) as stack:
        stack.apply_environment()
        reset_token_provider()
        try:
            yield stack
        finally:
            os.environ.clear()
            os.environ.update(saved)
            reset_token_provider()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("hardening")) as started:
        yield started


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "GATEWAY_RUNS_TABLE": f"runs{suffix}",
        "GATEWAY_ALERT_QUEUE": f"alerts-{suffix}",
        "GATEWAY_POLL_QUEUE": f"poll-{suffix}",
    }


def install(stack: OfflineStack, names: dict[str, str], catalog: dict[str, Any] | None = None) -> AppContext:
    """A context of the test's own (own table and queues, optionally its own catalog), as the process's."""
    settings = {**os.environ, **names}
    if catalog is not None:
        settings["GATEWAY_CATALOG"] = json.dumps(catalog)
    context = AppContext(Settings(settings))
    set_app_context(context)
    return context


@pytest.fixture
def app(stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    stack.emulator.faults.clear()
    yield install(stack, names)
    set_app_context(None)
    stack.emulator.faults.clear()


@pytest.fixture
def adf(stack: OfflineStack) -> str:
    return str(stack.emulator.info["factories"][0]["name"])


@pytest.fixture
def synapse(stack: OfflineStack) -> str:
    return str(stack.emulator.info["workspaces"][0]["name"])


@pytest.fixture(scope="module")
def host(stack: OfflineStack) -> Iterator[LocalHost]:
    """The real app on the local Functions host: routes, auth levels and keys from its own metadata."""
    from function_app import app as function_app

    with LocalHost(function_app, host_json=ROOT / "host.json") as local:
        yield local


@pytest.fixture
def api(host: LocalHost) -> Iterator[requests.Session]:
    """A caller as APIM is: the function key on every request."""
    with requests.Session() as session:
        session.headers["x-functions-key"] = host.function_key
        yield session


def catalog_with(stack: OfflineStack, **first_target: Any) -> dict[str, Any]:
    """The stack's catalog with the first target changed."""
    catalog = catalog_for(stack.emulator.info)
    catalog["targets"][0].update(first_target)
    return catalog


def problem(response: requests.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """The problem document of an error response, checked to be one."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    document: dict[str, Any] = response.json()
    assert document["status"] == status and document["detail"] and document["correlationId"]
    assert response.headers["x-correlation-id"] == document["correlationId"]
    if slug is not None:
        assert document["type"].endswith("/" + slug), document
    return document
