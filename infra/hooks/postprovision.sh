#!/usr/bin/env bash
# azd postprovision hook: Synapse RBAC for the gateway's managed identity.
#
# Synapse RBAC is a data-plane permission system (served by https://<ws>.dev.azuresynapse.net), not
# an ARM resource, so Bicep cannot assign it. For every Synapse workspace in the catalog this script
# assigns, idempotently (it lists before it creates):
#
#   Synapse User                 workspace                     read the workspace: list pools, Spark batch state
#   Synapse Monitoring Operator  workspace                     read pipeline runs, activity runs and their
#                                                              outputs/errors, and Spark pool logs (alert details)
#   Synapse Credential User      credential WorkspaceSystemIdentity
#                                (only if pipelines are listed)  run pipelines that use the workspace identity
#   Synapse Compute Operator     each listed Spark pool, or the workspace when pipelines are listed or a
#                                pool entry is a pattern        submit and cancel Spark jobs; use integration
#                                                              runtimes and cancel runs for pipelines
#
# Inputs (azd passes its environment, which holds the Bicep outputs):
#   GATEWAY_IDENTITY_PRINCIPAL_ID  object id of the gateway's user-assigned identity
#   SYNAPSE_RBAC_PLAN              "workspace|hasPipelines(0/1)|base64(JSON of sparkPools)" joined by ";"
#   GATEWAY_RBAC_DRY_RUN=1         print what would be assigned, change nothing
#
# The signed-in principal (azd's az login) must be Synapse Administrator on each workspace, or an
# Azure Owner of it, and reach its dev endpoint (the workspace's network rules apply).
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

# Spark pool names are letters and digits; anything else (a glob, an object entry) means the
# catalog does not name every pool, so Compute Operator goes to the workspace scope.
plain_pool_list='^\[("[A-Za-z][A-Za-z0-9]*"(,"[A-Za-z][A-Za-z0-9]*")*)?\]$'

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

  ensure_role "${workspace}" "Synapse User" "${workspace_scope}"
  ensure_role "${workspace}" "Synapse Monitoring Operator" "${workspace_scope}"

  if [[ "${has_pipelines}" == "1" ]]; then
    ensure_role "${workspace}" "Synapse Credential User" "${workspace_scope}/credentials/WorkspaceSystemIdentity"
  fi

  if [[ "${has_pipelines}" == "1" || ! "${pools_json}" =~ ${plain_pool_list} ]]; then
    ensure_role "${workspace}" "Synapse Compute Operator" "${workspace_scope}"
  else
    pool_names="${pools_json#[}"
    pool_names="${pool_names%]}"
    pool_names="${pool_names//\"/}"
    IFS=',' read -r -a pools <<<"${pool_names}"
    for pool in "${pools[@]}"; do
      [[ -z "${pool}" ]] && continue
      ensure_role "${workspace}" "Synapse Compute Operator" "${workspace_scope}/bigDataPools/${pool}"
    done
  fi
done
log "Synapse RBAC is in place"
