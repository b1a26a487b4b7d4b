"""Offline checks of the API Management policies (infra/apim/policies) as the Bicep assembles them:
well-formed XML, every named value defined, the headers the app relies on, tier-safe throttling."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.infra._support import (
    API_QUOTA_FRAGMENT,
    API_QUOTA_MARKER,
    APIM_SKUS,
    BACKEND_AUTH_FRAGMENTS,
    BACKEND_AUTH_MARKER,
    MODULES,
    NAMED_VALUE_RE,
    POLICIES,
    PRODUCT_PLACEHOLDERS,
    api_policy,
    body,
    condition,
    parameters,
    parse_bicep,
    product_policy,
    resources_of_type,
    xml_root,
)

APIM_BICEP = MODULES / "apim-api.bicep"
MODES = sorted(BACKEND_AUTH_FRAGMENTS)

# Policies the Consumption tier does not offer (APIM policy reference: "Gateways"); the template
# must run on Consumption, its default tier.
NOT_ON_CONSUMPTION = {"rate-limit-by-key", "quota-by-key", "validate-client-certificate", "limit-concurrency"}


def _elements(root: ET.Element, tag: str) -> list[ET.Element]:
    return list(root.iter(tag))


def _header_actions(section: ET.Element) -> list[tuple[str, str, str]]:
    """(header name lower-cased, exists-action, value text) of every set-header under a section."""
    actions = []
    for element in section.iter("set-header"):
        value = element.find("value")
        text = (value.text or "").strip() if value is not None else ""
        actions.append((element.attrib["name"].lower(), element.attrib.get("exists-action", "override"), text))
    return actions


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.xml")), ids=lambda p: p.name)
def test_policy_files_are_well_formed(path: Path) -> None:
    root = xml_root(path.read_text(encoding="utf-8"))
    assert root.tag in {"policies", "fragment"}, f"{path.name}: unexpected root <{root.tag}>"


@pytest.mark.parametrize("sku", APIM_SKUS)
@pytest.mark.parametrize("mode", MODES)
def test_assembled_api_policy_is_well_formed(mode: str, sku: str) -> None:
    text = api_policy(mode, sku)
    assert BACKEND_AUTH_MARKER not in text and API_QUOTA_MARKER not in text
    root = xml_root(text)
    assert [child.tag for child in root] == ["inbound", "backend", "outbound", "on-error"]
    for section in root:
        assert section[0].tag == "base", f"<{section.tag}> must start with <base />"


def test_bicep_assembles_the_policies_the_way_the_tests_do() -> None:
    text = APIM_BICEP.read_text(encoding="utf-8")
    assert f"'{BACKEND_AUTH_MARKER}'" in text
    for mode, fragment in BACKEND_AUTH_FRAGMENTS.items():
        assert f"loadTextContent('../apim/policies/{fragment}')" in text, mode
    assert "backendAuth == 'easyAuth' ? loadTextContent('../apim/policies/backend-auth-easyauth.xml')" in text
    assert "replace(replace(backendAuthFragment, '<fragment>', ''), '</fragment>', '')" in text
    assert (
        "var apiQuotaXml = sku == 'Consumption' ? '' : replace(replace(loadTextContent("
        f"'../apim/policies/{API_QUOTA_FRAGMENT}'), '<fragment>', ''), '</fragment>', '')"
    ) in text
    assert f"'{API_QUOTA_MARKER}', apiQuotaXml)" in text
    for placeholder, field in PRODUCT_PLACEHOLDERS.items():
        assert f"'{placeholder}', string(product.{field})" in text, placeholder
    assert "format: 'openapi+json'" in text
    assert "value: loadTextContent('../../openapi.json')" in text


def _named_values() -> dict[str, object]:
    """Named values declared in apim-api.bicep: displayName -> condition (None = always)."""
    tree = parse_bicep(APIM_BICEP)
    declared: dict[str, object] = {}
    for entry in resources_of_type(tree, "Microsoft.ApiManagement/service/namedValues").values():
        props = body(entry)
        assert props["name"] == props["properties"]["displayName"], "policies reference the display name"
        declared[props["properties"]["displayName"]] = condition(entry)
    return declared


def _mode_condition(mode: str) -> dict[str, object]:
    return {"operator": {"type": "equals", "operands": {"operand_1": "backendAuth", "operand_2": mode}}}


@pytest.mark.parametrize("mode", MODES)
def test_every_named_value_used_is_defined_in_that_mode(mode: str) -> None:
    declared = _named_values()
    used = set(NAMED_VALUE_RE.findall(api_policy(mode, "StandardV2")))
    for policy in POLICIES.glob("product.xml"):
        used |= set(NAMED_VALUE_RE.findall(policy.read_text(encoding="utf-8")))
    assert used, "expected the backend authentication to use named values"
    for name in used:
        assert name in declared, f"{mode}: policy uses {{{{{name}}}}} but apim-api.bicep does not define it"
        assert declared[name] in (None, _mode_condition(mode)), f"{name} is not deployed with backendAuth={mode}"


def test_secret_named_value_comes_from_key_vault() -> None:
    tree = parse_bicep(APIM_BICEP)
    key = body(tree["resources"]["functionKeyValue"])["properties"]
    assert key["secret"] is True
    assert set(key["keyVault"]) == {"secretIdentifier", "identityClientId"}
    assert "value" not in key


@pytest.mark.parametrize("mode", MODES)
def test_api_policy_strips_credentials_and_forwards_caller_identity(mode: str) -> None:
    root = xml_root(api_policy(mode))
    inbound = root.find("inbound")
    assert inbound is not None
    actions = _header_actions(inbound)
    deleted = {name for name, action, _ in actions if action == "delete"}
    assert {"ocp-apim-subscription-key", "authorization", "x-functions-key", "x-apim-product-id"} <= deleted
    query = [(e.attrib["name"], e.attrib["exists-action"]) for e in inbound.iter("set-query-parameter")]
    assert ("subscription-key", "delete") in query
    set_values = {name: value for name, action, value in actions if action == "override"}
    assert set_values["x-apim-subscription-id"] == "@(context.Subscription.Id)"
    assert set_values["x-apim-product-id"] == "@(context.Product.Id)"
    assert "correlationId" in set_values["x-correlation-id"]
    # The caller's correlation id is kept when well-formed, else APIM's request id is used.
    variable = next(e for e in inbound.iter("set-variable") if e.attrib["name"] == "correlationId")
    assert 'GetValueOrDefault("x-correlation-id"' in variable.attrib["value"]
    assert "context.RequestId" in variable.attrib["value"]
    # W3C trace context goes through untouched.
    every = _header_actions(root)
    assert not [a for a in every if a[0] in {"traceparent", "tracestate"}], "traceparent must be forwarded as is"
    outbound = root.find("outbound")
    assert outbound is not None
    assert any(name == "x-correlation-id" for name, _, _ in _header_actions(outbound))
    # The identity headers are set after the spoofed copies are removed.
    product_actions = [action for name, action, _ in actions if name == "x-apim-product-id"]
    assert product_actions == ["delete", "override"]


def test_backend_authentication_per_mode() -> None:
    easy = xml_root(api_policy("easyAuth"))
    (managed_identity,) = _elements(easy, "authentication-managed-identity")
    assert managed_identity.attrib == {
        "resource": "{{gateway-backend-app-id}}",
        "client-id": "{{gateway-apim-identity-client-id}}",
    }
    assert not [a for a in _header_actions(easy) if a[0] == "x-functions-key" and a[1] == "override"]
    key = xml_root(api_policy("functionKey"))
    assert not _elements(key, "authentication-managed-identity")
    assert ("x-functions-key", "override", "{{gateway-function-key}}") in _header_actions(key)
    # The backend authentication comes after the caller's credentials are stripped.
    for mode, marker in (
        ("easyAuth", "<authentication-managed-identity"),
        ("functionKey", '<set-header name="x-functions-key" exists-action="override"'),
    ):
        text = api_policy(mode)
        assert text.index('name="Authorization" exists-action="delete"') < text.index(marker)
        assert text.index('name="x-functions-key" exists-action="delete"') < text.index(marker)


def test_backend_service_is_the_function_app_backend() -> None:
    tree = parse_bicep(APIM_BICEP)
    variables = tree["variables"]
    backends = set()
    for entry in resources_of_type(tree, "Microsoft.ApiManagement/service/backends").values():
        name = body(entry)["name"]
        backends.add(variables[name]["value"] if name in variables else name)
        assert body(entry)["properties"]["url"] == "https://${functionAppHostName}"
    for mode in MODES:
        (element,) = _elements(xml_root(api_policy(mode)), "set-backend-service")
        assert element.attrib["backend-id"] in backends, f"unknown backend {element.attrib['backend-id']}"


@pytest.mark.parametrize("product", parameters()["apimProducts"]["value"], ids=lambda p: p["id"])
def test_product_policy_is_tier_safe_per_subscription_throttling(product: dict[str, object]) -> None:
    text = product_policy(product)
    assert "__" not in re.sub(r"<!--.*?-->", "", text, flags=re.S), "unreplaced placeholder"
    root = xml_root(text)
    inbound = root.find("inbound")
    assert inbound is not None
    (rate,) = _elements(inbound, "rate-limit")
    (quota,) = _elements(inbound, "quota")
    assert int(rate.attrib["calls"]) == product["rateLimitCalls"]
    assert 0 < int(rate.attrib["renewal-period"]) <= 300
    assert int(quota.attrib["calls"]) == product["quotaCalls"]
    assert int(quota.attrib["renewal-period"]) == product["quotaRenewalPeriod"]


@pytest.mark.parametrize(
    "path", sorted(set(POLICIES.glob("*.xml")) - {POLICIES / API_QUOTA_FRAGMENT}), ids=lambda p: p.name
)
def test_policies_run_on_the_consumption_tier(path: Path) -> None:
    tags = {element.tag for element in xml_root(path.read_text(encoding="utf-8")).iter()}
    assert not tags & NOT_ON_CONSUMPTION, f"{path.name} uses {tags & NOT_ON_CONSUMPTION}, not on Consumption"


@pytest.mark.parametrize("mode", MODES)
def test_the_api_scope_quota_counts_per_subscription_on_standard_v2_and_is_left_out_on_consumption(mode: str) -> None:
    """The quota policy works at product scope only, so the API-scope quota is quota-by-key keyed by the
    subscription, which the Consumption tier does not have: there each product's quota is the one."""
    consumption = {element.tag for element in xml_root(api_policy(mode, "Consumption")).iter()}
    assert not consumption & NOT_ON_CONSUMPTION
    inbound = xml_root(api_policy(mode, "StandardV2")).find("inbound")
    assert inbound is not None
    (quota,) = _elements(inbound, "quota-by-key")
    assert quota.attrib["counter-key"] == "@(context.Subscription.Id)"
    assert (quota.attrib["calls"], quota.attrib["renewal-period"]) == (
        "{{gateway-api-quota-calls}}",
        "{{gateway-api-quota-period}}",
    )
    assert not _elements(inbound, "quota"), "the quota policy is for product scope only"


