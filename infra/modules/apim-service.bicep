// The API Management instance in front of the gateway. It runs as its own user-assigned identity
// (separate from the gateway's identity, which holds the data-platform roles): APIM only needs to
// obtain tokens for the gateway API (Easy Auth), read one Key Vault secret (function-key mode) and
// write telemetry.

param name string

param location string

param tags object = {}

@description('Consumption for cost (pay per call); StandardV2 for steady traffic and VNet integration.')
@allowed([
  'Consumption'
  'StandardV2'
])
param sku string = 'Consumption'

@minLength(3)
param publisherEmail string

@minLength(1)
param publisherName string

@description('Resource id of API Management\'s user-assigned identity.')
param identityId string

resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  // checkov:skip=CKV_AZURE_107:The Consumption tier (default) has no VNet support; the gateway is the product's public entry point. StandardV2 can add outbound VNet integration.
  // checkov:skip=CKV_AZURE_174:External systems call the gateway over the internet with a subscription key; public access is the purpose of this API Management instance.
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: sku == 'Consumption' ? 0 : 1
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    publisherEmail: publisherEmail
    publisherName: publisherName
    // Old protocols and the 3DES cipher off towards callers and backends, stated rather than left to
    // the defaults (which already have them off since 2018). Consumption and the v2 tiers accept no
    // change to the default cipher set; 'False' is that default.
    customProperties: {
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls11': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Ssl30': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls10': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls11': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Ssl30': 'False'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.TripleDes168': 'False'
    }
  }
}

output id string = apim.id
output name string = apim.name
output gatewayUrl string = apim.properties.gatewayUrl
