"""Caps on paid compute hold across instances, refuse with 429 and Retry-After before Azure is asked,
and catalog rules match names as Azure does (case-insensitively)."""

from __future__ import annotations

from typing import Any

import pytest

from offline.stack import OfflineStack, catalog_for
from shared.config.catalog import parse_catalog
from shared.context import AppContext, set_app_context
from shared.errors import ConfigurationError
from tests.conftest import body_of, install, start


def catalog(stack: OfflineStack, **changes: Any) -> dict[str, Any]:
    document = catalog_for(stack.emulator.info)
    document.update(changes)
    return document


def as_product(product: str) -> dict[str, str]:
    return {"x-apim-product-id": product, "x-apim-subscription-id": f"sub-{product}"}


def test_a_product_over_its_start_rate_gets_429_before_azure_is_asked(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    install(stack, names, catalog(stack, productLimits={"erp": {"startsPerMinute": 2}}))
    before = len(stack.emulator.runs())
    answers = [start(adf, "daily_load", {}, as_product("erp")) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    problem = body_of(answers[2])
    assert problem["limit"] == "startsPerMinute" and problem["scope"] == "API product erp"
    assert 0 < int(answers[2].headers["Retry-After"]) <= 60
    assert len(stack.emulator.runs()) == before + 2, "the refused start reached nothing"
    assert start(adf, "daily_load", {}, as_product("finance")).status_code == 202, "other products are apart"


def test_the_start_rate_holds_across_instances(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    document = catalog(stack, productLimits={"*": {"startsPerMinute": 3}})
    first = install(stack, names, document)
    second = AppContext(first.settings)  # another instance: its own clients, the same table
    answers = []
    for instance in (first, second, first, second):
        set_app_context(instance)
        answers.append(start(adf, "daily_load", {}, as_product("erp")).status_code)
    assert answers == [202, 202, 202, 429]


def test_runs_in_flight_are_capped_per_catalog_entry_and_a_keyed_retry_still_replays(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    document = catalog(stack)
    document["targets"][0]["pipelines"] = [{"match": "long_running", "maxRunsInFlight": 1}, "*"]
    install(stack, names, document)
    keyed = {**as_product("erp"), "Idempotency-Key": "cap-1"}

    first = start(adf, "long_running", {}, keyed)
    second = start(adf, "long_running", {}, as_product("finance"))
    replay = start(adf, "long_running", {}, keyed)

    assert first.status_code == 202 and second.status_code == 429
    assert body_of(second)["limit"] == "maxRunsInFlight" and "'long_running' on target" in body_of(second)["scope"]
    assert replay.status_code == 202 and replay.headers.get("Idempotent-Replayed") == "true"
    assert start(adf, "daily_load", {}, as_product("finance")).status_code == 202, "other entries are not capped"


def test_rules_match_names_as_azure_does_and_the_run_keeps_azures_spelling(
    stack: OfflineStack, names: dict[str, str], adf: str
) -> None:
    document = catalog(stack)
    document["targets"][0]["pipelines"] = [
        {"match": "copy_sales", "products": ["finance"]},
        {"match": "*", "products": ["nobody"]},
    ]
    app = install(stack, names, document)

    refused = start(adf, "copy_SALES", {}, as_product("nobody"))
    accepted = start(adf, "COPY_sales", {}, as_product("finance"))

    assert refused.status_code == 403
    assert accepted.status_code == 202
    assert app.registry.get(body_of(accepted)["id"]).pipeline == "copy_sales"


def test_a_cap_is_validated_with_the_catalog_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"productLimits\.erp\.startsPerMinute"):
        parse_catalog('{"targets": [], "productLimits": {"erp": {"startsPerMinute": 0}}}', "test")
