"""Fixtures of the hardening tests: the offline stack, and the app served over HTTP by the local host.

The stack is the package's own (not the integration tests' session stack): some modules here stop
Azurite, move the emulator's clock past token expiry or inject faults, and replace it with one of their
own by defining ``stack`` (see ``own_stack`` in tests/conftest.py). Environment variables point the app
at whichever stack is live and are restored afterwards, so the integration tests' stack is never
disturbed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack
from shared.context import AppContext
from tests.conftest import own_stack

PROBLEM = "application/problem+json"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("hardening")) as started:
        yield started


@pytest.fixture
def app(context: AppContext) -> AppContext:
    """The test's own context (tests/conftest.py), under the name these tests give it."""
    return context


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
