#!/usr/bin/env bash
# azd postprovision hook: Synapse RBAC for the gateway's managed identity.
#
# Synapse RBAC is a data-plane permission system (served by https://<ws>.dev.azuresynapse.net), not
# an ARM resource, so Bicep cannot assign it. For every Synapse workspace in the catalog this script
# assigns, idempotently (it lists before it creates), the narrowest scope Synapse RBAC allows for what
# the gateway calls (docs/deploy.md, "Roles"; tests/infra/test_roles.py checks it against the code):
#
#   Synapse User                 workspace                   read Spark batches, managed private endpoints
#                                                            and linked services (diagnostics)
#   Synapse Monitoring Operator  workspace (pipelines only)  read published pipelines, pipeline and activity
#                                                            runs and their errors (poller, alerts)
#   Synapse Credential User      credential WorkspaceSystemIdentity (pipelines only)
#                                                            run pipelines: createRun
#   Synapse Compute Operator     each listed Spark pool; the workspace only when a pool entry is a
#                                pattern, which names no single pool   submit and cancel Spark batches
#
# Inputs (azd passes its environment, which holds the Bicep outputs):
#   GATEWAY_IDENTITY_PRINCIPAL_ID  object id of the gateway's user-assigned identity
#   SYNAPSE_RBAC_PLAN              "workspace|hasPipelines(0/1)|base64(JSON of sparkPools)" joined by ";"
#   GATEWAY_RBAC_DRY_RUN=1         print what would be assigned, change nothing
#   GATEWAY_SYNAPSE_PIPELINE_CANCEL=true  (the synapsePipelineCancel parameter)
#                                  also Synapse Contributor on workspaces with pipelines: cancelling a
#                                  pipeline run needs cancelPipelineRun/action, which no narrower role
#                                  holds (Contributor can also write artifacts, so it is opt-in)
#
# The signed-in principal (azd's az login) must be Synapse Administrator on each workspace, or an
# Azure Owner of it, and reach its dev endpoint (the workspace's network rules apply). python3 (a
# prerequisite of the deployment) reads the Spark pool entries.
set -euo pipefail

log() { printf 'postprovision: %s\n' "$*" >&2; }

plan="${SYNAPSE_RBAC_PLAN:-}"
if [[ -z "${plan}" ]]; then
  log "no Synapse workspace in the catalog: no Synapse RBAC to assign"
  exit 0
fi

principal="${GATEWAY_IDENTITY_PRINCIPAL_ID:-}"
if [[ ! "${principal}" =~ ^[0-9a-fA-F-]{36}$ ]]; then
  log "GATEWAY_IDENTITY_PRINCIPAL_ID is missing or not a GUID; run 'azd provision' first"
  exit 1
fi

dry_run="${GATEWAY_RBAC_DRY_RUN:-0}"
if [[ "${dry_run}" != "1" ]] && ! command -v az >/dev/null 2>&1; then
  log "the Azure CLI (az) is required to assign Synapse RBAC roles: https://aka.ms/azure-cli"
  exit 1
fi

# Retries a command a few times: a new identity takes a while to replicate, and the Synapse
# access-control API throttles.
with_retry() {
  local attempt=1 delay=10
  until "$@"; do
    if (( attempt >= 4 )); then
      return 1
    fi
    log "attempt ${attempt} failed; retrying in ${delay}s"
    sleep "${delay}"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# ensure_role WORKSPACE ROLE SCOPE: assign ROLE at SCOPE unless the identity already has it there.
ensure_role() {
  local workspace="$1" role="$2" scope="$3" existing
  if [[ "${dry_run}" == "1" ]]; then
    log "[dry run] ${workspace}: '${role}' at ${scope}"
    return 0
  fi
  existing="$(with_retry az synapse role assignment list \
    --workspace-name "${workspace}" \
    --role "${role}" \
    --assignee-object-id "${principal}" \
    --scope "${scope}" \
    --query "length([?scope=='${scope}'])" \
    --output tsv)"
  if [[ "${existing}" =~ ^[1-9][0-9]*$ ]]; then
    log "${workspace}: '${role}' at ${scope} already assigned"
    return 0
  fi
  with_retry az synapse role assignment create \
    --workspace-name "${workspace}" \
    --role "${role}" \
    --assignee-object-id "${principal}" \
    --assignee-principal-type ServicePrincipal \
    --scope "${scope}" \
    --output none
  log "${workspace}: '${role}' at ${scope} assigned"
}

# Spark pool scopes of a workspace's catalog entries (JSON), one per line: "pool <name>" for an entry
# that names one pool (a string or an object's "match"), "workspace" for a pattern. Spark pool names
# are letters and digits, starting with a letter; anything else is a glob.
pool_scopes() {
  python3 -c '
import json, re, sys
for entry in json.loads(sys.argv[1]):
    name = entry.get("match", "") if isinstance(entry, dict) else str(entry)
    print(f"pool {name}" if re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,63}", name) else "workspace")
' "$1"
}

IFS=';' read -r -a entries <<<"${plan}"
for entry in "${entries[@]}"; do
  [[ -z "${entry}" ]] && continue
  IFS='|' read -r workspace has_pipelines pools_b64 <<<"${entry}"
  if [[ ! "${workspace}" =~ ^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$ ]]; then
    log "malformed workspace name in SYNAPSE_RBAC_PLAN: '${workspace}'"
    exit 1
  fi
  pools_json="$(printf '%s' "${pools_b64}" | base64 -d)"
  workspace_scope="workspaces/${workspace}"

  if ! scopes="$(pool_scopes "${pools_json}")"; then
    log "unreadable Spark pool entries for workspace '${workspace}' in SYNAPSE_RBAC_PLAN"
    exit 1
  fi

  ensure_role "${workspace}" "Synapse User" "${workspace_scope}"

  if [[ "${has_pipelines}" == "1" ]]; then
    ensure_role "${workspace}" "Synapse Monitoring Operator" "${workspace_scope}"
    ensure_role "${workspace}" "Synapse Credential User" "${workspace_scope}/credentials/WorkspaceSystemIdentity"
    if [[ "${GATEWAY_SYNAPSE_PIPELINE_CANCEL:-false}" == "true" ]]; then
      ensure_role "${workspace}" "Synapse Contributor" "${workspace_scope}"
    fi
  fi

  if grep -qx "workspace" <<<"${scopes}"; then
    ensure_role "${workspace}" "Synapse Compute Operator" "${workspace_scope}"
  else
    while read -r _ pool; do
      [[ -z "${pool}" ]] && continue
      ensure_role "${workspace}" "Synapse Compute Operator" "${workspace_scope}/bigDataPools/${pool}"
    done <<<"${scopes}"
  fi
done
log "Synapse RBAC is in place"
