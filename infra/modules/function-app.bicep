// The gateway's function app on Flex Consumption (Linux, Python), running as a user-assigned
// managed identity. Storage is reached with identity-based connections only:
//   AzureWebJobsStorage__*  the Functions host (deployment package, timer locks)
//   GATEWAY_STORAGE__*      the app's own run table and queues (SDK code and queue-trigger bindings)
// With backendAuth = easyAuth, App Service Authentication admits only API Management's identity.

param name string

param location string

param tags object = {}

@description('Resource id of the Flex Consumption plan (FC1).')
param planId string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, storage connections, App Insights auth).')
param identityClientId string

param storageBlobEndpoint string

param storageQueueEndpoint string

param storageTableEndpoint string

@description('Blob container of the Flex Consumption deployment package.')
param deploymentContainerName string

param applicationInsightsConnectionString string

param logAnalyticsWorkspaceId string

@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Gateway settings (GATEWAY_*) merged over the identity and storage wiring below.')
param gatewaySettings object

@description('Subnet for outbound VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

@description('true: App Service Authentication (Easy Auth) requires an Entra token from API Management.')
param enableEasyAuth bool

@description('Client id of the Entra app registration that represents this API (the token audience).')
param easyAuthClientId string = ''

@description('Client id of API Management\'s identity: the only application allowed to call the API.')
param apimIdentityClientId string = ''

@description('Object (principal) id of API Management\'s identity.')
param apimIdentityPrincipalId string = ''

@description('Route left open for platform health probes (the function itself is anonymous).')
param healthPath string = '/api/health'

// Identity-based connections, following the azd Flex Consumption quickstarts.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
}

var gatewayStorageSettings = {
  GATEWAY_STORAGE__credential: 'managedidentity'
  GATEWAY_STORAGE__clientId: identityClientId
  GATEWAY_STORAGE__tableServiceUri: storageTableEndpoint
  GATEWAY_STORAGE__queueServiceUri: storageQueueEndpoint
}

var identitySettings = {
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // Application Insights has local auth disabled: the host sends telemetry with this identity.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

var appSettings = union(gatewaySettings, hostStorageSettings, gatewayStorageSettings, identitySettings)

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:API Management (Consumption has no VNet) calls the app on its public endpoint; Easy Auth admits only APIM's identity (functionKey mode: only the Key Vault-held key). Private inbound needs APIM Premium/v2 with a private endpoint, outside this template.
  // checkov:skip=CKV_AZURE_17:Callers are authenticated by an Entra token (Easy Auth) or a function key, not by mutual TLS; APIM presents no client certificate.
  // checkov:skip=CKV_AZURE_212:Flex Consumption manages instance counts itself (scale from zero, maximumInstanceCount); numberOfWorkers does not apply to it.
  // checkov:skip=CKV_AZURE_213:The platform health check (healthCheckPath) is not supported on Flex Consumption; /api/health is probed through APIM and Application Insights availability tests instead.
  name: name
  location: location
  // azd finds the deployment target of service "api" (azure.yaml) by this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No FTP or basic-auth SCM publishing: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// Easy Auth: Microsoft's recommended production gate in front of a function called by APIM.
// Only tokens for this API's app registration, issued to API Management's identity, get through.
// Deployed in both modes, so that switching to functionKey really turns Easy Auth off.
var easyAuthIdentityProviders = {
  azureActiveDirectory: {
    enabled: true
    registration: {
      clientId: easyAuthClientId
      openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    }
    validation: {
      allowedAudiences: [
        easyAuthClientId
        'api://${easyAuthClientId}'
      ]
      defaultAuthorizationPolicy: {
        allowedApplications: [
          apimIdentityClientId
        ]
        allowedPrincipals: {
          identities: [
            apimIdentityPrincipalId
          ]
        }
      }
    }
  }
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov evaluates this child "config" resource with the checks of a whole web app; the checks
  // below are about the site (see "site" above and its diagnostic settings), not about authsettingsV2.
  // checkov:skip=CKV_AZURE_13:False positive on a sites/config child: this resource IS the App Service Authentication setting.
  // checkov:skip=CKV_AZURE_63:False positive on a sites/config child: HTTP logging is a site setting; FunctionAppLogs go to Log Analytics (siteDiagnostics).
  // checkov:skip=CKV_AZURE_65:False positive on a sites/config child: detailed error pages are a site setting and not used by Functions.
  // checkov:skip=CKV_AZURE_66:False positive on a sites/config child: failed request tracing is a site setting (IIS feature, not on Linux Flex Consumption).
  // checkov:skip=CKV_AZURE_80:False positive on a sites/config child: no .NET Framework here (Python).
  // checkov:skip=CKV_AZURE_88:False positive on a sites/config child: Azure Files mounts do not apply; the app keeps no files.
  // checkov:skip=CKV_AZURE_222:False positive on a sites/config child: public network access is a site property (justified on "site").
  parent: site
  name: 'authsettingsV2'
  properties: {
    // functionKey mode: Easy Auth off; the Functions host's key check is the gate.
    platform: {
      enabled: enableEasyAuth
    }
    globalValidation: {
      requireAuthentication: enableEasyAuth
      unauthenticatedClientAction: enableEasyAuth ? 'Return401' : 'AllowAnonymous'
      excludedPaths: [
        healthPath
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: enableEasyAuth ? easyAuthIdentityProviders : {}
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'function-app-logs'
  scope: site
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
