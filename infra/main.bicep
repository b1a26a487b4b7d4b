// Pipeline Gateway: everything `azd up` provisions.
//
//   resource group rg-<env>
//   ├─ user-assigned identity id-gw-*     the gateway's credential: the app's code (targets, its tables and queues, secrets)
//   ├─ user-assigned identity id-host-*   the Functions host's: host storage and the deployment package, nothing else
//   ├─ user-assigned identity id-apim-*   API Management's identity (Easy Auth token, Key Vault, telemetry)
//   ├─ storage account st*                shared key disabled; runs table, alert + poll queues, package
//   ├─ Log Analytics + Application Insights (local auth disabled) + the platform workbook
//   ├─ Flex Consumption plan + function app (Python 3.11)
//   ├─ API Management (Consumption | StandardV2): API from openapi.json, products, policies
//   ├─ Key Vault                          forwarding webhook secrets; the function key with backendAuth = functionKey
//   └─ VNet, private endpoints, DNS zones only with enablePrivateNetworking = true
//   Entra app registration (Graph)        only with backendAuth = easyAuth and no backendAppClientId
//   Custom roles with exactly the actions the code calls, assigned on each listed factory and workspace.
//   Synapse RBAC (data plane) is assigned after provisioning by infra/hooks/postprovision.sh.
//   Names follow azd's abbreviations (abbreviations.json).
targetScope = 'subscription'

// ---- Environment ------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name; resource names derive a unique token from it.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Tags added to every resource.')
param tags object = {}

@description('Object id of the person running azd (azd sets AZURE_PRINCIPAL_ID): the on-call data roles, to run the CLI or func start against this deployment. Empty: none.')
param principalId string = ''

// ---- API Management ---------------------------------------------------------------------------

@description('API Management tier: Consumption (default, pay per call) or StandardV2.')
@allowed([
  'Consumption'
  'StandardV2'
])
param apimSku string = 'Consumption'

@description('How API Management authenticates to the function app: easyAuth (managed identity + App Service Authentication, default) or functionKey (host key from Key Vault).')
@allowed([
  'easyAuth'
  'functionKey'
])
param backendAuth string = 'easyAuth'

@description('easyAuth: client id of an existing app registration for the API. Empty: one is created (needs permission to create app registrations).')
param backendAppClientId string = ''

@description('E-mail address of the API publisher (API Management notifications).')
@minLength(3)
param apimPublisherEmail string

@description('Name of the API publisher.')
@minLength(1)
param apimPublisherName string

@description('Path of the API on the APIM gateway: https://<apim>.azure-api.net/<apiPath>/api/runs/...')
param apiPath string = 'pipeline-gateway'

@description('Products callers subscribe to: [{ id, displayName, description?, rateLimitCalls, renewalPeriod (s, <= 300), quotaCalls, quotaRenewalPeriod (s), approvalRequired?, subscriptionsLimit? }]. The id is what the catalog\'s "products" lists.')
@minLength(1)
param apimProducts array

@description('Calls per subscription per minute at API scope, whatever its product (the products\' own limits apply as well).')
@minValue(1)
param apimApiRateLimitCalls int = 120

@description('Calls per subscription per day at API scope, whatever its product (StandardV2: the quota policy works at product scope only, and quota-by-key is not on Consumption).')
@minValue(1)
param apimApiQuotaCalls int = 100000

@description('Accept APIM subscriptions without a product (scoped to the API itself): they skip the product limits.')
param apimAllowProductlessCallers bool = false

// ---- Target catalog ---------------------------------------------------------------------------

@description('Data factories: [{ name (catalog target), factoryName?, subscriptionId?, resourceGroup, pipelines: [name | glob | { match, maxDurationMinutes?, products? }] }].')
param dataFactories array = []

@description('Synapse workspaces: [{ name (catalog target), workspaceName?, subscriptionId?, resourceGroup, endpoint?, pipelines: [...], sparkPools: [name | { match, products? }] }].')
param synapseWorkspaces array = []

