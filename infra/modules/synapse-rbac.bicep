// Azure RBAC Reader for the gateway's identity on ONE Synapse workspace (deployed into the
// workspace's resource group, which may be in another subscription). It lets the gateway read the
// workspace's ARM metadata (endpoints, Spark pools) for diagnostics. Running pipelines and Spark jobs
// is governed by Synapse RBAC, a data-plane system that ARM cannot assign: see
// infra/hooks/postprovision.sh, run by azd after provisioning.

@description('Name of the existing Synapse workspace.')
param workspaceName string

@description('Principal (object) id of the gateway\'s user-assigned identity.')
param principalId string

var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' existing = {
  name: workspaceName
}

resource workspaceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, reader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
