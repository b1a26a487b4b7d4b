"""Settings: one table, a working sample, and a drift-free OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config.catalog import parse_catalog
from shared.config.settings import SETTINGS, Settings
from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_sample_local_settings_show_every_setting_with_a_working_catalog() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert {s.name for s in SETTINGS} <= set(values)
    assert parse_catalog(values["GATEWAY_CATALOG"], "sample").targets


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [s.name for s in SETTINGS if s.name not in readme] == []


def test_auth_level_opens_only_when_explicitly_anonymous() -> None:
    assert Settings({"GATEWAY_HTTP_AUTH_LEVEL": "Anonymous"}).anonymous_http is True
    assert Settings({"GATEWAY_HTTP_AUTH_LEVEL": "anonymus"}).anonymous_http is False
    assert Settings({}).anonymous_http is False


def test_defaults_are_public_cloud() -> None:
    settings = Settings({})
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.arm_scope == "https://management.azure.com/.default"
    assert settings.synapse_scope == "https://dev.azuresynapse.net/.default"
    assert settings.alert_queue == "pipeline-failures"
    assert settings.poll_fanout is False


def test_blank_values_fall_back_to_defaults() -> None:
    assert Settings({"GATEWAY_ALERT_QUEUE": "  "}).alert_queue == "pipeline-failures"


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("GATEWAY_MAX_BODY_BYTES", "lots", lambda s: s.max_body_bytes),
        ("GATEWAY_MAX_BODY_BYTES", "-1", lambda s: s.max_body_bytes),
        ("GATEWAY_POLL_FANOUT", "maybe", lambda s: s.poll_fanout),
        ("GATEWAY_ARM_ENDPOINT", "http://insecure", lambda s: s.arm_endpoint),
        ("GATEWAY_UPSTREAM_READ_TIMEOUT", "x", lambda s: s.upstream_timeout),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, read: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        read(Settings({name: value}))  # type: ignore[operator]


def test_committed_openapi_matches_the_registered_routes() -> None:
    from function_app import app
    from shared.api.openapi import build

    committed = json.loads((ROOT / "openapi.json").read_text())
    assert committed == build(app), "openapi.json is stale: run 'make openapi'"