@description('Let the gateway cancel Synapse pipeline runs: the postprovision hook then also assigns Synapse Contributor on each workspace that lists pipelines (no narrower Synapse role may cancel a pipeline run).')
param synapsePipelineCancel bool = false

@description('Azure Machine Learning workspaces: [{ name (catalog target), workspaceName?, subscriptionId?, resourceGroup, region?, jobs: [{ name, jobType, ..., products?, maxDurationMinutes? }] }].')
param machineLearningWorkspaces array = []

@description('Microsoft Fabric workspaces: [{ name (catalog target), workspaceId, workspaceName?, pipelines: [name | { match | itemId, maxDurationMinutes?, products? }] }]. Their permissions are Fabric workspace roles, given by hand (docs/deploy.md, "Fabric workspace access").')
param fabricWorkspaces array = []

@description('Also alert when a run ends Cancelled.')
param alertOnCancelled bool = false

// ---- Gateway settings -------------------------------------------------------------------------

param runsTableName string = 'gatewayruns'

param alertQueueName string = 'pipeline-failures'

param pollQueueName string = 'gateway-poll'

@description('NCRONTAB schedule of the poller.')
param pollSchedule string = '0 */1 * * * *'

@description('true: the poller enqueues one message per target and a queue trigger polls each.')
param pollFanout bool = false

@description('Create and update the custom roles (needs Microsoft.Authorization/roleDefinitions/write: Owner or User Access Administrator). false: only reference them, as the CI identity does, which may not write role definitions (docs/deploy.md).')
param manageCustomRoles bool = true

@description('Users or groups (object ids) who run the on-call CLI: read runs and alerts, acknowledge alerts (Storage Table and Queue Data Contributor).')
param onCallPrincipalIds array = []

// ---- Alert forwarding (secrets by reference: stored in Key Vault, read by the app as Key Vault references)

@secure()
@description('GATEWAY_FORWARD_URL: an https:// webhook (Teams, Slack or your own) that receives every alert. Empty: forwarding off.')
param forwardUrl string = ''

@secure()
@description('GATEWAY_FORWARD_SECRET: the HMAC-SHA256 key that signs json posts. Empty: unsigned.')
param forwardSecret string = ''

@description('GATEWAY_FORWARD_FORMAT: what the webhook expects.')
@allowed([
  'json'
  'teams'
  'slack'
])
param forwardFormat string = 'json'

// ---- Hosting ----------------------------------------------------------------------------------

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---- Private networking -----------------------------------------------------------------------

@description('Secure integration: VNet-integrated function app, private endpoints for Storage, the factories, the Synapse dev endpoints and the Azure ML workspaces; Storage public access disabled.')
param enablePrivateNetworking bool = false

@description('Request every private endpoint to a factory or workspace for manual approval by its owner (those in other subscriptions always are).')
param privateEndpointManualApproval bool = false

param vnetAddressPrefix string = '10.60.0.0/16'

param appSubnetPrefix string = '10.60.1.0/24'

param privateEndpointSubnetPrefix string = '10.60.2.0/24'

// ---- Names (azd abbreviations) ---------------------------------------------------------------

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var names = {
  resourceGroup: '${abbrs.resourcesResourceGroups}${environmentName}'
  gatewayIdentity: '${abbrs.managedIdentityUserAssignedIdentities}gw-${resourceToken}'
  hostIdentity: '${abbrs.managedIdentityUserAssignedIdentities}host-${resourceToken}'
  apimIdentity: '${abbrs.managedIdentityUserAssignedIdentities}apim-${resourceToken}'
  storage: '${abbrs.storageStorageAccounts}${resourceToken}'
  logAnalytics: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
  appInsights: '${abbrs.insightsComponents}${resourceToken}'
  plan: '${abbrs.webServerFarms}${resourceToken}'
  functionApp: '${abbrs.webSitesFunctions}gw-${resourceToken}'
  apim: '${abbrs.apiManagementService}${resourceToken}'
  keyVault: '${abbrs.keyVaultVaults}gw-${resourceToken}'
  vnet: '${abbrs.networkVirtualNetworks}${resourceToken}'
  entraApp: 'pipeline-gateway-${environmentName}-${resourceToken}'
}
var deploymentContainerName = 'app-package-${take(names.functionApp, 32)}-${take(resourceToken, 7)}'
var useEasyAuth = backendAuth == 'easyAuth'
var createEntraApp = useEasyAuth && empty(backendAppClientId)

