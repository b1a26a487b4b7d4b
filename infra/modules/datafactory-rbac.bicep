// The gateway's custom Data Factory role (custom-roles.bicep) on ONE factory, deployed into the
// factory's own resource group (which may be in another subscription). It holds exactly the ARM
// actions the gateway calls: start, read, query and cancel runs, read the factory and its pipelines.
// Data Factory Contributor, which could also edit pipelines and linked services, is not used.

@description('Name of the existing data factory.')
param factoryName string

@description('Principal (object) id of the gateway\'s user-assigned identity.')
param principalId string

@description('Id (GUID) of the custom role "Pipeline Gateway Data Factory runner".')
param roleDefinitionId string

resource factory 'Microsoft.DataFactory/factories@2018-06-01' existing = {
  name: factoryName
}

resource runner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(factory.id, principalId, roleDefinitionId)
  scope: factory
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output factoryId string = factory.id
