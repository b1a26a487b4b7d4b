"""Least privilege that matches the code: every call the clients in shared/kinds make (operation, HTTP
method and path) needs a permission, and the roles the deployment grants are exactly those.

* ARM calls: the action each call needs is derived from its method and path (GET .../x/{id} is x/read,
  POST .../x/{id}/y is x/y/action, PUT is write), and the custom roles of infra/modules/custom-roles.bicep
  hold exactly those actions, no more, no fewer.
* Synapse data plane: each operation maps to the Synapse RBAC role and scope Microsoft's task table
  names; the postprovision hook assigns exactly those for a workspace with pipelines and a Spark pool.
* docs/deploy.md's role table names every assignment the Bicep and the hook make (principal, role id or
  custom role name, scope), and nothing else; README's on-call table agrees with the Bicep's role ids.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra._support import HOOK, INFRA, MODULES, REPO, body, parse_bicep, resources_of_type
from tests.infra.test_postprovision_hook import FAKE_AZ, PRINCIPAL

KINDS = REPO / "shared" / "kinds"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
README = REPO / "README.md"

# The ARM resource each client's base URL is, by client class.
ARM_CLIENTS = {
    "DataFactoryClient": "Microsoft.DataFactory/factories",
    "SynapseWorkspaceClient": "Microsoft.Synapse/workspaces",
    "MachineLearningClient": "Microsoft.MachineLearningServices/workspaces",
}
# The custom role (custom-roles.bicep: actions variable, role resource) of each ARM resource type.
CUSTOM_ROLES = {
    "Microsoft.DataFactory/factories": ("dataFactoryActions", "dataFactoryRole"),
    "Microsoft.Synapse/workspaces": ("synapseActions", "synapseRole"),
    "Microsoft.MachineLearningServices/workspaces": ("machineLearningActions", "machineLearningRole"),
}
# Data-plane calls checked with Azure RBAC: run history is authorized as the workspace's runs.
DATA_ACTIONS = {
    "RunHistoryClient": {
        operation: "Microsoft.MachineLearningServices/workspaces/experiments/runs/read"
        for operation in ("Runs_Get", "Runs_GetDetails", "Runs_GetChild")
    },
}

# Synapse data plane, from "Understand the roles required to perform common tasks in Synapse": what
# each operation needs, as (role, scope) with scope workspace, credential (WorkspaceSystemIdentity) or pool.
USER = ("Synapse User", "workspace")
MONITORING = ("Synapse Monitoring Operator", "workspace")
SYNAPSE_DATA_PLANE: dict[str, dict[str, set[tuple[str, str]]]] = {
    "SynapsePipelineClient": {
        # "Execute/run a pipeline: Synapse User and Synapse Credential User on the WorkspaceSystemIdentity".
        "createRun": {USER, ("Synapse Credential User", "credential")},
        # "List and open a published pipeline", "Review pipeline runs": Synapse Monitoring Operator.
        "getPipeline": {MONITORING},
        "getPipelineRun": {MONITORING},
        "queryPipelineRuns": {MONITORING},
        "queryActivityRuns": {MONITORING},
        # workspaces/cancelPipelineRun/action is in Synapse Administrator and Contributor only: not granted
        # by default (docs/deploy.md says so and how to add it).
        "cancelPipelineRun": set(),
    },
    "SparkClient": {
        # "Run a notebook ..., or submit a Spark job", "Cancel any ... Spark job": Compute Operator on the pool.
        "createSparkBatchJob": {("Synapse Compute Operator", "pool")},
        "cancelSparkBatchJob": {("Synapse Compute Operator", "pool")},
        # "Monitor Apache Spark applications": Synapse User.
        "getSparkBatchJob": {USER},
        "getSparkBatchJobs": {USER},
    },
    "SynapseNetworkClient": {
        # Synapse User: "list and view details of ... published linked services and credentials".
        "listManagedPrivateEndpoints": {USER},
        "getLinkedServicesByWorkspace": {USER},
    },
}
NOT_GRANTED_BY_DEFAULT = {("SynapsePipelineClient", "cancelPipelineRun"): "cancelPipelineRun/action"}
# Fabric permissions are workspace roles (Viewer reads, Contributor runs and cancels), not Azure RBAC.
FABRIC_CLIENTS = {"FabricClient"}


@dataclass(frozen=True)
class Call:
    client: str
    operation: str
    method: str
    path: str  # format placeholders as {}


def _path(node: ast.expr | None, assignments: dict[str, ast.expr]) -> str | None:
    """A path argument as text with {} for what is formatted in; None when it cannot be told."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)  # type: ignore[misc]
    if isinstance(node, ast.Name) and node.id in assignments:
        return _path(assignments[node.id], {})
    return None