// ---- Target catalog (GATEWAY_CATALOG), built from the parameters ------------------------------

var dataFactoryTargets = [for factory in dataFactories: {
  name: factory.name
  kind: 'datafactory'
  subscriptionId: contains(factory, 'subscriptionId') ? factory.subscriptionId : subscription().subscriptionId
  resourceGroup: factory.resourceGroup
  factoryName: contains(factory, 'factoryName') ? factory.factoryName : factory.name
  pipelines: contains(factory, 'pipelines') ? factory.pipelines : []
}]

var synapseTargets = [for workspace in synapseWorkspaces: {
  name: workspace.name
  kind: 'synapse'
  workspaceName: contains(workspace, 'workspaceName') ? workspace.workspaceName : workspace.name
  endpoint: contains(workspace, 'endpoint') ? workspace.endpoint : 'https://${contains(workspace, 'workspaceName') ? workspace.workspaceName : workspace.name}.dev.azuresynapse.net'
  subscriptionId: contains(workspace, 'subscriptionId') ? workspace.subscriptionId : subscription().subscriptionId
  resourceGroup: workspace.resourceGroup
  pipelines: contains(workspace, 'pipelines') ? workspace.pipelines : []
  sparkPools: contains(workspace, 'sparkPools') ? workspace.sparkPools : []
}]

// A workspace's region names its run history host; without it the app discovers the host from the workspace.
var machineLearningTargets = [for workspace in machineLearningWorkspaces: union({
  name: workspace.name
  kind: 'machinelearning'
  subscriptionId: contains(workspace, 'subscriptionId') ? workspace.subscriptionId : subscription().subscriptionId
  resourceGroup: workspace.resourceGroup
  workspaceName: contains(workspace, 'workspaceName') ? workspace.workspaceName : workspace.name
  jobs: contains(workspace, 'jobs') ? workspace.jobs : []
}, contains(workspace, 'region') ? {
  runHistoryEndpoint: 'https://${workspace.region}.api.azureml.ms'
} : {})]

var fabricTargets = [for workspace in fabricWorkspaces: union({
  name: workspace.name
  kind: 'fabric'
  workspaceId: workspace.workspaceId
  pipelines: contains(workspace, 'pipelines') ? workspace.pipelines : []
}, contains(workspace, 'workspaceName') ? {
  workspaceName: workspace.workspaceName
} : {})]

var catalog = {
  targets: concat(dataFactoryTargets, synapseTargets, machineLearningTargets, fabricTargets)
  alertOnCancelled: alertOnCancelled
}

