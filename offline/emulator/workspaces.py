"""ARM's Microsoft.Synapse Workspaces_Get: how the app discovers a workspace's data-plane endpoint, and
whether it has a managed virtual network with data exfiltration protection.

The spec is 2021-06-01; azure-mgmt-synapse 2.0.0 still sends 2021-03-01, so both are accepted along
with the other versions of that era.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from .arm import ArmDirectory, check_name, resource_not_found, stable_uuid
from .config import WORKSPACE_NAME, IdentitySpec, WorkspaceSpec
from .server import Request, Response, Router

API_VERSIONS = (
    "2021-06-01",
    "2021-06-01-preview",
    "2021-05-01",
    "2021-04-01-preview",
    "2021-03-01",
    "2019-06-01-preview",
)
WORKSPACE_TYPE = "Microsoft.Synapse/workspaces"
WORKSPACE_HINT = (
    "It can contain only letters, numbers and hyphens, must start and end with a letter or number, "
    "and be at most 50 characters long."
)


def managed_network(workspace: WorkspaceSpec) -> dict[str, Any]:
    """``managedVirtualNetwork`` and its settings; a workspace created without one has neither
    (approximation: the spec does not say whether Azure then omits them or sends them empty)."""
    if not workspace.managed_virtual_network:
        return {}
    return {
        "managedVirtualNetwork": "default",
        "managedVirtualNetworkSettings": {
            "preventDataExfiltration": workspace.exfiltration_protection,
            "allowedAadTenantIdsForLinking": [],
        },
    }


class WorkspacesApi:
    def __init__(
        self,
        workspaces: Sequence[WorkspaceSpec],
        directory: ArmDirectory,
        *,
        tenant_id: str,
        identity: IdentitySpec,
        endpoint_of: Callable[[str], str],
    ) -> None:
        self.directory = directory
        self.tenant_id = tenant_id
        self.identity = identity
        self.endpoint_of = endpoint_of
        self._workspaces = {
            (w.subscription_id.lower(), w.resource_group.lower(), w.name.lower()): w for w in workspaces
        }

    def register(self, router: Router) -> None:
        router.add(
            "Workspaces_Get",
            "GET",
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
            "/providers/Microsoft.Synapse/workspaces/{workspaceName}",
            self.get_workspace,
            "arm",
            rate="reads",
            api_versions=API_VERSIONS,
        )

    def get_workspace(self, request: Request) -> Response:
        subscription = request.params["subscriptionId"]
        group = request.params["resourceGroupName"]
        name = request.params["workspaceName"]
        self.directory.check_scope(subscription, group)
        check_name(name, WORKSPACE_NAME, 1, 50, "workspace", WORKSPACE_HINT)
        workspace = self._workspaces.get((subscription.lower(), group.lower(), name.lower()))
        if workspace is None:
            raise resource_not_found(WORKSPACE_TYPE, name, group)
        resource_id = (
            f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
            f"/providers/{WORKSPACE_TYPE}/{workspace.name}"
        )
        storage = f"st{workspace.name.replace('-', '')}"[:24]
        body = {
            "id": resource_id,
            "name": workspace.name,
            "type": WORKSPACE_TYPE,
            "location": workspace.location,
            "tags": dict(workspace.tags),
            "identity": {
                "type": "SystemAssigned,UserAssigned",
                "principalId": stable_uuid("principal", resource_id),
                "tenantId": self.tenant_id,
                "userAssignedIdentities": {
                    self.identity.resource_id: {
                        "clientId": self.identity.client_id,
                        "principalId": self.identity.principal_id,
                    }
                },
            },
            "properties": {
                "connectivityEndpoints": {
                    "web": f"https://web.azuresynapse.net?workspace={quote(resource_id, safe='').lower()}",
                    "dev": self.endpoint_of(workspace.name),
                    "sqlOnDemand": f"{workspace.name}-ondemand.sql.azuresynapse.net",
                    "sql": f"{workspace.name}.sql.azuresynapse.net",
                },
                "provisioningState": "Succeeded",
                "workspaceUID": stable_uuid("workspace", resource_id),
                "defaultDataLakeStorage": {
                    "accountUrl": f"https://{storage}.dfs.core.windows.net",
                    "filesystem": "synapse",
                    "createManagedPrivateEndpoint": False,
                },
                "managedResourceGroupName": f"synapseworkspace-managedrg-{stable_uuid('mrg', resource_id)}",
                **managed_network(workspace),
                "publicNetworkAccess": "Enabled",
                "privateEndpointConnections": [],
                "encryption": {"doubleEncryptionEnabled": False},
                "extraProperties": {"WorkspaceType": "Normal", "IsScopeEnabled": False},
                "sqlAdministratorLogin": "sqladminuser",
                "azureADOnlyAuthentication": False,
                "trustedServiceBypassEnabled": False,
                "settings": {"azureADOnlyAuthentication": {"value": False, "state": "Consistent"}},
            },
        }
        return Response(200, body)
