// Entra ID app registration that represents the gateway API for App Service Authentication
// (Easy Auth). API Management requests a token for this app with its managed identity
// (authentication-managed-identity policy); Easy Auth on the function app validates it.
// Uses the Microsoft Graph Bicep extension (alias in infra/bicepconfig.json). The deploying
// principal needs permission to create app registrations (Application Developer, or the
// tenant's default user permission). To use an existing registration instead, set the
// backendAppClientId parameter and this module is not deployed.
extension microsoftGraphV1

@description('Unique name of the app registration in the tenant (also its display name).')
param uniqueName string

@description('Tags written on the app registration.')
param tags array = []

resource apiApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: uniqueName
  signInAudience: 'AzureADMyOrg'
  tags: tags
  api: {
    // v2 tokens: issuer https://login.microsoftonline.com/<tenant>/v2.0, as Easy Auth is configured.
    requestedAccessTokenVersion: 2
  }
  web: {
    implicitGrantSettings: {
      enableAccessTokenIssuance: false
      enableIdTokenIssuance: false
    }
  }
}

resource apiServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: apiApp.appId
}

output clientId string = apiApp.appId
