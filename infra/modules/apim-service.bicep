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
    // TLS 1.0/1.1 and SSL 3.0 are off by default for instances created after April 2018 (towards
    // callers and backends), so customProperties are not set: the v2 tiers do not take every
    // classic protocol property, and the defaults already give TLS 1.2+.
  }
}

output id string = apim.id
output name string = apim.name
output gatewayUrl string = apim.properties.gatewayUrl
