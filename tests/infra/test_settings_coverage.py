"""Every app setting the code reads (shared/settings.py) is set by the Bicep or documented as
optional, every setting the Bicep sets is one the app or the Functions host knows, and every
%SETTING% a binding resolves exists in Azure."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.config.settings import SETTINGS
from tests.infra._support import INFRA, MODULES, REPO, app_bindings, object_keys, parse_bicep

FUNCTION_APP = MODULES / "function-app.bicep"

# Settings the Bicep sets for the Functions host, the Python worker and the platform rather than for the
# app's code.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_ENABLE_OPENTELEMETRY",
}

# Settings the Bicep sets ahead of the app reading them. Each entry says why; delete it once
# shared/settings.py declares the setting (the test below then checks it like every other one).
PENDING_APP_SETTINGS: dict[str, str] = {}


def bicep_app_settings() -> dict[str, Any]:
    """Every app setting the Bicep sets on the function app: name -> Bicep expression."""
    module = parse_bicep(FUNCTION_APP)
    variables = module["variables"]
    text = FUNCTION_APP.read_text(encoding="utf-8")
    union = re.search(r"var appSettings = union\(([^)]*)\)", text)
    assert union, "function-app.bicep must build appSettings with union(...)"
    parts = [part.strip() for part in union.group(1).split(",")]
    assert parts[0] == "gatewaySettings", "the GATEWAY_* settings from main.bicep come first (module wins)"
    settings: dict[str, Any] = {}
    main_settings = parse_bicep(INFRA / "main.bicep")["variables"]["gatewaySettings"]["value"]
    settings.update({key.strip("'"): value for key, value in main_settings.items()})
    for part in parts[1:]:
        value = variables[part]["value"]
        if "operator" in value:  # `empty(x) ? {} : {...}`: settings set only when x is given
            operands = value["operator"]["operands"]
            value = {**operands["true_value"], **operands["false_value"]}
        settings.update({key.strip("'"): item for key, item in value.items()})
    # The module really passes them all into siteConfig.appSettings.
    assert "appSettings: [for setting in items(appSettings)" in text
    return settings


def test_required_settings_are_set_by_the_bicep() -> None:
    bicep = bicep_app_settings()
    missing = [s.name for s in SETTINGS if s.required_in_azure and s.name not in bicep]
    assert not missing, f"settings required in Azure but not set by infra/: {missing}"


def test_other_settings_are_set_or_documented_as_optional() -> None:
    bicep = bicep_app_settings()
    for setting in SETTINGS:
        if setting.name in bicep:
            continue
        assert setting.description.strip(), f"{setting.name}: optional setting without a description"
        if setting.default is None:
            # Optional without a default: the app must cope with it unset (documented as such).
            assert setting.description, setting.name


def test_bicep_sets_only_settings_the_app_or_host_knows() -> None:
    known = {s.name for s in SETTINGS} | HOST_SETTINGS | set(PENDING_APP_SETTINGS)
    unknown = set(bicep_app_settings()) - known
    assert not unknown, f"infra/ sets settings nobody reads (typo?): {unknown}"


def test_pending_settings_are_still_pending() -> None:
    declared = {s.name for s in SETTINGS} & set(PENDING_APP_SETTINGS)
    assert not declared, f"shared/settings.py now declares {declared}: remove it from PENDING_APP_SETTINGS"


def test_storage_connections_are_identity_based() -> None:
    bicep = bicep_app_settings()
    for prefix, client_id in (("AzureWebJobsStorage", "hostIdentityClientId"), ("GATEWAY_STORAGE", "identityClientId")):
        assert bicep[f"{prefix}__credential"] == "managedidentity", prefix
        assert bicep[f"{prefix}__clientId"] == client_id, prefix
    assert {
        "AzureWebJobsStorage__blobServiceUri",
        "GATEWAY_STORAGE__tableServiceUri",
        "GATEWAY_STORAGE__queueServiceUri",
    } <= set(bicep)
    # The host needs blobs only (timer and singleton locks): the queue triggers use GATEWAY_STORAGE.
    assert not {name for name in bicep if name.startswith("AzureWebJobsStorage__") and "queue" in name.lower()}
    assert "AzureWebJobsStorage" not in bicep and "GATEWAY_STORAGE" not in bicep, "no connection strings"
    assert bicep["AZURE_CLIENT_ID"] == "identityClientId"
    assert bicep["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsightsConnectionString"
    # Flex Consumption takes the runtime from functionAppConfig, not from app settings.
    assert "FUNCTIONS_WORKER_RUNTIME" not in bicep and "FUNCTIONS_EXTENSION_VERSION" not in bicep


def test_queue_and_table_names_match_the_app_defaults() -> None:
    defaults = {s.name: s.default for s in SETTINGS}
    params = parse_bicep(INFRA / "main.bicep")["parameters"]
    bicep = bicep_app_settings()
    for setting, param in (
        ("GATEWAY_RUNS_TABLE", "runsTableName"),
        ("GATEWAY_ALERT_QUEUE", "alertQueueName"),
        ("GATEWAY_POLL_QUEUE", "pollQueueName"),
        ("GATEWAY_POLL_SCHEDULE", "pollSchedule"),
    ):
        assert bicep[setting] == param
        assert params[param]["default"] == defaults[setting], f"{param} default differs from {setting}"


def test_binding_expressions_and_connections_resolve_in_azure() -> None:
    """The Functions host resolves %NAME% and connection prefixes from app settings only: a default
    in shared/settings.py does not help it, so each one must be set by the Bicep."""
    bicep = set(bicep_app_settings())
    for _, binding in app_bindings():
        for value in binding.values():
            if isinstance(value, str):
                for name in re.findall(r"%([A-Za-z0-9_]+)%", value):
                    assert name in bicep, f"binding {binding.get('name')} uses %{name}% which infra/ does not set"
        connection = binding.get("connection")
        if connection:
            assert f"{connection}__credential" in bicep or connection in bicep, (
                f"binding {binding.get('name')} uses connection {connection!r} which infra/ does not set"
            )


def test_catalog_setting_is_json_of_the_parameters() -> None:
    main = parse_bicep(INFRA / "main.bicep")
    assert object_keys(main["variables"]["catalog"]["value"]) == {"targets", "alertOnCancelled"}


def test_public_base_url_is_the_apim_api_with_the_route_prefix() -> None:
    """The app appends /runs/{id} to GATEWAY_PUBLIC_BASE_URL, as it appends it to
    https://<host>/<routePrefix> when the setting is unset; APIM keeps openapi.json's /api paths."""
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    main = parse_bicep(INFRA / "main.bicep")
    assert bicep_app_settings()["GATEWAY_PUBLIC_BASE_URL"] == "apiBaseUrl"
    assert main["variables"]["apiBaseUrl"]["value"] == "${apimService.outputs.gatewayUrl}/${apiPath}/" + prefix
    assert main["outputs"]["API_BASE_URL"]["value"] == "apiBaseUrl"


