// The gateway's custom Synapse workspace reader role (custom-roles.bicep: Microsoft.Synapse/workspaces/read
// only) on ONE Synapse workspace, deployed into the workspace's resource group (which may be in another
// subscription). It lets the diagnostics read the workspace resource (endpoints, managed network);
// Reader would also read every pool and child resource. Running pipelines and Spark jobs is governed
// by Synapse RBAC, a data-plane system that ARM cannot assign: see infra/hooks/postprovision.sh.

@description('Name of the existing Synapse workspace.')
param workspaceName string

@description('Principal (object) id of the gateway\'s user-assigned identity.')
param principalId string

@description('Id (GUID) of the custom role "Pipeline Gateway Synapse workspace reader".')
param roleDefinitionId string

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' existing = {
  name: workspaceName
}

resource workspaceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleDefinitionId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
