// backendAuth = functionKey only: the function app's default host key, written to the gateway's Key
// Vault (key-vault.bicep) and read by API Management (Key Vault-backed named value
// "gateway-function-key") with its user-assigned identity. The simpler alternative to Easy Auth; the
// key is a shared secret. APIM's identity gets Key Vault Secrets User on this secret only.

@description('Name of the gateway\'s Key Vault.')
param keyVaultName string

@description('Name of the function app whose default host key is stored.')
param functionAppName string

@description('Principal (object) id of API Management\'s user-assigned identity.')
param apimPrincipalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource functionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:The secret mirrors the function app's host key, which has no expiry; an expiry without automated rotation would silently cut APIM off. Rotate the key and the secret together (docs/deploy.md).
  parent: vault
  name: 'gateway-function-key'
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

@description('Versionless secret URI: API Management follows new versions of the secret.')
output functionKeySecretUri string = functionKeySecret.properties.secretUri