var dataFactoryIds = [for target in dataFactoryTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.DataFactory/factories/${target.factoryName}']
var synapseWorkspaceIds = [for target in synapseTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.Synapse/workspaces/${target.workspaceName}']
var machineLearningWorkspaceIds = [for target in machineLearningTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${target.workspaceName}']

// Where the custom roles may be assigned: the resource groups of the listed targets, once each (union()).
var dataFactoryGroups = [for target in dataFactoryTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}']
var synapseGroups = [for target in synapseTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}']
var machineLearningGroups = [for target in machineLearningTargets: '/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}']
var dataFactoryScopes = union(dataFactoryGroups, [])
var synapseScopes = union(synapseGroups, [])
var machineLearningScopes = union(machineLearningGroups, [])

// Key Vault references need the secrets' URIs before the vault exists (the app and the vault are
// created in one deployment): versionless, so a rotated secret is picked up.
var keyVaultUri = 'https://${names.keyVault}${environment().suffixes.keyvaultDns}'
var forwardUrlSecretUri = empty(forwardUrl) ? '' : '${keyVaultUri}/secrets/gateway-forward-url'
var forwardSecretSecretUri = empty(forwardSecret) ? '' : '${keyVaultUri}/secrets/gateway-forward-secret'

// Input of the postprovision hook: one entry per workspace, "name|hasPipelines|base64(sparkPools JSON)".
var synapseRbacEntries = [for target in synapseTargets: '${target.workspaceName}|${length(target.pipelines) > 0 ? '1' : '0'}|${base64(string(target.sparkPools))}']

// ---- Resources --------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: names.resourceGroup
  location: location
  tags: allTags
}

module gatewayIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'gateway-identity'
  scope: rg
  params: {
    name: names.gatewayIdentity
    location: location
    tags: allTags
  }
}

// The Functions host's own identity: AzureWebJobsStorage and the deployment package. The app's code
// uses the gateway identity, which has no blob role, so it cannot replace the package it runs from.
module hostIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'host-identity'
  scope: rg
  params: {
    name: names.hostIdentity
    location: location
    tags: allTags
  }
}

module apimIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'apim-identity'
  scope: rg
  params: {
    name: names.apimIdentity
    location: location
    tags: allTags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.16.1' = {
  name: 'log-analytics'
  scope: rg
  params: {
    name: names.logAnalytics
    location: location
    tags: allTags
    dataRetention: logRetentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    name: names.appInsights
    location: location
    tags: allTags
    logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  scope: rg
  params: {
    name: names.vnet
    location: location
    tags: allTags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: allTags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    tableNames: [
      runsTableName
    ]
    queueNames: [
      alertQueueName
      pollQueueName
    ]
    enablePrivateNetworking: enablePrivateNetworking
    logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.name
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
    hostPrincipalId: hostIdentity.outputs.principalId
    apimPrincipalId: apimIdentity.outputs.principalId
    onCallPrincipalIds: onCallPrincipalIds
    deployerPrincipalId: principalId
  }
}

// The custom roles' ids are fixed per environment, so a deployment that may not write role definitions
// (manageCustomRoles = false: the CI identity) still assigns them, and its ABAC condition can name them.
var customRoleIds = {
  dataFactory: guid(subscription().id, environmentName, resourceToken, 'pipeline-gateway-datafactory')
  synapse: guid(subscription().id, environmentName, resourceToken, 'pipeline-gateway-synapse')
  machineLearning: guid(subscription().id, environmentName, resourceToken, 'pipeline-gateway-machinelearning')
}

module customRoles 'modules/custom-roles.bicep' = if (manageCustomRoles) {
  name: 'custom-roles-${resourceToken}'
  scope: subscription()
  params: {
    nameSuffix: '${environmentName}-${resourceToken}'
    roleIds: customRoleIds
    dataFactoryScopes: dataFactoryScopes
    synapseScopes: synapseScopes
    machineLearningScopes: machineLearningScopes
  }
}

module dataFactoryRbac 'modules/datafactory-rbac.bicep' = [for (target, i) in dataFactoryTargets: {
  name: 'adf-rbac-${i}-${resourceToken}'
  scope: resourceGroup(target.subscriptionId, target.resourceGroup)
  params: {
    factoryName: target.factoryName
    principalId: gatewayIdentity.outputs.principalId
    roleDefinitionId: customRoleIds.dataFactory
  }
  dependsOn: [
    customRoles
  ]
}]

module synapseRbac 'modules/synapse-rbac.bicep' = [for (target, i) in synapseTargets: {
  name: 'synapse-rbac-${i}-${resourceToken}'
  scope: resourceGroup(target.subscriptionId, target.resourceGroup)
  params: {
    workspaceName: target.workspaceName
    principalId: gatewayIdentity.outputs.principalId
    roleDefinitionId: customRoleIds.synapse
  }
  dependsOn: [
    customRoles
  ]
}]

module machineLearningRbac 'modules/machinelearning-rbac.bicep' = [for (target, i) in machineLearningTargets: {
  name: 'ml-rbac-${i}-${resourceToken}'
  scope: resourceGroup(target.subscriptionId, target.resourceGroup)
  params: {
    workspaceName: target.workspaceName
    principalId: gatewayIdentity.outputs.principalId
    roleDefinitionId: customRoleIds.machineLearning
  }
  dependsOn: [
    customRoles
  ]
}]

module keyVault 'modules/key-vault.bicep' = {
  name: 'key-vault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
    forwardUrl: forwardUrl
    forwardSecret: forwardSecret
    logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId
  }
}

