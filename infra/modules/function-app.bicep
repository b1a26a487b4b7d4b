// The gateway's function app on Flex Consumption (Linux, Python) with two user-assigned identities:
//   the gateway identity (identityId)   what the app's code uses (AZURE_CLIENT_ID): Azure targets, its
//                                       run table and queues (GATEWAY_STORAGE__*), Key Vault references
//   the host identity (hostIdentityId)  what the Functions host uses: AzureWebJobsStorage__* (timer and
//                                       singleton locks) and the deployment package container
// so the identity the app's code uses holds no blob role and cannot replace the app's package.
// Secrets (the alert webhook URL and its HMAC key) are Key Vault references, never values.
// With backendAuth = easyAuth, App Service Authentication admits only API Management's identity.

param name string

param location string

param tags object = {}

@description('Resource id of the Flex Consumption plan (FC1).')
param planId string

@description('Resource id of the gateway\'s user-assigned identity, which the app\'s code runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, the app\'s storage connection).')
param identityClientId string

@description('Resource id of the Functions host\'s user-assigned identity (host storage, deployment package).')
param hostIdentityId string

@description('Client id of the host\'s identity (AzureWebJobsStorage, host telemetry).')
param hostIdentityClientId string

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

@description('Versionless Key Vault secret URI of GATEWAY_FORWARD_URL; empty: alert forwarding off.')
param forwardUrlSecretUri string = ''

@description('Versionless Key Vault secret URI of GATEWAY_FORWARD_SECRET; empty: json posts unsigned.')
param forwardSecretSecretUri string = ''

// Identity-based connections, following the azd Flex Consumption quickstarts. The host needs blobs
// only (timer and singleton locks): the queue triggers use GATEWAY_STORAGE, the gateway's identity.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: hostIdentityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
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
  // Application Insights has local auth disabled: the host sends its telemetry with its identity; the
  // app's exporter (shared/telemetry) uses the gateway's.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${hostIdentityClientId};Authorization=AAD'
  // host.json sets telemetryMode OpenTelemetry; with this the Python worker joins each invocation to the
  // host's trace (Functions docs, "Use OpenTelemetry with Azure Functions"), while the app configures
  // the Azure Monitor exporter itself, with its identity (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY
  // would configure a second exporter in the worker).
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

// Secrets by reference, resolved by the platform with keyVaultReferenceIdentity (the gateway's identity).
var forwardUrlSettings = empty(forwardUrlSecretUri) ? {} : {
  GATEWAY_FORWARD_URL: '@Microsoft.KeyVault(SecretUri=${forwardUrlSecretUri})'
}

var forwardSecretSettings = empty(forwardSecretSecretUri) ? {} : {
  GATEWAY_FORWARD_SECRET: '@Microsoft.KeyVault(SecretUri=${forwardSecretSecretUri})'
}

var appSettings = union(gatewaySettings, hostStorageSettings, gatewayStorageSettings, identitySettings, forwardUrlSettings, forwardSecretSettings)

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
      '${hostIdentityId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    keyVaultReferenceIdentity: identityId
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
            userAssignedIdentityResourceId: hostIdentityId
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
