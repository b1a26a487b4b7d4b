"""Fixtures and helpers that more than one test folder uses: the CA, the offline stack, the app's context.

What one folder alone needs stays in that folder's conftest. The folders that run the app (integration,
hardening, cli) each start a stack of their own and define ``stack`` for it, because they differ in how
long it lives and in how its environment is applied; the fixtures here that take ``stack`` get whichever
the requesting test's folder (or module) defines.

The app (``shared``, ``function_app``) is imported inside the helpers that use it, not at the top: the
emulator, offline and infra tests never run it, and so still collect and run while it does not import.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import pytest

from offline.emulator import ActivitySpec, EmulatorConfig, PipelineSpec
from offline.emulator.config import JobTemplateSpec, MlWorkspaceSpec, PrivateEndpointConnectionSpec
from offline.stack import OfflineStack, catalog_for
from offline.tls import TlsFiles, ensure_tls_files

if TYPE_CHECKING:
    from shared.context import AppContext

# --- The clock -----------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-years-ahead",
        type=int,
        default=0,
        help="Run with the process clock this many years ahead: no test may depend on today's date.",
    )


@pytest.fixture(scope="session", autouse=True)
def clock_ahead(request: pytest.FixtureRequest) -> Iterator[None]:
    """``make test`` runs the suites without servers again under a clock years ahead (servers keep the
    real clock, so the suites that start them cannot travel)."""
    years = int(request.config.getoption("--clock-years-ahead"))
    if not years:
        yield
        return
    import time_machine

    with time_machine.travel(datetime.now(UTC) + timedelta(days=365 * years), tick=True):
        yield


# --- The CA ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA per test worker: generating keys is the slowest part of starting an emulator or Azurite."""
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def tls_files(tls_dir: Path) -> TlsFiles:
    """The worker's CA bundle and server certificate (the same files an emulator given ``tls_dir`` serves)."""
    return ensure_tls_files(tls_dir)


# --- The offline stack -------------------------------------------------------------------------------


def integration_config() -> EmulatorConfig:
    """The sample estate, plus a pipeline that runs for an hour (overdue and cancel tests) and one that
    declares its parameters, the gateway's correlation parameter among them (ownership tests)."""
    sample = EmulatorConfig.default()
    factory = sample.factories[0]
    long_running = PipelineSpec(
        "long_running", queue_s=5, duration_s=3600, activities=(ActivitySpec("WaitForPartner", "Until"),)
    )
    correlated = PipelineSpec("correlated", parameters={"gatewayRunId": "String", "probe": "String"})
    # An Azure ML workspace reachable only privately, with a connection in each approval state.
    secure_aml = MlWorkspaceSpec(
        "secure-aml",
        public_network_access="Disabled",
        isolation_mode="AllowOnlyApprovedOutbound",
        templates=(
            JobTemplateSpec("train_model"),
            JobTemplateSpec(
                "fit_model",
                outcome="Failed",
                error_code="SystemError",
                error_message="Compute node lost: the job's node was preempted.",
                log_lines=("Epoch 1/3 - loss: 0.412", "Node preempted"),
            ),
        ),
        private_endpoint_connections=(
            PrivateEndpointConnectionSpec("pe-gateway", "Approved"),
            PrivateEndpointConnectionSpec("pe-analytics", "Pending"),
            PrivateEndpointConnectionSpec("pe-old-vnet", "Rejected"),
        ),
    )
    return replace(
        sample,
        factories=(replace(factory, pipelines=(*factory.pipelines, long_running, correlated)),),
        ml_workspaces=(*sample.ml_workspaces, secure_aml),
    )


@contextmanager
def own_stack(workdir: Path, config: EmulatorConfig | None = None) -> Iterator[OfflineStack]:
    """A started stack the process's environment points at, restored after.

    Restoring matters because one worker runs several folders, each with a stack of its own: the one
    that ends must not leave the next pointed at servers that have stopped.
    """

    saved = dict(os.environ)
    with OfflineStack(workdir, emulator_config=config or integration_config()) as stack:
        stack.apply_environment()
        try:
            yield stack
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
def adf(stack: OfflineStack) -> str:
    return str(stack.emulator.info["factories"][0]["name"])


@pytest.fixture
def synapse(stack: OfflineStack) -> str:
    return str(stack.emulator.info["workspaces"][0]["name"])


@pytest.fixture
def aml(stack: OfflineStack) -> str:
    return str(stack.emulator.info["ml_workspaces"][0]["name"])


# --- The app's context -------------------------------------------------------------------------------


@pytest.fixture
def names() -> dict[str, str]:
    """A table and queues of the test's own, so tests sharing a stack never see each other's runs."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "GATEWAY_RUNS_TABLE": f"runs{suffix}",
        "GATEWAY_ALERT_QUEUE": f"alerts-{suffix}",
        "GATEWAY_POLL_QUEUE": f"poll-{suffix}",
    }


def catalog_with(stack: OfflineStack, **first_target: Any) -> dict[str, Any]:
    """The stack's catalog with the first target changed."""
    catalog = catalog_for(stack.emulator.info)
    catalog["targets"][0].update(first_target)
    return catalog


def install(
    stack: OfflineStack,
    names: dict[str, str],
    catalog: dict[str, Any] | None = None,
    *,
    settings: dict[str, str] | None = None,
) -> AppContext:
    """A context of the test's own (own table and queues, optionally its own catalog), as the process's.

    ``settings`` come last, so they override the environment, ``names`` and ``catalog``.
    """
    from shared.config.settings import Settings
    from shared.context import AppContext, set_app_context

    values = {**os.environ, **names}
    if catalog is not None:
        values["GATEWAY_CATALOG"] = json.dumps(catalog)
    context = AppContext(Settings({**values, **(settings or {})}))
    set_app_context(context)
    return context


def install_context(
    stack: OfflineStack, names: dict[str, str], *, settings: dict[str, str] | None = None, **first_target: Any
) -> AppContext:
    """Installs a context of the test's own; ``first_target`` changes the first catalog target."""
    return install(stack, names, catalog_with(stack, **first_target), settings=settings)


@pytest.fixture
def context(stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    """An app context of the test's own (own table and queues), installed as the process's.

    Faults are cleared before and after: the stack outlives the test, and a fault one test left behind
    would fail the next one's calls.
    """
    from shared.context import set_app_context

    stack.emulator.faults.clear()
    yield install(stack, names)
    set_app_context(None)
    stack.emulator.faults.clear()


# --- Calling the functions in process ----------------------------------------------------------------


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
    from shared.functions.index import user_function

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
