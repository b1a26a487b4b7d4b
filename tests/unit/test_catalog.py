"""The catalog is validated whole, and its errors name the bad field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.config.catalog import load_catalog, parse_catalog
from shared.config.settings import Settings
from shared.errors import ConfigurationError, NotAllowed, TargetNotFound
from shared.kinds.datafactory import DataFactoryTarget
from shared.kinds.registry import kind_for
from shared.kinds.synapse import SynapseTarget

SUB = "00000000-0000-0000-0000-000000000001"


def adf(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "sales",
        "kind": "datafactory",
        "subscriptionId": SUB,
        "resourceGroup": "rg-data",
        "factoryName": "contoso-adf",
        "pipelines": ["daily_load", {"match": "copy_*", "products": ["erp"], "maxDurationMinutes": 30}],
        **overrides,
    }


def syn(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "lake",
        "kind": "synapse",
        "workspaceName": "contoso-syn",
        "endpoint": "https://contoso-syn.dev.azuresynapse.net/",
        "pipelines": ["refresh_*"],
        "sparkPools": ["small"],
        **overrides,
    }


def catalog(*targets: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"targets": list(targets), **extra})


def test_parses_both_kinds_and_normalizes_shorthand() -> None:
    parsed = parse_catalog(catalog(adf(), syn()), "test")
    sales, lake = parsed.targets
    assert isinstance(sales, DataFactoryTarget) and isinstance(lake, SynapseTarget)
    assert sales.pipelines[0].match == "daily_load"
    assert lake.endpoint == "https://contoso-syn.dev.azuresynapse.net"
    assert sales.resource_id == (
        f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/contoso-adf"
    )


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (adf(factoryName="bad_name"), "targets[0].factoryName"),
        (adf(subscriptionId="not-a-guid"), "targets[0].subscriptionId"),
        (adf(resourceGroup="rg/../x"), "targets[0].resourceGroup"),
        (adf(name="Sales!"), "targets[0].name"),
        (adf(pipelines=["ok", "bad/../name"]), "targets[0].pipelines"),
        (adf(kind="cosmos"), "targets[0]"),
        (syn(endpoint="http://plain.example"), "targets[0].endpoint"),
        (syn(workspaceName="UPPER"), "targets[0].workspaceName"),
        (adf(unexpected=True), "targets[0].unexpected"),
    ],
)
def test_errors_name_the_bad_field(target: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_catalog(catalog(target), "App setting GATEWAY_CATALOG")
    assert field in caught.value.detail
    assert caught.value.detail.startswith("App setting GATEWAY_CATALOG is invalid")


def test_target_names_must_be_unique() -> None:
    with pytest.raises(ConfigurationError, match="used twice"):
        parse_catalog(catalog(adf(), adf()), "test")


def test_not_json_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        parse_catalog("{targets:", "test")


def test_access_rules_exact_glob_and_products() -> None:
    sales = parse_catalog(catalog(adf()), "test").get("sales")
    kind = kind_for("pipelines", sales)
    assert kind.rule(sales, "daily_load", None).match == "daily_load"
    assert kind.rule(sales, "copy_sales", "erp").max_duration_minutes == 30
    with pytest.raises(NotAllowed, match="not available to your API product"):
        kind.rule(sales, "copy_sales", "marketing")
    with pytest.raises(NotAllowed, match="not available to your API product"):
        kind.rule(sales, "copy_sales", None)
    with pytest.raises(NotAllowed, match="not in the catalog"):
        kind.rule(sales, "drop_tables", None)


def test_unknown_target() -> None:
    with pytest.raises(TargetNotFound):
        parse_catalog(catalog(adf()), "test").get("nope")


def test_cancel_alerts_follow_the_target_then_the_catalog() -> None:
    parsed = parse_catalog(catalog(adf(alertOnCancelled=True), syn(), alertOnCancelled=False), "t")
    assert parsed.alerts_on_cancel(parsed.get("sales")) is True
    assert parsed.alerts_on_cancel(parsed.get("lake")) is False


def test_loads_from_setting_or_file(tmp_path: Any) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(catalog(syn()))
    assert load_catalog(Settings({"GATEWAY_CATALOG_FILE": str(path)})).get("lake")
    assert load_catalog(Settings({"GATEWAY_CATALOG": catalog(adf())})).get("sales")
    with pytest.raises(ConfigurationError, match="No catalog"):
        load_catalog(Settings({}))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_catalog(Settings({"GATEWAY_CATALOG_FILE": str(tmp_path / "missing.json")}))
