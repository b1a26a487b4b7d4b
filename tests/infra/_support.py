"""Helpers of the offline infrastructure checks: paths, parsed Bicep, assembled APIM policies."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
POLICIES = INFRA / "apim" / "policies"
HOOK = INFRA / "hooks" / "postprovision.sh"
OPENAPI = REPO / "openapi.json"
PARAMETERS = INFRA / "main.parameters.json"

# Markers the APIM Bicep replaces when it assembles the policies (infra/modules/apim-api.bicep).
BACKEND_AUTH_MARKER = "<!-- backend-auth -->"
BACKEND_AUTH_FRAGMENTS = {
    "easyAuth": "backend-auth-easyauth.xml",
    "functionKey": "backend-auth-functionkey.xml",
}
# The API-scope quota (quota-by-key) is put in on the StandardV2 tier only: Consumption lacks the policy.
API_QUOTA_MARKER = "<!-- api-quota -->"
API_QUOTA_FRAGMENT = "api-quota.xml"
APIM_SKUS = ("Consumption", "StandardV2")
PRODUCT_PLACEHOLDERS = {
    "__RATE_LIMIT_CALLS__": "rateLimitCalls",
    "__RATE_LIMIT_PERIOD__": "renewalPeriod",
    "__QUOTA_CALLS__": "quotaCalls",
    "__QUOTA_PERIOD__": "quotaRenewalPeriod",
}
# loadTextContent() refuses files longer than this (Bicep limit).
LOAD_TEXT_CONTENT_LIMIT = 131_072


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser()  # building the grammar is the slow part: once per session


@cache
def parse_bicep(path: Path) -> dict[str, Any]:
    """The pycep-parser tree of one Bicep file (cached for the session)."""
    result: dict[str, Any] = _parser().parse(text=path.read_text(encoding="utf-8"))
    return result


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's own body, below any ``if (...)`` condition or ``for`` loop wrapper."""
    config: Any = entry["config"]
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    assert isinstance(config, dict)
    return config


def condition(entry: dict[str, Any]) -> Any:
    """The ``if (...)`` condition of a resource or module, or None."""
    config = entry["config"]
    return config.get("condition") if isinstance(config, dict) else None


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def object_keys(value: dict[str, Any]) -> set[str]:
    return {unquote(key) for key in value}


def resources_of_type(tree: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: entry for name, entry in tree.get("resources", {}).items() if entry["type"] == resource_type}


def parameters() -> dict[str, Any]:
    data = json.loads(PARAMETERS.read_text(encoding="utf-8"))
    params: dict[str, Any] = data["parameters"]
    return params


def xml_root(text: str) -> ET.Element:
    # Our own repository files, not untrusted input.
    return ET.fromstring(text)  # noqa: S314


def _fragment(name: str) -> str:
    return (POLICIES / name).read_text(encoding="utf-8").replace("<fragment>", "").replace("</fragment>", "")


def api_policy(mode: str, sku: str = "Consumption") -> str:
    """The API-scope policy as apim-api.bicep assembles it for backendAuth = mode on the tier ``sku``."""
    quota = "" if sku == "Consumption" else _fragment(API_QUOTA_FRAGMENT)
    text = (POLICIES / "api.xml").read_text(encoding="utf-8")
    return text.replace(BACKEND_AUTH_MARKER, _fragment(BACKEND_AUTH_FRAGMENTS[mode])).replace(API_QUOTA_MARKER, quota)


def product_policy(product: dict[str, Any]) -> str:
    """The product-scope policy as apim-api.bicep assembles it for one apimProducts entry."""
    text = (POLICIES / "product.xml").read_text(encoding="utf-8")
    for placeholder, field in PRODUCT_PLACEHOLDERS.items():
        text = text.replace(placeholder, str(product[field]))
    return text


def app_bindings() -> list[tuple[str, dict[str, Any]]]:
    """(function name, binding) of every binding of function_app.app.

    ``FunctionApp.get_functions()`` raises on a second call, so this goes through the app's own
    once-per-process cache (shared.functions.index), as every other caller does.
    """
    import function_app
    from shared.functions.index import registered_functions

    found = []
    for function in registered_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            found.append((function.get_function_name(), binding))
    return found


NAMED_VALUE_RE = re.compile(r"\{\{([A-Za-z0-9._-]+)\}\}")