def _assignments(function: ast.FunctionDef) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return found


def _self_calls(function: ast.FunctionDef, method: str) -> Iterator[ast.Call]:
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == method
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            yield node


def _class_calls(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> Iterator[tuple[str, str, str | None]]:
    """(operation, method, path) of every self._call in the class: literal, or passed in by a helper of the
    class (``self._pages("listX", path)``), or a path its subclass's override returns."""
    methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    for function in methods.values():
        assignments = _assignments(function)
        for call in _self_calls(function, "_call"):
            name, verb, where = call.args[0], call.args[1], call.args[2]
            assert isinstance(verb, ast.Constant), f"{cls.name}.{function.name}: method not a literal"
            if isinstance(name, ast.Constant):
                path = _path(where, assignments)
                if path is None and isinstance(where, ast.Call) and isinstance(where.func, ast.Attribute):
                    path = f"@{where.func.attr}"  # resolved per concrete class below
                yield name.value, verb.value, path
                continue
            # The operation is a parameter of a helper: take it, and the path, from the helper's callers.
            params = [arg.arg for arg in function.args.args]
            assert isinstance(name, ast.Name) and name.id in params, f"{cls.name}.{function.name}: unknown call"
            for caller in methods.values():
                for use in _self_calls(caller, function.name):
                    arguments = dict(zip(params[1:], use.args, strict=False))
                    operation = arguments[name.id]
                    assert isinstance(operation, ast.Constant), f"{cls.name}.{caller.name}: operation not a literal"
                    target = arguments.get(where.id) if isinstance(where, ast.Name) else where
                    yield operation.value, verb.value, _path(target, _assignments(caller))


def client_calls() -> list[Call]:
    """Every call each concrete client in shared/kinds makes, inherited ones included."""
    classes: dict[str, ast.ClassDef] = {}
    for path in sorted(KINDS.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node
    bases = {name: [b.id for b in cls.bases if isinstance(b, ast.Name)] for name, cls in classes.items()}
    abstract = {base for names in bases.values() for base in names if base in classes}
    calls: list[Call] = []
    for name, cls in classes.items():
        if name in abstract:
            continue
        lineage = [name, *[base for base in bases[name] if base in classes]]
        for owner in lineage:
            for operation, method, path in _class_calls(classes[owner], classes):
                if path is not None and path.startswith("@"):
                    path = _override_path(cls, path[1:])
                assert path is not None, f"{name}: the path of {operation} cannot be told"
                calls.append(Call(name, operation, method, path))
    assert calls, "no client calls found in shared/kinds"
    return calls


def _override_path(cls: ast.ClassDef, method: str) -> str | None:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == method:
            (returned,) = [n.value for n in ast.walk(node) if isinstance(n, ast.Return)]
            return _path(returned, {})
    return None


def arm_action(resource_type: str, method: str, path: str) -> str:
    """The Azure RBAC action of an ARM call below ``resource_type``: resource types alternate with names in
    the path; GET reads, PUT writes, DELETE deletes, and POST names an action after the last type."""
    segments = [segment for segment in path.split("/") if segment]
    types = segments[0::2]
    verbs = {"GET": "read", "PUT": "write", "DELETE": "delete"}
    if method == "POST":
        assert types, f"POST on the resource itself: {path}"
        return "/".join([resource_type, *types, "action"]).lower()
    return "/".join([resource_type, *types, verbs[method]]).lower()


def test_arm_actions_are_derived_as_azure_names_them() -> None:
    factory = "Microsoft.DataFactory/factories"
    assert arm_action(factory, "GET", "") == "microsoft.datafactory/factories/read"
    assert (
        arm_action(factory, "POST", "/pipelines/{}/createRun")
        == "microsoft.datafactory/factories/pipelines/createrun/action"
    )
    assert (
        arm_action(factory, "POST", "/queryPipelineRuns") == "microsoft.datafactory/factories/querypipelineruns/action"
    )
    assert (
        arm_action(factory, "POST", "/pipelineruns/{}/cancel")
        == "microsoft.datafactory/factories/pipelineruns/cancel/action"
    )
    ml = "Microsoft.MachineLearningServices/workspaces"
    assert arm_action(ml, "PUT", "/jobs/{}") == "microsoft.machinelearningservices/workspaces/jobs/write"


def test_every_call_the_clients_make_is_classified() -> None:
    """A new call (a new kind, a new diagnostic) fails here until its permission is in a role and the table."""
    known = set(ARM_CLIENTS) | set(DATA_ACTIONS) | set(SYNAPSE_DATA_PLANE) | FABRIC_CLIENTS
    for call in client_calls():
        assert call.client in known, f"{call.client} ({call.operation}): which permission model? add it here"
        if call.client in DATA_ACTIONS:
            assert call.operation in DATA_ACTIONS[call.client], f"{call.client}.{call.operation} is not mapped"
        if call.client in SYNAPSE_DATA_PLANE:
            assert call.operation in SYNAPSE_DATA_PLANE[call.client], f"{call.client}.{call.operation} not mapped"


def _custom_role(variable: str) -> set[str]:
    actions = parse_bicep(MODULES / "custom-roles.bicep")["variables"][variable]["value"]
    return {action.lower() for action in actions}


@pytest.mark.parametrize("resource_type", sorted(CUSTOM_ROLES))
def test_each_custom_role_holds_exactly_the_actions_the_code_calls(resource_type: str) -> None:
    variable, role = CUSTOM_ROLES[resource_type]
    needed = {
        arm_action(resource_type, call.method, call.path)
        for call in client_calls()
        if ARM_CLIENTS.get(call.client) == resource_type
    }
    needed |= {
        action.lower()
        for client, operations in DATA_ACTIONS.items()
        for call in client_calls()
        if call.client == client and (action := operations[call.operation]).lower().startswith(resource_type.lower())
    }
    assert needed, f"no call needs {resource_type}"
    granted = _custom_role(variable)
    assert granted == needed, f"{variable}: extra {granted - needed}, missing {needed - granted}"
    tree = parse_bicep(MODULES / "custom-roles.bicep")
    permissions = body(tree["resources"][role])["properties"]["permissions"]
    assert permissions == [{"actions": variable, "notActions": []}], "no wildcards, no other permission block"


def _hook_assignments(plan: str, tmp_path: Path, **options: str) -> set[tuple[str, str]]:
    """(role, scope kind) the hook assigns for one workspace, run against a fake az."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(FAKE_AZ, encoding="utf-8")
    (bin_dir / "az").chmod(0o755)
    state = tmp_path / "state"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_AZ_LOG": str(tmp_path / "log"),
        "FAKE_AZ_STATE": str(state),
        "SYNAPSE_RBAC_PLAN": plan,
        "GATEWAY_IDENTITY_PRINCIPAL_ID": PRINCIPAL,
        **options,
    }
    result = subprocess.run(["bash", str(HOOK)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    kinds = {
        r"^workspaces/[^/]+$": "workspace",
        "/credentials/WorkspaceSystemIdentity$": "credential",
        "/bigDataPools/": "pool",
    }
    found = set()
    for line in state.read_text(encoding="utf-8").splitlines():
        _, role, _, scope = line.split("|")
        (kind,) = [name for pattern, name in kinds.items() if re.search(pattern, scope)]
        found.add((role, kind))
    return found


def test_the_hook_assigns_exactly_the_synapse_roles_the_code_needs(tmp_path: Path) -> None:
    """For a workspace with pipelines and a named Spark pool: the union of what each Synapse call needs."""
    pools = base64.b64encode(json.dumps(["small"]).encode()).decode()
    assigned = _hook_assignments(f"lake|1|{pools}", tmp_path)
    needed = {
        need
        for call in client_calls()
        if call.client in SYNAPSE_DATA_PLANE
        for need in SYNAPSE_DATA_PLANE[call.client][call.operation]
    }
    assert assigned == needed
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for action in NOT_GRANTED_BY_DEFAULT.values():
        assert action in guide, f"docs/deploy.md must say that {action} is not granted, and how to add it"


# ---- docs/deploy.md's role table against the Bicep and the hook --------------------------------------

PRINCIPALS = {
    "gatewayPrincipalId": "gateway identity",
    "hostPrincipalId": "host identity",
    "apimPrincipalId": "APIM identity",
    "principalId": "on-call principals, deploying user",  # rbac.bicep's loop over the operators
}
# Where each Bicep role assignment is (module file, scope symbol), as the table names it.
SCOPES = {
    ("rbac.bicep", "storage"): "gateway storage account",
    ("rbac.bicep", "appInsights"): "Application Insights",
    ("datafactory-rbac.bicep", "factory"): "each listed factory",
    ("synapse-rbac.bicep", "workspace"): "each listed Synapse workspace",
    ("machinelearning-rbac.bicep", "workspace"): "each listed Azure ML workspace",
    ("key-vault.bicep", "forwardUrlSecret"): "each forwarding secret",
    ("key-vault.bicep", "forwardSecretSecret"): "each forwarding secret",
    ("function-key-secret.bicep", "functionKeySecret"): "the function-key secret",
}
# The gateway identity is what main.bicep passes as these modules' principalId.
GATEWAY_MODULES = {"datafactory-rbac.bicep", "synapse-rbac.bicep", "machinelearning-rbac.bicep"}
HOOK_SCOPES = {
    "workspace": "each listed Synapse workspace",
    "credential": "credential WorkspaceSystemIdentity",
    "pool": "each listed Spark pool",
}
GUID = re.compile(r"`?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`?")


def _role_id(tree: dict[str, Any], module: str, expression: Any) -> str:
    """A role assignment's roleDefinitionId as a built-in GUID or a custom role's name."""
    name = expression["function"]["parameters"]["resource_name_1"]
    variables = tree.get("variables", {})
    if isinstance(name, dict):  # roles.<key>
        operands = name["operator"]["operands"]
        return str(variables[operands["operand_1"]]["value"][operands["operand_2"]])
    if name in variables:
        return str(variables[name]["value"])
    assert name == "roleDefinitionId", f"{module}: unexpected role id {name}"
    roles = parse_bicep(MODULES / "custom-roles.bicep")
    role = {"datafactory-rbac.bicep": "dataFactoryRole", "synapse-rbac.bicep": "synapseRole"}.get(
        module, "machineLearningRole"
    )
    role_name = body(roles["resources"][role])["properties"]["roleName"]
    return str(role_name).split(" (")[0]


def bicep_assignments() -> set[tuple[str, str, str]]:
    """(principal, role id or custom role name, scope) of every role assignment the Bicep makes."""
    found = set()
    for path in sorted(MODULES.glob("*.bicep")):
        tree = parse_bicep(path)
        for entry in resources_of_type(tree, "Microsoft.Authorization/roleAssignments").values():
            assignment = body(entry)
            properties = assignment["properties"]
            principal = properties["principalId"]
            who = "gateway identity" if path.name in GATEWAY_MODULES else PRINCIPALS[principal]
            scope = SCOPES[(path.name, assignment["scope"])]
            found.add((who, _role_id(tree, path.name, properties["roleDefinitionId"]), scope))
    return found


def _table(text: str, header: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower().startswith(header.lower()))
    columns = [cell.strip().lower() for cell in lines[start].strip().strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def doc_roles() -> list[dict[str, str]]:
    return _table(DEPLOY_DOC.read_text(encoding="utf-8"), "| principal | role | role id | scope |")


def test_the_role_table_names_every_azure_rbac_assignment_and_nothing_else() -> None:
    documented = set()
    for row in doc_roles():
        if row["role id"] in {"Synapse RBAC", "Fabric workspace role"}:
            continue
        guid = GUID.fullmatch(row["role id"])
        role = guid.group(1) if guid else row["role"]
        assert guid or row["role id"] == "custom", f"role id of {row['role']}: a built-in GUID, or custom"
        documented.add((row["principal"], role, row["scope"].split(" (")[0]))
    assert documented == bicep_assignments(), (
        f"only in docs/deploy.md: {documented - bicep_assignments()}; "
        f"only in the Bicep: {bicep_assignments() - documented}"
    )


def test_the_role_table_names_the_synapse_roles_the_hook_assigns(tmp_path: Path) -> None:
    pools = base64.b64encode(json.dumps(["small"]).encode()).decode()
    # Every role the hook may assign, the opt-in pipeline cancel's included.
    plan = _hook_assignments(f"lake|1|{pools}", tmp_path, GATEWAY_SYNAPSE_PIPELINE_CANCEL="true")
    assigned = {(role, HOOK_SCOPES[kind]) for role, kind in plan}
    documented = {
        (row["role"], next(scope for scope in HOOK_SCOPES.values() if row["scope"].startswith(scope)))
        for row in doc_roles()
        if row["role id"] == "Synapse RBAC"
    }
    assert documented == assigned


def test_the_role_table_says_why_and_which_code_needs_each_role() -> None:
    rows = doc_roles()
    assert rows
    for row in rows:
        assert len(row["why"]) > 15, f"{row['role']}: why?"
        assert "`" in row["code path"] or row["code path"].startswith("Functions host"), (
            f"{row['role']}: which code path needs it?"
        )
    # Fabric's are workspace roles, given by hand: the row points at the section that says how.
    (fabric,) = [row for row in rows if row["role id"] == "Fabric workspace role"]
    assert fabric["role"] == "Contributor"
    (anchor,) = re.findall(r"\]\(#([a-z0-9-]+)\)", fabric["code path"])
    headings = {
        _slug(line.lstrip("#").strip())
        for line in DEPLOY_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/deploy.md has no section #{anchor}"


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_readme_on_call_roles_are_the_ones_the_bicep_grants() -> None:
    """#16: `ack` deletes messages and writes the alert history, `alerts` past 32 messages receives and
    releases them: the README's table and the Bicep name the same data roles."""
    rows = _table(README.read_text(encoding="utf-8"), "| command | what it does in Storage | role |")
    documented = {match for row in rows for match in GUID.findall(row["role"])}
    granted = {role for who, role, _ in bicep_assignments() if who == "on-call principals, deploying user"}
    assert documented == granted
    commands = {row["command"].strip("`").split()[0] for row in rows}
    assert {"alerts", "ack"} <= commands


def test_the_catalog_and_the_role_assignments_cover_the_same_targets() -> None:
    main = parse_bicep(INFRA / "main.bicep")
    loops = {
        name: entry["config"]["loop_type"]["detail"]["array_name"]
        for name, entry in main["modules"].items()
        if "loop_type" in entry["config"]
    }
    assert loops["dataFactoryRbac"] == "dataFactoryTargets"
    assert loops["synapseRbac"] == "synapseTargets"
    assert loops["machineLearningRbac"] == "machineLearningTargets"
    # The custom roles are assignable only where the listed targets are.
    params = body(main["modules"]["customRoles"])["params"]
    assert (params["dataFactoryScopes"], params["synapseScopes"], params["machineLearningScopes"]) == (
        "dataFactoryScopes",
        "synapseScopes",
        "machineLearningScopes",
    )
    roles = parse_bicep(MODULES / "custom-roles.bicep")
    for role, scopes in (
        ("dataFactoryRole", "dataFactoryScopes"),
        ("synapseRole", "synapseScopes"),
        ("machineLearningRole", "machineLearningScopes"),
    ):
        assert body(roles["resources"][role])["properties"]["assignableScopes"] == scopes


def test_the_custom_roles_ids_are_fixed_per_environment_so_ci_can_assign_them_without_writing_them() -> None:
    main = parse_bicep(INFRA / "main.bicep")
    ids = main["variables"]["customRoleIds"]["value"]
    assert set(ids) == {"dataFactory", "synapse", "machineLearning"}
    assert all(value["function"]["type"] == "guid" for value in ids.values())
    module = main["modules"]["customRoles"]
    assert module["config"]["condition"] == "manageCustomRoles", "an identity that may not write them skips it"
    assert body(module)["params"]["roleIds"] == "customRoleIds"
    roles = parse_bicep(MODULES / "custom-roles.bicep")
    for role, key in (
        ("dataFactoryRole", "dataFactory"),
        ("synapseRole", "synapse"),
        ("machineLearningRole", "machineLearning"),
    ):
        name = body(roles["resources"][role])["name"]
        assert name["operator"]["operands"] == {"operand_1": "roleIds", "operand_2": key}
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    for module_name, key in (
        ("dataFactoryRbac", "dataFactory"),
        ("synapseRbac", "synapse"),
        ("machineLearningRbac", "machineLearning"),
    ):
        block = text[text.index(f"module {module_name} ") :]
        assert f"roleDefinitionId: customRoleIds.{key}" in block[: block.index("}]")]
