// The gateway's custom Azure ML role (custom-roles.bicep) on ONE Azure Machine Learning workspace,
// deployed into the workspace's resource group (which may be in another subscription): submit, read and
// cancel jobs, read the workspace, its private endpoint connections and the jobs' run history.
// AzureML Data Scientist is not used: it also lists datastore secrets and writes models and endpoints.

@description('Name of the existing Azure Machine Learning workspace.')
param workspaceName string

@description('Principal (object) id of the gateway\'s user-assigned identity.')
param principalId string

@description('Id (GUID) of the custom role "Pipeline Gateway ML job runner".')
param roleDefinitionId string

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource jobRunner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleDefinitionId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