module apimService 'modules/apim-service.bicep' = {
  name: 'apim-service'
  scope: rg
  params: {
    name: names.apim
    location: location
    tags: allTags
    sku: apimSku
    publisherEmail: apimPublisherEmail
    publisherName: apimPublisherName
    identityId: apimIdentity.outputs.resourceId
  }
}

module entraApp 'modules/entra-app.bicep' = if (createEntraApp) {
  name: 'entra-app'
  scope: rg
  params: {
    uniqueName: names.entraApp
    tags: [
      'azd-env-name:${environmentName}'
      'pipeline-gateway'
    ]
  }
}

var easyAuthClientId = useEasyAuth ? (createEntraApp ? entraApp.outputs.clientId : backendAppClientId) : ''

module plan 'br/public:avm/res/web/serverfarm:0.7.0' = {
  name: 'plan'
  scope: rg
  params: {
    name: names.plan
    skuName: 'FC1'
    reserved: true
    zoneRedundant: false
    location: location
    tags: allTags
  }
}

// What callers use: the APIM gateway, the API's path, then the operations of openapi.json, which
// keep the function app's route prefix ("api", host.json). The app builds run links from it.
var apiBaseUrl = '${apimService.outputs.gatewayUrl}/${apiPath}/api'

// Settings the app reads (shared/config/settings.py); storage and identity wiring is added in the module.
var gatewaySettings = {
  GATEWAY_CATALOG: string(catalog)
  GATEWAY_RUNS_TABLE: runsTableName
  GATEWAY_ALERT_QUEUE: alertQueueName
  GATEWAY_POLL_QUEUE: pollQueueName
  GATEWAY_POLL_SCHEDULE: pollSchedule
  GATEWAY_POLL_FANOUT: pollFanout ? 'true' : 'false'
  GATEWAY_PUBLIC_BASE_URL: apiBaseUrl
  // Easy Auth is the gate in easyAuth mode (functions anonymous); otherwise the function key is.
  GATEWAY_HTTP_AUTH_LEVEL: useEasyAuth ? 'anonymous' : 'function'
  GATEWAY_FORWARD_FORMAT: forwardFormat
  GATEWAY_PRIVATE_NETWORKING: enablePrivateNetworking ? 'true' : 'false'
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: names.functionApp
    location: location
    tags: allTags
    planId: plan.outputs.resourceId
    identityId: gatewayIdentity.outputs.resourceId
    identityClientId: gatewayIdentity.outputs.clientId
    hostIdentityId: hostIdentity.outputs.resourceId
    hostIdentityClientId: hostIdentity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId
    pythonVersion: '3.11'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    gatewaySettings: gatewaySettings
    virtualNetworkSubnetId: enablePrivateNetworking ? network.outputs.appSubnetId : ''
    enableEasyAuth: useEasyAuth
    easyAuthClientId: easyAuthClientId
    apimIdentityClientId: apimIdentity.outputs.clientId
    apimIdentityPrincipalId: apimIdentity.outputs.principalId
    forwardUrlSecretUri: forwardUrlSecretUri
    forwardSecretSecretUri: forwardSecretSecretUri
  }
  dependsOn: [
    rbac
    keyVault
  ]
}

