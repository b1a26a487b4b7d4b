"""Who may call what: the host's function-key check on every route but health, the catalog's products
per pipeline (a refusal is audited), and a health endpoint that tells nothing an attacker could use."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack
from shared.context import AppContext, set_app_context
from tests.conftest import catalog_with, install
from tests.hardening.conftest import problem

DOCUMENT = json.loads((ROOT / "openapi.json").read_text())
EXAMPLES = {
    "target": "contoso-adf",
    "pipeline": "daily_load",
    "pool": "small",
    "template": "train_model",
    "id": "contoso-adf.0000000000000aaaaaaaa",
}
OPERATIONS = [
    (method.upper(), path.format(**EXAMPLES), operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_route_but_health_needs_a_function_key(
    app: AppContext, host: LocalHost, method: str, path: str, operation: dict[str, Any]
) -> None:
    """The local host enforces each function's auth level from the app's metadata, as the Functions host
    does; the document says the same (operation security), so APIM sends the key."""
    anonymous = operation.get("security") == []
    for headers in ({}, {"x-functions-key": "not-the-key"}, {"x-functions-key": host.master_key[:-1]}):
        response = requests.request(method, f"{host.url}{path}", json={}, headers=headers, timeout=30)
        if anonymous:
            assert response.status_code == 200
        else:
            assert (response.status_code, response.content) == (401, b"")
    assert anonymous == (path == "/api/health")


@pytest.mark.parametrize("how", ["host key", "function key", "master key", "code in the query"])
def test_the_keys_the_functions_host_accepts(app: AppContext, host: LocalHost, how: str) -> None:
    url, headers = f"{host.api_url}/targets", {}
    if how == "host key":
        headers["x-functions-key"] = host.function_key
    elif how == "function key":
        headers["x-functions-key"] = host.function_keys["list_targets"]
    elif how == "master key":
        headers["x-functions-key"] = host.master_key
    else:
        url += f"?code={host.function_key}"
    assert requests.get(url, headers=headers, timeout=30).status_code == 200


def test_a_product_the_catalog_does_not_allow_gets_403_and_the_refusal_is_audited(
    stack: OfflineStack,
    names: dict[str, str],
    api: requests.Session,
    host: LocalHost,
    adf: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = install(
        stack, names, catalog_with(stack, pipelines=[{"match": "copy_*", "products": ["erp"]}, "daily_*"])
    )
    before = len(stack.emulator.runs())
    url = f"{host.api_url}/targets/{adf}/pipelines/copy_sales/runs"
    caller = {"x-apim-subscription-id": "sub-marketing-7", "x-apim-product-id": "marketing"}
    try:
        with caplog.at_level(logging.INFO, logger="pipeline_gateway.audit"):
            document = problem(api.post(url, json={}, headers=caller, timeout=30), 403, "not-allowed")
        assert "copy_sales" in document["detail"]
        (audit,) = [r for r in caplog.records if r.name == "pipeline_gateway.audit"]
        assert audit.levelno == logging.WARNING
        assert audit.audit_subscription == "sub-marketing-7" and audit.audit_product == "marketing"  # type: ignore[attr-defined]
        assert audit.audit_action == f"POST /api/targets/{adf}/pipelines/copy_sales/runs"  # type: ignore[attr-defined]
        assert audit.audit_outcome == "refused"  # type: ignore[attr-defined]
        assert audit.correlation_id == document["correlationId"]  # type: ignore[attr-defined]
        assert len(stack.emulator.runs()) == before and context.registry.list_runs(limit=5)[0] == []
        allowed = {"x-apim-subscription-id": "sub-erp-1", "x-apim-product-id": "erp"}
        assert api.post(url, json={}, headers=allowed, timeout=30).status_code == 202
        assert api.post(
            f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs", json={}, headers=caller, timeout=30
        ).ok
    finally:
        set_app_context(None)


def test_health_says_ok_and_nothing_else(app: AppContext, stack: OfflineStack, host: LocalHost) -> None:
    before = stack.emulator.counters
    response = requests.get(f"{host.api_url}/health", timeout=30)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["Cache-Control"] == "no-store"
    assert stack.emulator.counters == before  # no upstream call, no token


def test_health_of_a_misconfigured_app_does_not_say_what_is_wrong(
    stack: OfflineStack, names: dict[str, str], host: LocalHost
) -> None:
    broken = catalog_with(stack, subscriptionId="not-a-guid-but-a-secret-4711")
    install(stack, names, broken)
    try:
        response = requests.get(f"{host.api_url}/health", timeout=30)
    finally:
        set_app_context(None)
    assert (response.status_code, response.json()) == (503, {"status": "misconfigured"})
    assert "4711" not in response.text and "subscriptionId" not in response.text
