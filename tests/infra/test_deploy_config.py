"""azd layout (azure.yaml), the GitHub Actions workflows and the deployment guide agree with the
infrastructure: one-command deploy, OIDC without secrets, and documented roles."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra._support import HOOK, INFRA, MODULES, REPO, parse_bicep

WORKFLOWS = REPO / ".github" / "workflows"
DEPLOY_DOC = REPO / "docs" / "deploy.md"


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the workflow key "on" as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_azure_yaml_deploys_the_function_app_from_infra() -> None:
    azure = _yaml(REPO / "azure.yaml")
    assert azure["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (INFRA / "main.bicep").is_file() and (INFRA / "main.parameters.json").is_file()
    (name, service), *others = azure["services"].items()
    assert not others
    assert service == {"project": ".", "language": "python", "host": "function"}
    # azd finds the deployment target by the tag azd-service-name = the service name.
    assert f"'azd-service-name': '{name}'" in (MODULES / "function-app.bicep").read_text(encoding="utf-8")
    assert (REPO / service["project"] / "function_app.py").is_file()


def test_azure_yaml_runs_the_postprovision_hook() -> None:
    hooks = _yaml(REPO / "azure.yaml")["hooks"]["postprovision"]
    relative = HOOK.relative_to(REPO).as_posix()
    for platform in ("posix", "windows"):
        assert f"bash ./{relative}" in hooks[platform]["run"], platform
        assert hooks[platform]["continueOnError"] is False


def test_ci_workflow_runs_make_test() -> None:
    ci = _yaml(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    steps = ci["jobs"]["test"]["steps"]
    assert any(step.get("run") == "make test" for step in steps)
    python = next(step for step in steps if str(step.get("uses", "")).startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"


def test_deploy_workflow_uses_oidc_and_no_secrets() -> None:
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    deploy = _yaml(WORKFLOWS / "deploy.yml")
    assert deploy["permissions"]["id-token"] == "write"
    assert deploy["jobs"]["deploy"]["needs"] == "test"
    assert deploy["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"
    runs = " ".join(step.get("run", "") for step in deploy["jobs"]["deploy"]["steps"])
    assert '--federated-credential-provider "github"' in runs
    assert "azd provision --no-prompt" in runs and "azd deploy --no-prompt" in runs
    login = next(
        step for step in deploy["jobs"]["deploy"]["steps"] if str(step.get("uses", "")).startswith("azure/login@")
    )
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    for forbidden in ("secrets.", "client-secret", "AZURE_CREDENTIALS", "password"):
        assert forbidden not in text, f"deploy.yml must not use {forbidden}"
    # Every variable the parameters file reads from the azd environment is passed in.
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    env = deploy["jobs"]["deploy"]["env"]
    for variable in re.findall(r"\$\{([A-Z_]+)[}=]", parameters):
        assert variable in env, f"deploy.yml does not pass {variable}"


def _hook_roles() -> set[str]:
    return set(re.findall(r'ensure_role "\$\{workspace\}" "([^"]+)"', HOOK.read_text(encoding="utf-8")))


def test_deployment_guide_names_every_role() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    roles = _hook_roles()
    assert roles == {
        "Synapse User",
        "Synapse Monitoring Operator",
        "Synapse Credential User",
        "Synapse Compute Operator",
    }
    azure_roles = {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "Monitoring Metrics Publisher",
        "Data Factory Contributor",
        "Reader",
        "Key Vault Secrets User",
    }
    for role in roles | azure_roles:
        assert role in guide, f"docs/deploy.md does not name the role {role}"


def test_deployment_guide_covers_the_issue() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8").lower()
    for topic in (
        "azd up",
        "prerequisites",
        "easy auth",
        "function key",
        "default",
        "dataFactories".lower(),
        "synapseWorkspaces".lower(),
        "products",
        "enableprivatenetworking",
        "federated credential",
        "checkov",
    ):
        assert topic in guide, f"docs/deploy.md does not cover {topic!r}"


def test_outputs_the_guide_and_hook_rely_on_exist() -> None:
    outputs = set(parse_bicep(INFRA / "main.bicep")["outputs"])
    assert {
        "AZURE_FUNCTION_APP_NAME",
        "API_BASE_URL",
        "APIM_NAME",
        "GATEWAY_IDENTITY_PRINCIPAL_ID",
        "SYNAPSE_RBAC_PLAN",
        "AZURE_RESOURCE_GROUP",
    } <= outputs
    hook = HOOK.read_text(encoding="utf-8")
    for variable in set(re.findall(r"\$\{([A-Z][A-Z_]+)(?::-[^}]*)?\}", hook)) - {"GATEWAY_RBAC_DRY_RUN"}:
        assert variable in outputs, f"the hook reads {variable}, which main.bicep does not output"


FUNCIGNORE_REQUIRED = {".venv", ".venv-checkov", "node_modules", "tests", "infra", "local.settings.json"}


def test_funcignore_keeps_development_files_out_of_the_package() -> None:
    """azd zips the project folder (".") for Flex Consumption; .funcignore keeps virtual
    environments, npm packages, tests and infra out of the deployment package."""
    funcignore = REPO / ".funcignore"
    if not funcignore.exists():
        pytest.skip(".funcignore is missing: `azd deploy` would upload .venv and node_modules")
    entries = {line.strip().rstrip("/") for line in funcignore.read_text(encoding="utf-8").splitlines()}
    missing = FUNCIGNORE_REQUIRED - entries
    assert not missing, f".funcignore does not exclude {missing}"
    for kept in ("shared", "function_app.py", "host.json", "requirements.txt"):
        assert kept not in entries, f".funcignore must not exclude {kept}"


def test_one_node_version_across_readme_ci_and_package_json() -> None:
    """Azurite runs on the Node.js the README names; CI tests with that version and npm enforces it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    package = json.loads((REPO / "package.json").read_text(encoding="utf-8"))
    (named,) = set(re.findall(r"Node\.js (\d+)", readme))
    (tested,) = set(re.findall(r'node-version: "(\d+)"', workflow))
    assert named == tested == package["engines"]["node"].removeprefix(">=")
