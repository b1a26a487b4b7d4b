// Private endpoints and private DNS zones (enablePrivateNetworking = true), linked to the gateway's
// VNet so that the function app resolves these names to private addresses:
//   Storage blob/queue/table   privatelink.{blob,queue,table}.<storage suffix>
//   Synapse dev endpoint       privatelink.dev.azuresynapse.net   (group "Dev": pipelines, Spark, RBAC API)
//   Data Factory               privatelink.datafactory.azure.net  (group "dataFactory")
// Endpoints to factories and workspaces in other subscriptions are auto-approved when the deploying
// principal may approve them; otherwise set privateEndpointManualApproval and have their owners
// approve the pending connections.

param location string

param tags object = {}

param virtualNetworkId string

param subnetId string

param storageAccountId string

param storageAccountName string

@description('Resource ids of the data factories in the catalog.')
param dataFactoryIds array = []

@description('Resource ids of the Synapse workspaces in the catalog.')
param synapseWorkspaceIds array = []

@description('true: request connections to factories and workspaces for manual approval by their owners.')
param manualApproval bool = false

var storageServices = [
  'blob'
  'queue'
  'table'
]

var dataFactoryZoneName = 'privatelink.datafactory.azure.net'
var synapseDevZoneName = 'privatelink.dev.azuresynapse.net'

module storageZones 'br/public:avm/res/network/private-dns-zone:0.7.1' = [for service in storageServices: {
  name: 'pdz-storage-${service}'
  params: {
    name: 'privatelink.${service}.${environment().suffixes.storage}'
    location: 'global'
    tags: tags
    virtualNetworkLinks: [
      {
        name: 'link-${service}-${uniqueString(virtualNetworkId)}'
        virtualNetworkResourceId: virtualNetworkId
        registrationEnabled: false
        location: 'global'
        tags: tags
      }
    ]
  }
}]

module storageEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [for (service, i) in storageServices: {
  name: 'pe-storage-${service}'
  params: {
    name: 'pe-${storageAccountName}-${service}'
    location: location
    tags: tags
    subnetResourceId: subnetId
    privateLinkServiceConnections: [
      {
        name: '${storageAccountName}-${service}'
        properties: {
          privateLinkServiceId: storageAccountId
          groupIds: [
            service
          ]
        }
      }
    ]
    customDnsConfigs: []
    privateDnsZoneGroup: {
      name: 'default'
      privateDnsZoneGroupConfigs: [
        {
          name: service
          privateDnsZoneResourceId: storageZones[i].outputs.resourceId
        }
      ]
    }
  }
}]

module dataFactoryZone 'br/public:avm/res/network/private-dns-zone:0.7.1' = {
  name: 'pdz-datafactory'
  params: {
    name: dataFactoryZoneName
    location: 'global'
    tags: tags
    virtualNetworkLinks: [
      {
        name: 'link-datafactory-${uniqueString(virtualNetworkId)}'
        virtualNetworkResourceId: virtualNetworkId
        registrationEnabled: false
        location: 'global'
        tags: tags
      }
    ]
  }
}

module dataFactoryEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [for (factoryId, i) in dataFactoryIds: {
  name: 'pe-adf-${i}'
  params: {
    name: 'pe-adf-${last(split(factoryId, '/'))}'
    location: location
    tags: tags
    subnetResourceId: subnetId
    privateLinkServiceConnections: manualApproval ? [] : [
      {
        name: 'adf-${last(split(factoryId, '/'))}'
        properties: {
          privateLinkServiceId: factoryId
          groupIds: [
            'dataFactory'
          ]
        }
      }
    ]
    manualPrivateLinkServiceConnections: manualApproval ? [
      {
        name: 'adf-${last(split(factoryId, '/'))}'
        properties: {
          privateLinkServiceId: factoryId
          groupIds: [
            'dataFactory'
          ]
          requestMessage: 'Pipeline Gateway: private access to the Data Factory endpoint'
        }
      }
    ] : []
    customDnsConfigs: []
    privateDnsZoneGroup: {
      name: 'default'
      privateDnsZoneGroupConfigs: [
        {
          name: 'datafactory'
          privateDnsZoneResourceId: dataFactoryZone.outputs.resourceId
        }
      ]
    }
  }
}]

module synapseDevZone 'br/public:avm/res/network/private-dns-zone:0.7.1' = {
  name: 'pdz-synapse-dev'
  params: {
    name: synapseDevZoneName
    location: 'global'
    tags: tags
    virtualNetworkLinks: [
      {
        name: 'link-synapse-dev-${uniqueString(virtualNetworkId)}'
        virtualNetworkResourceId: virtualNetworkId
        registrationEnabled: false
        location: 'global'
        tags: tags
      }
    ]
  }
}

module synapseDevEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [for (workspaceId, i) in synapseWorkspaceIds: {
  name: 'pe-syn-dev-${i}'
  params: {
    name: 'pe-syn-dev-${last(split(workspaceId, '/'))}'
    location: location
    tags: tags
    subnetResourceId: subnetId
    privateLinkServiceConnections: manualApproval ? [] : [
      {
        name: 'syn-dev-${last(split(workspaceId, '/'))}'
        properties: {
          privateLinkServiceId: workspaceId
          groupIds: [
            'Dev'
          ]
        }
      }
    ]
    manualPrivateLinkServiceConnections: manualApproval ? [
      {
        name: 'syn-dev-${last(split(workspaceId, '/'))}'
        properties: {
          privateLinkServiceId: workspaceId
          groupIds: [
            'Dev'
          ]
          requestMessage: 'Pipeline Gateway: private access to the Synapse dev endpoint'
        }
      }
    ] : []
    customDnsConfigs: []
    privateDnsZoneGroup: {
      name: 'default'
      privateDnsZoneGroupConfigs: [
        {
          name: 'synapse-dev'
          privateDnsZoneResourceId: synapseDevZone.outputs.resourceId
        }
      ]
    }
  }
}]
