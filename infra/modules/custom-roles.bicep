// Custom Azure roles holding exactly the ARM actions the gateway's code calls (least privilege), one
// per kind of target that lives in ARM. Each is defined only when the catalog lists such a target,
// assignable only in the resource groups of the listed targets, and assigned per target by
// datafactory-rbac.bicep, synapse-rbac.bicep and machinelearning-rbac.bicep.
//
// The action lists below are checked by tests/infra/test_roles.py against the HTTP method and path
// of every call the clients in shared/kinds make, and against the role table in docs/deploy.md.
targetScope = 'subscription'

@description('Makes the role names unique in the tenant (role names are tenant-wide).')
param nameSuffix string

@description('The roles\' ids (GUIDs), fixed by main.bicep per environment: { dataFactory, synapse, machineLearning }.')
param roleIds object

@description('Resource groups (ids) of the listed data factories: where the Data Factory role may be assigned.')
param dataFactoryScopes array = []

@description('Resource groups (ids) of the listed Synapse workspaces that name their subscription and resource group.')
param synapseScopes array = []

@description('Resource groups (ids) of the listed Azure ML workspaces.')
param machineLearningScopes array = []

// shared/kinds/datafactory.py and pipelines.py, ARM api-version 2018-06-01, under the factory:
var dataFactoryActions = [
  'Microsoft.DataFactory/factories/read' // GET (getFactory, diagnostics)
  'Microsoft.DataFactory/factories/pipelines/read' // GET pipelines/{p} (getPipeline: correlation parameter check)
  'Microsoft.DataFactory/factories/pipelines/createrun/action' // POST pipelines/{p}/createRun (start, rerun)
  'Microsoft.DataFactory/factories/pipelineruns/read' // GET pipelineruns/{id} (getPipelineRun)
  'Microsoft.DataFactory/factories/querypipelineruns/action' // POST queryPipelineRuns (poller, diagnostics)
  'Microsoft.DataFactory/factories/pipelineruns/queryactivityruns/action' // POST pipelineruns/{id}/queryActivityruns (alerts)
  'Microsoft.DataFactory/factories/pipelineruns/cancel/action' // POST pipelineruns/{id}/cancel
]

// shared/kinds/synapse.py, ARM api-version 2021-06-01: the workspace resource only (diagnostics).
// Running pipelines and Spark batches is Synapse RBAC (data plane), assigned by the postprovision hook.
var synapseActions = [
  'Microsoft.Synapse/workspaces/read' // GET (getWorkspace)
]

// shared/kinds/ml_client.py, ARM under the workspace, and its run history (data plane, same RBAC).
var machineLearningActions = [
  'Microsoft.MachineLearningServices/workspaces/read' // GET (Workspaces_Get: diagnostics, run history discovery)
  'Microsoft.MachineLearningServices/workspaces/privateEndpointConnections/read' // GET privateEndpointConnections
  'Microsoft.MachineLearningServices/workspaces/jobs/read' // GET jobs, jobs/{name}
  'Microsoft.MachineLearningServices/workspaces/jobs/write' // PUT jobs/{name} (Jobs_CreateOrUpdate: start, rerun)
  'Microsoft.MachineLearningServices/workspaces/jobs/cancel/action' // POST jobs/{name}/cancel
  'Microsoft.MachineLearningServices/workspaces/experiments/runs/read' // run history: runs, details, children
]

resource dataFactoryRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(dataFactoryScopes)) {
  name: roleIds.dataFactory
  properties: {
    roleName: 'Pipeline Gateway Data Factory runner (${nameSuffix})'
    description: 'Start, read, query and cancel pipeline runs and read pipeline definitions: what Pipeline Gateway calls. No authoring.'
    type: 'CustomRole'
    permissions: [
      {
        actions: dataFactoryActions
        notActions: []
      }
    ]
    assignableScopes: dataFactoryScopes
  }
}

resource synapseRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(synapseScopes)) {
  name: roleIds.synapse
  properties: {
    roleName: 'Pipeline Gateway Synapse workspace reader (${nameSuffix})'
    description: 'Read the Synapse workspace resource (endpoints, managed network) for Pipeline Gateway diagnostics; nothing below it.'
    type: 'CustomRole'
    permissions: [
      {
        actions: synapseActions
        notActions: []
      }
    ]
    assignableScopes: synapseScopes
  }
}

resource machineLearningRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(machineLearningScopes)) {
  name: roleIds.machineLearning
  properties: {
    roleName: 'Pipeline Gateway ML job runner (${nameSuffix})'
    description: 'Submit, read and cancel Azure ML jobs and read their run history: what Pipeline Gateway calls. No datastore secrets, models or compute.'
    type: 'CustomRole'
    permissions: [
      {
        actions: machineLearningActions
        notActions: []
      }
    ]
    assignableScopes: machineLearningScopes
  }
}
