// The gateway API inside API Management: imported from the app's OpenAPI document, published
// through products that require a subscription key, rate-limited and given a quota per
// subscription (per product, and at API scope whatever the product), and calling the function app with API Management's identity (Easy Auth, default)
// or with a function key kept in Key Vault (backendAuth = functionKey).
//
// Policy XML lives in infra/apim/policies/ (checked offline by tests/infra):
//   api.xml                         API-scope policy; "<!-- backend-auth -->" is replaced by one of
//   backend-auth-easyauth.xml       authentication-managed-identity
//   backend-auth-functionkey.xml    x-functions-key from a Key Vault-backed named value
//   api-quota.xml                   quota-by-key per subscription at API scope ("<!-- api-quota -->"; StandardV2)
//   product.xml                     rate-limit + quota; __PLACEHOLDERS__ filled per product

param apimName string

@description('API identifier inside API Management.')
param apiName string = 'pipeline-gateway'

@description('Path suffix of the API on the gateway: https://<apim>.azure-api.net/<apiPath>/api/...')
param apiPath string

param functionAppHostName string

param functionAppId string

@allowed([
  'easyAuth'
  'functionKey'
])
param backendAuth string

@description('API Management tier: the API-scope quota (quota-by-key) exists on StandardV2 only.')
@allowed([
  'Consumption'
  'StandardV2'
])
param sku string

@description('Client id of the gateway API\'s app registration (easyAuth).')
param easyAuthClientId string = ''

@description('Client id of API Management\'s user-assigned identity.')
param apimIdentityClientId string

@description('Versionless URI of the Key Vault secret holding the function key (functionKey).')
param functionKeySecretUri string = ''

param applicationInsightsId string

param applicationInsightsConnectionString string

@description('Products: [{ id, displayName, description?, rateLimitCalls, renewalPeriod, quotaCalls, quotaRenewalPeriod, approvalRequired?, subscriptionsLimit? }].')
@minLength(1)
param products array

@description('Calls per subscription per apiRateLimitPeriod at API scope, whatever the product.')
@minValue(1)
param apiRateLimitCalls int = 120

@description('Renewal period of the API-scope rate limit, in seconds.')
@minValue(1)
@maxValue(300)
param apiRateLimitPeriod int = 60

@description('Calls per subscription per apiQuotaPeriod at API scope, whatever the product (StandardV2).')
@minValue(1)
param apiQuotaCalls int = 100000

@description('Renewal period of the API-scope quota, in seconds.')
@minValue(300)
param apiQuotaPeriod int = 86400

@description('Accept subscriptions without a product (scoped to the API itself, so no product limits).')
param allowProductlessCallers bool = false

var backendId = 'pipeline-gateway-function'

var backendAuthFragment = backendAuth == 'easyAuth' ? loadTextContent('../apim/policies/backend-auth-easyauth.xml') : loadTextContent('../apim/policies/backend-auth-functionkey.xml')
var backendAuthXml = replace(replace(backendAuthFragment, '<fragment>', ''), '</fragment>', '')
var apiQuotaXml = sku == 'Consumption' ? '' : replace(replace(loadTextContent('../apim/policies/api-quota.xml'), '<fragment>', ''), '</fragment>', '')
var apiPolicyXml = replace(replace(loadTextContent('../apim/policies/api.xml'), '<!-- backend-auth -->', backendAuthXml), '<!-- api-quota -->', apiQuotaXml)
var productPolicyTemplate = loadTextContent('../apim/policies/product.xml')

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

// ---- Named values used by the policies ------------------------------------------------------

resource apimIdentityClientIdValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-apim-identity-client-id'
  properties: {
    displayName: 'gateway-apim-identity-client-id'
    value: apimIdentityClientId
    secret: false
  }
}

resource backendAppIdValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = if (backendAuth == 'easyAuth') {
  parent: apim
  name: 'gateway-backend-app-id'
  properties: {
    displayName: 'gateway-backend-app-id'
    value: easyAuthClientId
    secret: false
  }
}

resource apiRateLimitCallsValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-api-rate-limit-calls'
  properties: {
    displayName: 'gateway-api-rate-limit-calls'
    value: string(apiRateLimitCalls)
    secret: false
  }
}

resource apiRateLimitPeriodValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-api-rate-limit-period'
  properties: {
    displayName: 'gateway-api-rate-limit-period'
    value: string(apiRateLimitPeriod)
    secret: false
  }
}

resource apiQuotaCallsValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-api-quota-calls'
  properties: {
    displayName: 'gateway-api-quota-calls'
    value: string(apiQuotaCalls)
    secret: false
  }
}

resource apiQuotaPeriodValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-api-quota-period'
  properties: {
    displayName: 'gateway-api-quota-period'
    value: string(apiQuotaPeriod)
    secret: false
  }
}

resource allowProductlessValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = {
  parent: apim
  name: 'gateway-allow-productless-callers'
  properties: {
    displayName: 'gateway-allow-productless-callers'
    value: allowProductlessCallers ? 'true' : 'false'
    secret: false
  }
}