module functionKeySecret 'modules/function-key-secret.bicep' = if (!useEasyAuth) {
  name: 'function-key-secret'
  scope: rg
  params: {
    keyVaultName: keyVault.outputs.name
    functionAppName: functionApp.outputs.name
    apimPrincipalId: apimIdentity.outputs.principalId
  }
}

module apimApi 'modules/apim-api.bicep' = {
  name: 'apim-api'
  scope: rg
  params: {
    apimName: apimService.outputs.name
    apiPath: apiPath
    functionAppHostName: functionApp.outputs.defaultHostName
    functionAppId: functionApp.outputs.id
    backendAuth: backendAuth
    sku: apimSku
    easyAuthClientId: easyAuthClientId
    apimIdentityClientId: apimIdentity.outputs.clientId
    functionKeySecretUri: useEasyAuth ? '' : functionKeySecret.outputs.functionKeySecretUri
    applicationInsightsId: monitoring.outputs.id
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    products: apimProducts
    apiRateLimitCalls: apimApiRateLimitCalls
    apiQuotaCalls: apimApiQuotaCalls
    allowProductlessCallers: apimAllowProductlessCallers
  }
  dependsOn: [
    rbac
  ]
}

// The platform team's view: starts, failures and alerts per target, Azure throttling and errors, the
// poller's tick duration and lag, runs in flight, forwarding failures and poison messages.
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: allTags
    applicationInsightsId: monitoring.outputs.id
    displayName: 'Pipeline Gateway (${environmentName})'
  }
}

module privateEndpoints 'modules/private-endpoints.bicep' = if (enablePrivateNetworking) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: allTags
    virtualNetworkId: network.outputs.id
    subnetId: network.outputs.privateEndpointSubnetId
    storageAccountId: storage.outputs.id
    storageAccountName: storage.outputs.name
    dataFactoryIds: dataFactoryIds
    synapseWorkspaceIds: synapseWorkspaceIds
    machineLearningWorkspaceIds: machineLearningWorkspaceIds
    manualApproval: privateEndpointManualApproval
  }
}

// ---- Outputs (azd stores them in .azure/<env>/.env; the hook reads some) ------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output API_BASE_URL string = apiBaseUrl
output APIM_NAME string = apimService.outputs.name
output APIM_GATEWAY_URL string = apimService.outputs.gatewayUrl
output GATEWAY_BACKEND_AUTH string = backendAuth
output GATEWAY_IDENTITY_CLIENT_ID string = gatewayIdentity.outputs.clientId
output GATEWAY_IDENTITY_PRINCIPAL_ID string = gatewayIdentity.outputs.principalId
output GATEWAY_HOST_IDENTITY_CLIENT_ID string = hostIdentity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output WORKBOOK_ID string = workbook.outputs.id
// The custom roles' ids, for the CI identity's ABAC condition (infra/scripts/deploy-identity.sh).
output CUSTOM_ROLE_IDS string = join([
  customRoleIds.dataFactory
  customRoleIds.synapse
  customRoleIds.machineLearning
], ',')
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output GATEWAY_STORAGE_TABLE_URI string = storage.outputs.tableEndpoint
output GATEWAY_STORAGE_QUEUE_URI string = storage.outputs.queueEndpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output SYNAPSE_RBAC_PLAN string = join(synapseRbacEntries, ';')
output GATEWAY_SYNAPSE_PIPELINE_CANCEL string = synapsePipelineCancel ? 'true' : 'false'
output PRIVATE_ENDPOINT_APPROVALS array = enablePrivateNetworking ? privateEndpoints.outputs.approvals : []
