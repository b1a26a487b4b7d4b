"""The pure rules behind product isolation: who is a tenant of what, which host a link may name, which
continuation tokens the registry takes back."""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest

from shared.api.http import base_url
from shared.config.catalog import parse_catalog
from shared.errors import ValidationFailed
from shared.runs.model import Run, RunStatus, new_run_id, utcnow
from shared.runs.paging import Cursor
from shared.runs.registry import _decode_cursor, _encode_cursor, tenant
from shared.runs.service import Caller


def run_of(product: str | None) -> Run:
    now = utcnow()
    return Run(new_run_id("sales"), "sales", "datafactory", "daily_load", RunStatus.QUEUED, now, now, product=product)


def caller(product: str | None, *, operator: bool = False) -> Caller:
    return Caller(subscription="sub", product=product, correlation_id="c", operator=operator)


def test_a_product_is_a_tenant_and_calls_without_one_are_another() -> None:
    assert tenant("erp") == "product:erp" and tenant(None) == "direct"
    assert tenant("direct") != tenant(None), "a product named 'direct' is not the productless tenant"
    assert caller("erp").sees(run_of("erp")) and not caller("erp").sees(run_of("finance"))
    assert caller(None).sees(run_of(None)) and not caller(None).sees(run_of("erp"))
    assert not caller("erp").sees(run_of(None))
    assert caller("platform", operator=True).sees(run_of("erp")) and caller("platform", operator=True).tenant is None
    assert caller("erp").tenant == "product:erp" and caller(None).tenant == "direct"


def test_operator_products_come_from_the_catalog() -> None:
    catalog = parse_catalog('{"targets": [], "operatorProducts": ["platform"]}', "test")
    assert catalog.is_operator("platform")
    assert not catalog.is_operator("erp") and not catalog.is_operator(None)
    assert not parse_catalog('{"targets": []}', "test").is_operator("platform")


def request(url: str) -> func.HttpRequest:
    return func.HttpRequest("GET", url, headers={}, params={}, route_params={}, body=b"")


@pytest.mark.parametrize(
    ("url", "configured", "own", "expected"),
    [
        ("https://evil.example/api/runs", None, None, "/api"),
        ("https://evil.example/api/runs", None, "gw.azurewebsites.net", "/api"),
        ("https://gw.azurewebsites.net/api/runs", None, "gw.azurewebsites.net", "https://gw.azurewebsites.net/api"),
        (
            "https://GW.azurewebsites.net:443/api/runs",
            None,
            "gw.azurewebsites.net",
            "https://gw.azurewebsites.net:443/api",
        ),
        ("http://127.0.0.1:7071/api/runs", None, "127.0.0.1:7071", "http://127.0.0.1:7071/api"),
        ("http://127.0.0.1:7072/api/runs", None, "127.0.0.1:7071", "/api"),
        ("https://gw.azurewebsites.net.evil.example/api", None, "gw.azurewebsites.net", "/api"),
        (
            "https://evil.example/api/runs",
            "https://apim.example/pipelines/api",
            None,
            "https://apim.example/pipelines/api",
        ),
    ],
)
def test_links_name_a_host_only_when_it_is_the_apps_own(
    url: str, configured: str | None, own: str | None, expected: str
) -> None:
    assert base_url(request(url), configured, own) == expected


def token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


KEY = "8203929002608j627n2nh"


def test_continuation_tokens_round_trip() -> None:
    cursor = Cursor(("sales", KEY), ("1!8!c2FsZXM-", None), ("YQ==", "bGl2ZS0w"), ("sales", KEY, 0))
    assert _decode_cursor(_encode_cursor(cursor), "sales") == cursor
    assert _decode_cursor(_encode_cursor(Cursor(("sales", KEY))), None) == Cursor(("sales", KEY))


@pytest.mark.parametrize(
    "raw",
    [
        "garbage!",
        token({"PartitionKey": "sales", "RowKey": "live-" + KEY}),  # the old format: Azure's own token
        token({"a": ["sales", "not-a-key"]}),
        token({"a": ["Sales!", KEY]}),
        token({"a": ["sales", KEY], "l": ["x" * 300, None]}),
        token({"a": ["sales", KEY], "p": ["a", "b"], "u": ["sales", KEY, True]}),
        token({"a": ["lake", KEY]}),  # another target's listing
        token(["sales", KEY]),
    ],
)
def test_tokens_the_registry_did_not_write_for_this_listing_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _decode_cursor(raw, "sales")
    assert refused.value.errors[0]["field"] == "continuation"
