// The platform team's Azure Monitor workbook (infra/workbook/platform.workbook.json), a shared workbook
// on the gateway's Application Insights: its queries read the metrics, spans and logs the app emits
// (shared/telemetry; tests/infra/test_workbook.py checks every name it uses).

param location string

param tags object = {}

@description('Resource id of the Application Insights component the workbook queries.')
param applicationInsightsId string

param displayName string

// The workbook opens on this component wherever it is opened from.
var workbookContent = replace(loadTextContent('../workbook/platform.workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'pipeline-gateway-platform-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: workbookContent
  }
}

output id string = workbook.id
