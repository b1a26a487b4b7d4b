// Role assignments inside the gateway's own resource group (least privilege, data-plane roles only).
//
//   host identity      -> Storage Blob Data Owner         (Functions host: deployment package, timer and singleton locks)
//                      -> Monitoring Metrics Publisher    (host telemetry into App Insights without a key)
//   gateway identity   -> Storage Queue Data Contributor  (alert and poll queues, queue triggers)
//                      -> Storage Table Data Contributor  (run registry, alert history)
//                      -> Monitoring Metrics Publisher    (the app's telemetry into App Insights without a key)
//   APIM identity      -> Monitoring Metrics Publisher    (APIM logger into App Insights without a key)
//   on-call principals -> Storage Queue Data Contributor, Storage Table Data Contributor (the on-call CLI:
//                         `alerts` receives and releases past 32 messages, `ack` deletes messages and
//                         writes the alert history; README "On call")
//   deploying user     -> the same two roles (AZURE_PRINCIPAL_ID: run the CLI or `func start` against Azure)
//
// The gateway identity (the one the app's code uses) holds no blob role: it cannot write the app's package.

param storageAccountName string

param applicationInsightsName string

@description('Principal (object) id of the gateway\'s user-assigned identity (the app\'s code).')
param gatewayPrincipalId string

@description('Principal (object) id of the Functions host\'s user-assigned identity (host storage, deployment package).')
param hostPrincipalId string

@description('Principal (object) id of API Management\'s user-assigned identity.')
param apimPrincipalId string

@description('Users or groups (object ids) that run the on-call CLI.')
param onCallPrincipalIds array = []

@description('Object id of the deploying user (azd: AZURE_PRINCIPAL_ID); empty for none.')
param deployerPrincipalId string = ''

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// The people who read and acknowledge alerts: the on-call group(s) and, if given, the deploying user.
var operatorPrincipalIds = union(onCallPrincipalIds, empty(deployerPrincipalId) ? [] : [
  deployerPrincipalId
])

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hostPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource hostMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, hostPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource gatewayQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, gatewayPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource gatewayTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, gatewayPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource gatewayMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, gatewayPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource apimMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, apimPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: apimPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorTableContributors 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in operatorPrincipalIds: {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
  }
}]

resource operatorQueueContributors 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in operatorPrincipalIds: {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: principalId
  }
}]
