// The gateway's Key Vault, in both backend-auth modes: the alert-forwarding webhook URL and HMAC secret
// (when given), which the function app reads as Key Vault references with the gateway's identity
// (keyVaultReferenceIdentity), and in functionKey mode the host key APIM sends (function-key-secret.bicep).
// RBAC-authorized; each principal gets Key Vault Secrets User on the secrets it reads, never the vault.

param name string

param location string

param tags object = {}

@description('Principal (object) id of the gateway\'s user-assigned identity (reads the forwarding secrets).')
param gatewayPrincipalId string

@secure()
@description('GATEWAY_FORWARD_URL: the webhook alerts are posted to (Teams and Slack URLs carry their key). Empty: no secret.')
param forwardUrl string = ''

@secure()
@description('GATEWAY_FORWARD_SECRET: the HMAC key that signs json posts. Empty: no secret.')
param forwardSecret string = ''

param logAnalyticsWorkspaceId string

@description('Soft-delete retention. Purge protection is on, so a deleted vault name stays reserved this long.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

// Secret names main.bicep turns into Key Vault references (it needs their URIs before the vault exists).
var forwardUrlSecretName = 'gateway-forward-url'
var forwardSecretSecretName = 'gateway-forward-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189:Key Vault references of a Flex Consumption app without VNet integration come from no fixed address, and API Management's user-assigned identity cannot use the trusted-services bypass; access is Entra RBAC on single secrets, audited below.
  // checkov:skip=CKV_AZURE_109:Same reason: a deny-by-default firewall would block the app's Key Vault references and API Management's named value. No access policies exist (RBAC only); each reader holds Key Vault Secrets User on its secrets alone.
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
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Written through ARM (control plane): the values never pass through an app setting or a log.
resource forwardUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(forwardUrl)) {
  // checkov:skip=CKV_AZURE_114:False positive: contentType is set below; checkov does not read the properties of a conditional (if) resource.
  // checkov:skip=CKV_AZURE_41:A webhook URL has no expiry of its own; an expiry without automated rotation would silently stop alert forwarding. Rotate it with azd env set GATEWAY_FORWARD_URL and azd provision (docs/deploy.md).
  parent: vault
  name: forwardUrlSecretName
  properties: {
    contentType: 'text/uri'
    value: forwardUrl
  }
}

resource forwardSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(forwardSecret)) {
  // checkov:skip=CKV_AZURE_114:False positive: contentType is set below; checkov does not read the properties of a conditional (if) resource.
  // checkov:skip=CKV_AZURE_41:The HMAC key is shared with the receiving webhook, which cannot follow an automatic expiry; rotate both together with azd env set GATEWAY_FORWARD_SECRET and azd provision (docs/deploy.md).
  parent: vault
  name: forwardSecretSecretName
  properties: {
    contentType: 'text/plain'
    value: forwardSecret
  }
}

resource gatewayReadsForwardUrl 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(forwardUrl)) {
  name: guid(vault.id, forwardUrlSecretName, gatewayPrincipalId, keyVaultSecretsUser)
  scope: forwardUrlSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource gatewayReadsForwardSecret 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(forwardSecret)) {
  name: guid(vault.id, forwardSecretSecretName, gatewayPrincipalId, keyVaultSecretsUser)
  scope: forwardSecretSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: gatewayPrincipalId
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
output vaultUri string = vault.properties.vaultUri
