// Private endpoints and private DNS zones (enablePrivateNetworking = true), linked to the gateway's
// VNet so that the function app resolves these names to private addresses:
//   Storage blob/queue/table   privatelink.{blob,queue,table}.<storage suffix>
//   Synapse dev endpoint       privatelink.dev.azuresynapse.net   (group "Dev": pipelines, Spark, RBAC API)
//   Data Factory               privatelink.datafactory.azure.net  (group "dataFactory")
//   Azure ML workspace         privatelink.api.azureml.ms and privatelink.notebooks.azure.net
//                              (group "amlworkspace": the workspace API, run history, its notebooks)
// Approval: a connection to a target in the deployment's own subscription is approved by the deployment
// (the deploying principal, Owner or Contributor there, holds the target's
// privateEndpointConnectionsApproval action); one to another subscription, or every one with
// manualApproval, is requested for manual approval and stays Pending until the target's owner approves
// it (docs/deploy.md, "Private targets"); until then the app cannot reach that target privately, and
// GET /api/targets/{t} says so. The output approvals lists each endpoint and how it is approved.

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

@description('Resource ids of the Azure Machine Learning workspaces in the catalog.')
param machineLearningWorkspaceIds array = []

@description('true: request every connection to a factory or workspace for manual approval by its owner (else only those in other subscriptions).')
param manualApproval bool = false

// Per target: request for manual approval (another subscription, or manualApproval), else approved here.
var dataFactoryManual = [for id in dataFactoryIds: manualApproval || split(id, '/')[2] != subscription().subscriptionId]
var synapseManual = [for id in synapseWorkspaceIds: manualApproval || split(id, '/')[2] != subscription().subscriptionId]
var machineLearningManual = [for id in machineLearningWorkspaceIds: manualApproval || split(id, '/')[2] != subscription().subscriptionId]

var storageServices = [
  'blob'
  'queue'
  'table'
]

var dataFactoryZoneName = 'privatelink.datafactory.azure.net'
var synapseDevZoneName = 'privatelink.dev.azuresynapse.net'
var machineLearningZoneNames = [
  'privatelink.api.azureml.ms'
  'privatelink.notebooks.azure.net'
]

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
    privateLinkServiceConnections: dataFactoryManual[i] ? [] : [
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
    manualPrivateLinkServiceConnections: dataFactoryManual[i] ? [
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
    privateLinkServiceConnections: synapseManual[i] ? [] : [
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
    manualPrivateLinkServiceConnections: synapseManual[i] ? [
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

module machineLearningZones 'br/public:avm/res/network/private-dns-zone:0.7.1' = [for zone in machineLearningZoneNames: {
  name: 'pdz-${replace(zone, '.', '-')}'
  params: {
    name: zone
    location: 'global'
    tags: tags
    virtualNetworkLinks: [
      {
        name: 'link-${replace(zone, '.', '-')}-${uniqueString(virtualNetworkId)}'
        virtualNetworkResourceId: virtualNetworkId
        registrationEnabled: false
        location: 'global'
        tags: tags
      }
    ]
  }
}]

module machineLearningEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [for (workspaceId, i) in machineLearningWorkspaceIds: {
  name: 'pe-aml-${i}'
  params: {
    name: 'pe-aml-${last(split(workspaceId, '/'))}'
    location: location
    tags: tags
    subnetResourceId: subnetId
    privateLinkServiceConnections: machineLearningManual[i] ? [] : [
      {
        name: 'aml-${last(split(workspaceId, '/'))}'
        properties: {
          privateLinkServiceId: workspaceId
          groupIds: [
            'amlworkspace'
          ]
        }
      }
    ]
    manualPrivateLinkServiceConnections: machineLearningManual[i] ? [
      {
        name: 'aml-${last(split(workspaceId, '/'))}'
        properties: {
          privateLinkServiceId: workspaceId
          groupIds: [
            'amlworkspace'
          ]
          requestMessage: 'Pipeline Gateway: private access to the Azure Machine Learning workspace'
        }
      }
    ] : []
    customDnsConfigs: []
    privateDnsZoneGroup: {
      name: 'default'
      privateDnsZoneGroupConfigs: [
        {
          name: 'azureml-api'
          privateDnsZoneResourceId: machineLearningZones[0].outputs.resourceId
        }
        {
          name: 'azureml-notebooks'
          privateDnsZoneResourceId: machineLearningZones[1].outputs.resourceId
        }
      ]
    }
  }
}]

// What each endpoint's connection waits for: 'automatic' (approved by this deployment) or 'manual'.
var dataFactoryApprovals = [for (id, i) in dataFactoryIds: {
  endpoint: 'pe-adf-${last(split(id, '/'))}'
  target: id
  approval: dataFactoryManual[i] ? 'manual' : 'automatic'
}]
var synapseApprovals = [for (id, i) in synapseWorkspaceIds: {
  endpoint: 'pe-syn-dev-${last(split(id, '/'))}'
  target: id
  approval: synapseManual[i] ? 'manual' : 'automatic'
}]
var machineLearningApprovals = [for (id, i) in machineLearningWorkspaceIds: {
  endpoint: 'pe-aml-${last(split(id, '/'))}'
  target: id
  approval: machineLearningManual[i] ? 'manual' : 'automatic'
}]

@description('Each private endpoint to a factory or workspace, its target and how its connection is approved: the manual ones wait for their target\'s owner.')
output approvals array = concat(dataFactoryApprovals, synapseApprovals, machineLearningApprovals)