// Key Vault reference without a secret version: APIM refreshes it when the secret is rotated.
resource functionKeyValue 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = if (backendAuth == 'functionKey') {
  parent: apim
  name: 'gateway-function-key'
  properties: {
    displayName: 'gateway-function-key'
    secret: true
    keyVault: {
      secretIdentifier: functionKeySecretUri
      identityClientId: apimIdentityClientId
    }
  }
}

// ---- Backend, API, policy ------------------------------------------------------------------

resource backend 'Microsoft.ApiManagement/service/backends@2024-05-01' = {
  parent: apim
  name: backendId
  properties: {
    description: 'Pipeline Gateway function app'
    protocol: 'http'
    url: 'https://${functionAppHostName}'
    resourceId: uri(environment().resourceManager, functionAppId)
    tls: {
      validateCertificateChain: true
      validateCertificateName: true
    }
  }
}

resource api 'Microsoft.ApiManagement/service/apis@2024-05-01' = {
  parent: apim
  name: apiName
  properties: {
    displayName: 'Pipeline Gateway'
    description: 'Start and watch Azure Data Factory pipelines, Synapse pipelines and Synapse Spark batches.'
    path: apiPath
    protocols: [
      'https'
    ]
    subscriptionRequired: true
    subscriptionKeyParameterNames: {
      header: 'Ocp-Apim-Subscription-Key'
      query: 'subscription-key'
    }
    type: 'http'
    format: 'openapi+json'
    value: loadTextContent('../../openapi.json')
    serviceUrl: 'https://${functionAppHostName}'
  }
}

resource apiPolicy 'Microsoft.ApiManagement/service/apis/policies@2024-05-01' = {
  parent: api
  name: 'policy'
  properties: {
    format: 'rawxml'
    value: apiPolicyXml
  }
  dependsOn: [
    backend
    apimIdentityClientIdValue
    backendAppIdValue
    functionKeyValue
    apiRateLimitCallsValue
    apiRateLimitPeriodValue
    apiQuotaCallsValue
    apiQuotaPeriodValue
    allowProductlessValue
  ]
}

// ---- Telemetry: App Insights with APIM's identity, W3C trace context to the backend ----------

resource logger 'Microsoft.ApiManagement/service/loggers@2024-05-01' = {
  parent: apim
  name: 'appinsights'
  properties: {
    loggerType: 'applicationInsights'
    description: 'Application Insights, Entra-authenticated with API Management\'s identity'
    resourceId: applicationInsightsId
    credentials: {
      connectionString: applicationInsightsConnectionString
      identityClientId: apimIdentityClientId
    }
    isBuffered: true
  }
}

resource apiDiagnostics 'Microsoft.ApiManagement/service/apis/diagnostics@2024-05-01' = {
  parent: api
  name: 'applicationinsights'
  properties: {
    loggerId: logger.id
    alwaysLog: 'allErrors'
    httpCorrelationProtocol: 'W3C'
    verbosity: 'information'
    logClientIp: true
    sampling: {
      samplingType: 'fixed'
      percentage: 100
    }
    frontend: {
      request: {
        headers: [
          'x-correlation-id'
          'traceparent'
        ]
        body: {
          bytes: 0
        }
        // A key sent as ?subscription-key= never reaches the logs.
        dataMasking: {
          queryParams: [
            {
              value: 'subscription-key'
              mode: 'Hide'
            }
          ]
        }
      }
      response: {
        headers: [
          'x-correlation-id'
        ]
        body: {
          bytes: 0
        }
      }
    }
    backend: {
      request: {
        headers: [
          'x-correlation-id'
          'x-apim-subscription-id'
          'x-apim-product-id'
        ]
        body: {
          bytes: 0
        }
      }
      response: {
        headers: []
        body: {
          bytes: 0
        }
      }
    }
  }
}

// ---- Products: subscription required, rate limit + quota per subscription --------------------

resource apiProducts 'Microsoft.ApiManagement/service/products@2024-05-01' = [for product in products: {
  parent: apim
  name: product.id
  properties: {
    displayName: product.displayName
    description: contains(product, 'description') ? product.description : 'Pipeline Gateway access for ${product.displayName}.'
    subscriptionRequired: true
    approvalRequired: contains(product, 'approvalRequired') ? product.approvalRequired : true
    subscriptionsLimit: contains(product, 'subscriptionsLimit') ? product.subscriptionsLimit : null
    state: 'published'
  }
}]

resource productApis 'Microsoft.ApiManagement/service/products/apis@2024-05-01' = [for (product, i) in products: {
  parent: apiProducts[i]
  name: api.name
}]

resource productPolicies 'Microsoft.ApiManagement/service/products/policies@2024-05-01' = [for (product, i) in products: {
  parent: apiProducts[i]
  name: 'policy'
  properties: {
    format: 'rawxml'
    value: replace(replace(replace(replace(productPolicyTemplate, '__RATE_LIMIT_CALLS__', string(product.rateLimitCalls)), '__RATE_LIMIT_PERIOD__', string(product.renewalPeriod)), '__QUOTA_CALLS__', string(product.quotaCalls)), '__QUOTA_PERIOD__', string(product.quotaRenewalPeriod))
  }
}]

output apiId string = api.id
output productIds array = [for (product, i) in products: apiProducts[i].name]
