#!/usr/bin/env bash
# Creates the identities GitHub Actions deploys with (docs/deploy.md, "Deploy from GitHub Actions"),
# each trusted through a federated credential only (no secret):
#
#   pipeline-gateway-deploy   GitHub environment "production" (.github/workflows/deploy.yml):
#                             Contributor on the subscription, and Role Based Access Control Administrator
#                             with an ABAC condition: it may assign and remove ONLY the roles infra/
#                             assigns (the built-in ids below and this environment's custom roles), so
#                             it cannot grant itself or anyone Owner, Contributor or User Access Administrator.
#   pipeline-gateway-preview  GitHub environment "preview" (ci.yml, provision-preview): Reader and a
#                             custom role with only the deployment what-if and validate actions.
#
# Neither may write role definitions: the custom roles are created by a person's first `azd provision`
# (Owner or User Access Administrator); the pipeline then runs with GATEWAY_MANAGE_CUSTOM_ROLES=false.
#
# Inputs:
#   GITHUB_REPOSITORY   owner/repo whose workflows deploy
#   SUBSCRIPTION_ID     the deployment's subscription
#   CUSTOM_ROLE_IDS     the custom roles' ids: `azd env get-value CUSTOM_ROLE_IDS` after the first provision
#   EXTRA_SCOPES        optional, space-separated: resource groups of factories and workspaces outside the
#                       subscription, where the deploy identity also gets the conditioned RBAC Administrator
#   DRY_RUN=1           print the az commands instead of running them
set -euo pipefail

log() { printf 'deploy-identity: %s\n' "$*" >&2; }

# The built-in roles infra/ assigns (tests/infra/test_roles.py checks this list against the Bicep).
BUILT_IN_ROLE_IDS=(
  b7e6dc6d-f1e8-4753-8033-0f276bb0955b # Storage Blob Data Owner (host identity)
  974c5e8b-45b9-4653-ba55-5f855dd0fb88 # Storage Queue Data Contributor
  0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3 # Storage Table Data Contributor
  3913510d-42f4-4e42-8a64-420c390055eb # Monitoring Metrics Publisher
  4633458b-17de-408a-b874-0445c86b69e6 # Key Vault Secrets User
)
RBAC_ADMINISTRATOR=f58310d9-a9f6-439a-9e8d-f62e7b41a168
guid='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

repository="${GITHUB_REPOSITORY:-}"
subscription="${SUBSCRIPTION_ID:-}"
if [[ ! "${repository}" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]]; then
  log "GITHUB_REPOSITORY must be owner/repo"
  exit 1
fi
if [[ ! "${subscription}" =~ ${guid} ]]; then
  log "SUBSCRIPTION_ID must be a subscription id"
  exit 1
fi
IFS=',' read -r -a custom_ids <<<"${CUSTOM_ROLE_IDS:-}"
if (( ${#custom_ids[@]} == 0 )); then
  log "CUSTOM_ROLE_IDS is empty: provision once yourself, then: CUSTOM_ROLE_IDS=\$(azd env get-value CUSTOM_ROLE_IDS)"
  exit 1
fi
for id in "${custom_ids[@]}"; do
  if [[ ! "${id}" =~ ${guid} ]]; then
    log "not a role id in CUSTOM_ROLE_IDS: '${id}'"
    exit 1
  fi
done

run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@" >&2
    printf '\n' >&2
    [[ "$2 $3 $4" == "ad app create" ]] && printf '00000000-0000-0000-0000-000000000000\n'
    return 0
  fi
  "$@"
}

# The ABAC condition: role assignments may be written and deleted only for these role definitions.
allowed="$(IFS=','; echo "${BUILT_IN_ROLE_IDS[*]},${custom_ids[*]}")"
allowed="${allowed//,/, }"
condition="((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${allowed}})) AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${allowed}}))"

# identity NAME ENVIRONMENT: an app registration and service principal trusted by one GitHub environment.
identity() {
  local name="$1" environment="$2" app_id
  app_id="$(run az ad app create --display-name "${name}" --query appId --output tsv)"
  run az ad sp create --id "${app_id}" --output none
  run az ad app federated-credential create --id "${app_id}" --parameters "{\"name\": \"github-${environment}\", \"issuer\": \"https://token.actions.githubusercontent.com\", \"subject\": \"repo:${repository}:environment:${environment}\", \"audiences\": [\"api://AzureADTokenExchange\"]}"
  printf '%s\n' "${app_id}"
}

scope="/subscriptions/${subscription}"

deploy_app="$(identity pipeline-gateway-deploy production)"
run az role assignment create --assignee "${deploy_app}" --role Contributor --scope "${scope}" --output none
for target in "${scope}" ${EXTRA_SCOPES:-}; do
  run az role assignment create --assignee "${deploy_app}" --role "${RBAC_ADMINISTRATOR}" --scope "${target}" \
    --condition "${condition}" --condition-version "2.0" --output none
done
log "deploy identity ${deploy_app}: set it as AZURE_CLIENT_ID of the GitHub environment 'production'"

preview_app="$(identity pipeline-gateway-preview preview)"
run az role assignment create --assignee "${preview_app}" --role Reader --scope "${scope}" --output none
run az role definition create --role-definition "{\"Name\": \"Pipeline Gateway deployment preview (${subscription})\", \"Description\": \"Validate and what-if deployments (azd provision --preview); nothing else is written.\", \"Actions\": [\"Microsoft.Resources/deployments/validate/action\", \"Microsoft.Resources/deployments/whatIf/action\"], \"AssignableScopes\": [\"${scope}\"]}" --output none
run az role assignment create --assignee "${preview_app}" --role "Pipeline Gateway deployment preview (${subscription})" --scope "${scope}" --output none
log "preview identity ${preview_app}: set it as AZURE_CLIENT_ID of the GitHub environment 'preview'"
