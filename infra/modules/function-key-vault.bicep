// backendAuth = functionKey only: a Key Vault holding the function app's default host key, read by
// API Management (Key Vault-backed named value "gateway-function-key") with its user-assigned
// identity. The simpler alternative to Easy Auth; the key is a shared secret.

param name string

param location string

param tags object = {}

@description('Name of the function app whose default host key is stored.')
param functionAppName string

@description('Principal (object) id of API Management\'s user-assigned identity (Key Vault Secrets User on the secret).')
param apimPrincipalId string

param logAnalyticsWorkspaceId string

@description('Soft-delete retention. Purge protection is on, so a deleted vault name stays reserved this long.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var secretName = 'gateway-function-key'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189:API Management (Consumption has no VNet) reads the secret as a trusted Microsoft service, which needs public network access Enabled with the firewall on defaultAction Deny (set below).
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    // API Management (also Consumption, which has no VNet) reaches the vault as a trusted
    // Microsoft service; everything else is denied.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
    }
  }
}

// The secret is written through ARM (control plane), so the vault's firewall does not block it.
resource functionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:The secret mirrors the function app's host key, which has no expiry; an expiry without automated rotation would silently cut APIM off. Rotate the key and the secret together (docs/deploy.md).
  parent: vault
  name: secretName
  properties: {
    contentType: 'text/plain'
    value: listKeys('${site.id}/host/default', '2024-04-01').functionKeys.default
  }
}

resource apimSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(functionKeySecret.id, apimPrincipalId, keyVaultSecretsUser)
  scope: functionKeySecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: apimPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'key-vault-audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
@description('Versionless secret URI: API Management follows new versions of the secret.')
output functionKeySecretUri string = functionKeySecret.properties.secretUri
