// Data Factory Contributor for the gateway's identity on ONE factory (deployed into the factory's
// own resource group, which may be in another subscription). Starting, querying and cancelling
// pipeline runs are ARM actions under Microsoft.DataFactory/factories/*, which this role grants;
// no built-in role narrower than it allows createRun.

@description('Name of the existing data factory.')
param factoryName string

@description('Principal (object) id of the gateway\'s user-assigned identity.')
param principalId string

var dataFactoryContributor = '673868aa-7521-48a0-acc6-0f60742d39f5'

resource factory 'Microsoft.DataFactory/factories@2018-06-01' existing = {
  name: factoryName
}

resource contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(factory.id, principalId, dataFactoryContributor)
  scope: factory
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataFactoryContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output factoryId string = factory.id