def test_api_requires_a_subscription_and_traces_with_w3c() -> None:
    tree = parse_bicep(APIM_BICEP)
    (api,) = resources_of_type(tree, "Microsoft.ApiManagement/service/apis").values()
    props = body(api)["properties"]
    assert props["subscriptionRequired"] is True
    assert props["protocols"] == ["https"]
    assert props["subscriptionKeyParameterNames"] == {
        "header": "Ocp-Apim-Subscription-Key",
        "query": "subscription-key",
    }
    (products,) = resources_of_type(tree, "Microsoft.ApiManagement/service/products").values()
    assert body(products)["properties"]["subscriptionRequired"] is True
    (diagnostics,) = resources_of_type(tree, "Microsoft.ApiManagement/service/apis/diagnostics").values()
    diagnostics_props = body(diagnostics)["properties"]
    assert diagnostics_props["httpCorrelationProtocol"] == "W3C"
    masked = diagnostics_props["frontend"]["request"]["dataMasking"]["queryParams"]
    assert {"value": "subscription-key", "mode": "Hide"} in masked
    logged = [
        h.lower()
        for side in ("frontend", "backend")
        for part in ("request", "response")
        for h in diagnostics_props[side][part]["headers"]
    ]
    assert "ocp-apim-subscription-key" not in logged and "authorization" not in logged
    (logger,) = resources_of_type(tree, "Microsoft.ApiManagement/service/loggers").values()
    assert set(body(logger)["properties"]["credentials"]) == {"connectionString", "identityClientId"}


@pytest.mark.parametrize("mode", MODES)
def test_every_subscription_is_rate_limited_at_api_scope_and_productless_ones_are_refused(mode: str) -> None:
    """A subscription scoped to the API itself skips the product policies: the API scope limits it too,
    and refuses it outright unless the deployment allows productless callers."""
    root = xml_root(api_policy(mode))
    inbound = root.find("inbound")
    assert inbound is not None
    (rate,) = _elements(inbound, "rate-limit")
    named = {"{{gateway-api-rate-limit-calls}}", "{{gateway-api-rate-limit-period}}"}
    assert {rate.attrib["calls"], rate.attrib["renewal-period"]} == named
    (refusal,) = [w for w in _elements(inbound, "when") if "context.Product == null" in w.attrib["condition"]]
    assert "{{gateway-allow-productless-callers}}" in refusal.attrib["condition"]
    (status,) = _elements(refusal, "set-status")
    assert status.attrib["code"] == "403"
    always = {name for name, when in _named_values().items() if when is None}
    assert {name.strip("{}") for name in named} | {"gateway-allow-productless-callers"} <= always
