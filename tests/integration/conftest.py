"""The offline stack for integration tests: one emulator and one Azurite per test worker.

Each test gets its own table and queues (fresh names), so tests sharing the stack never see each
other's runs; the app reaches both through the real azure-identity and HTTPS, as in Azure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from offline.emulator import ActivitySpec, EmulatorConfig, PipelineSpec
from offline.stack import OfflineStack, catalog_for
from shared.azure.identity import reset_token_provider
from shared.config.settings import Settings
from shared.context import AppContext, set_app_context
from shared.functions.index import user_function


def integration_config() -> EmulatorConfig:
    """The sample estate, plus a pipeline that runs for an hour (overdue and cancel tests)."""
    sample = EmulatorConfig.default()
    factory = sample.factories[0]
    long_running = PipelineSpec(
        "long_running", queue_s=5, duration_s=3600, activities=(ActivitySpec("WaitForPartner", "Until"),)
    )
    return replace(sample, factories=(replace(factory, pipelines=(*factory.pipelines, long_running)),))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with OfflineStack(tmp_path_factory.mktemp("stack"), emulator_config=integration_config()) as started:
        started.apply_environment()
        reset_token_provider()
        yield started
        reset_token_provider()


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "GATEWAY_RUNS_TABLE": f"runs{suffix}",
        "GATEWAY_ALERT_QUEUE": f"alerts-{suffix}",
        "GATEWAY_POLL_QUEUE": f"poll-{suffix}",
    }


@pytest.fixture
def context(stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    """An app context of the test's own (own table and queues), installed as the process's."""
    stack.emulator.faults.clear()
    app = AppContext(Settings({**os.environ, **names}))
    set_app_context(app)
    yield app
    set_app_context(None)


def install_context(
    stack: OfflineStack, names: dict[str, str], *, settings: dict[str, str] | None = None, **first_target: Any
) -> AppContext:
    """Installs a context of the test's own; ``first_target`` changes the first catalog target."""
    catalog = catalog_for(stack.emulator.info)
    catalog["targets"][0].update(first_target)
    app = AppContext(Settings({**os.environ, **names, "GATEWAY_CATALOG": json.dumps(catalog), **(settings or {})}))
    set_app_context(app)
    return app


@pytest.fixture
def adf(stack: OfflineStack) -> str:
    return str(stack.emulator.info["factories"][0]["name"])


@pytest.fixture
def synapse(stack: OfflineStack) -> str:
    return str(stack.emulator.info["workspaces"][0]["name"])


def http_request(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpRequest:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    all_headers = {"content-type": "application/json", **(headers or {})}
    return func.HttpRequest(
        method,
        f"https://gateway.example/api/{path}",
        headers=all_headers,
        params=params or {},
        route_params=route_params or {},
        body=raw,
    )


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def call(function_name: str, request: func.HttpRequest) -> func.HttpResponse:
    """Calls the function as registered in the app (route metadata, error mapping and all)."""
    from function_app import app

    response = user_function(app, function_name)(request)
    assert isinstance(response, func.HttpResponse)
    return response


def start(target: str, pipeline: str, body: Any = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return call(
        "start_pipeline_run",
        http_request(
            "POST",
            f"targets/{target}/pipelines/{pipeline}/runs",
            body if body is not None else {},
            headers,
            route_params={"target": target, "pipeline": pipeline},
        ),
    )