def test_secrets_are_key_vault_references_resolved_with_the_gateways_identity() -> None:
    """GATEWAY_FORWARD_URL and GATEWAY_FORWARD_SECRET never appear as values: when given, they are
    Key Vault references, which the platform resolves with keyVaultReferenceIdentity (the gateway's
    identity); the values themselves are secure parameters written into the vault."""
    bicep = bicep_app_settings()
    for name, uri in (
        ("GATEWAY_FORWARD_URL", "forwardUrlSecretUri"),
        ("GATEWAY_FORWARD_SECRET", "forwardSecretSecretUri"),
    ):
        assert bicep[name] == f"@Microsoft.KeyVault(SecretUri=${{{uri}}})", name
    main = parse_bicep(INFRA / "main.bicep")
    for param in ("forwardUrl", "forwardSecret"):
        decorators = {decorator["type"] for decorator in main["parameters"][param]["decorators"]}
        assert "secure" in decorators, f"{param} must be @secure()"
    key_vault = parse_bicep(MODULES / "key-vault.bicep")
    for param in ("forwardUrl", "forwardSecret"):
        assert "secure" in {decorator["type"] for decorator in key_vault["parameters"][param]["decorators"]}
    # The references name the secrets key-vault.bicep writes.
    variables = main["variables"]
    for uri, secret in (
        ("forwardUrlSecretUri", "forwardUrlSecretName"),
        ("forwardSecretSecretUri", "forwardSecretSecretName"),
    ):
        name = key_vault["variables"][secret]["value"]
        assert str(variables[uri]["value"]["operator"]["operands"]["false_value"]).endswith(f"/secrets/{name}"), uri


def test_host_and_worker_telemetry_share_one_opentelemetry_pipeline() -> None:
    """Functions docs, "Use OpenTelemetry with Azure Functions": the host exports OpenTelemetry
    (host.json telemetryMode), the Python worker joins each invocation to the host's trace
    (PYTHON_ENABLE_OPENTELEMETRY), and the app's own exporter (shared/telemetry, with its identity) is the
    only one: PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY would configure a second one in the worker."""
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in host.get("logging", {}), "ignored in OpenTelemetry mode"
    bicep = bicep_app_settings()
    assert bicep["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in bicep
    assert "azure-monitor-opentelemetry" in (REPO / "requirements.txt").read_text(encoding="utf-8")
