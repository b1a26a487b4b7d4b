"""Synapse data plane 2020-12-01: managed private endpoints (managedPrivateEndpoints.json) and linked
services (linkedServices.json), served under ``/synapse/{workspace}`` like the pipelines; and, for the
Azure ML side, the private endpoint connections those managed private endpoints make on their target.

What exists is declared per workspace (``WorkspaceSpec``): ``managed_virtual_network`` (``default``, the
only name Synapse uses), ``exfiltration_protection`` (Workspaces_Get's
``managedVirtualNetworkSettings.preventDataExfiltration``, workspaces.py), ``managed_private_endpoints``
each with the approval its target's owner gave it (``Pending``, ``Approved``, ``Rejected``,
``Disconnected``), and ``linked_services`` with their ``typeProperties``. As in Azure, a workspace with a
managed virtual network also lists the two endpoints Synapse creates for itself
(``synapse-ws-sql--{ws}``, ``synapse-ws-sqlOnDemand--{ws}``, ``isReserved``, approved).

A managed private endpoint to a resource the emulator serves (an Azure ML workspace) shows there as a
private endpoint connection named ``{workspace}.{endpoint}`` in the same state, so both sides of the
approval tell the same story.

Approximations: the error codes for an unknown managed virtual network, endpoint or linked service
(``ManagedVirtualNetworkNotFound``, ``ManagedPrivateEndpointNotFound``, ``LinkedServiceNotFound``; the
specs give none), the connection's name on the target, and ``fqdns`` (as declared, else empty).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from .arm import stable_uuid
from .config import ManagedPrivateEndpointSpec, WorkspaceSpec
from .server import ApiError, Request, Response, Router
from .synapse import API_VERSIONS, PREFIX, find_workspace

# azure-synapse-managedprivateendpoints 0.4.0 sends 2020-12-01 (or 2021-06-01-preview when asked).
MPE_API_VERSIONS = ("2020-12-01", "2021-06-01-preview")
MANAGED_VNET = "default"
MPE_TYPE = "Microsoft.Synapse/workspaces/managedVirtualNetworks/managedPrivateEndpoints"
LINKED_SERVICE_TYPE = "Microsoft.Synapse/workspaces/linkedservices"
CONNECTION_TYPE = "Microsoft.MachineLearningServices/workspaces/privateEndpointConnections"


def workspace_resource_id(workspace: WorkspaceSpec) -> str:
    return (
        f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
        f"/providers/Microsoft.Synapse/workspaces/{workspace.name}"
    )


def endpoints_of(workspace: WorkspaceSpec) -> list[ManagedPrivateEndpointSpec]:
    """The declared endpoints after the two Synapse creates for its own SQL endpoints."""
    if not workspace.managed_virtual_network:
        return []
    own = workspace_resource_id(workspace)
    reserved = [
        ManagedPrivateEndpointSpec(f"synapse-ws-sql--{workspace.name}", own, "sql"),
        ManagedPrivateEndpointSpec(f"synapse-ws-sqlOnDemand--{workspace.name}", own, "sqlOnDemand"),
    ]
    return [*reserved, *workspace.managed_private_endpoints]


class SynapseNetworkApi:
    def __init__(
        self, workspaces: Sequence[WorkspaceSpec], *, page_size: Callable[[], int], endpoint_of: Callable[[str], str]
    ) -> None:
        self._workspaces = {w.name.lower(): w for w in workspaces}
        self._page_size = page_size
        self._endpoint_of = endpoint_of

    def register(self, router: Router) -> None:
        endpoints = PREFIX + "/managedVirtualNetworks/{managedVirtualNetworkName}/managedPrivateEndpoints"
        add = router.add
        versions = MPE_API_VERSIONS
        add("ManagedPrivateEndpoints_List", "GET", endpoints, self.list_endpoints, "synapse", api_versions=versions)
        add(
            "ManagedPrivateEndpoints_Get",
            "GET",
            endpoints + "/{managedPrivateEndpointName}",
            self.get_endpoint,
            "synapse",
            api_versions=MPE_API_VERSIONS,
        )
        add(
            "LinkedService_GetLinkedServicesByWorkspace",
            "GET",
            PREFIX + "/linkedservices",
            self.list_linked_services,
            "synapse",
            api_versions=API_VERSIONS,
        )
        add(
            "LinkedService_GetLinkedService",
            "GET",
            PREFIX + "/linkedservices/{linkedServiceName}",
            self.get_linked_service,
            "synapse",
            api_versions=API_VERSIONS,
        )

    # -- managed private endpoints ---------------------------------------------------------------

    def _managed_network(self, request: Request) -> WorkspaceSpec:
        workspace = find_workspace(self._workspaces, request.params["workspace"])
        name = request.params["managedVirtualNetworkName"]
        if not workspace.managed_virtual_network or name.lower() != MANAGED_VNET:
            raise ApiError(
                404,
                "ManagedVirtualNetworkNotFound",
                f"Managed virtual network '{name}' does not exist in workspace '{workspace.name}'.",
                target=name,
            )
        return workspace

    def list_endpoints(self, request: Request) -> Response:
        workspace = self._managed_network(request)
        items = [render_endpoint(workspace, spec) for spec in endpoints_of(workspace)]
        path = f"/managedVirtualNetworks/{MANAGED_VNET}/managedPrivateEndpoints"
        return Response(200, self._page(request, workspace, path, items))

    def get_endpoint(self, request: Request) -> Response:
        workspace = self._managed_network(request)
        name = request.params["managedPrivateEndpointName"]
        for spec in endpoints_of(workspace):
            if spec.name.lower() == name.lower():
                return Response(200, render_endpoint(workspace, spec))
        raise ApiError(
            404,
            "ManagedPrivateEndpointNotFound",
            f"Managed private endpoint '{name}' does not exist in managed virtual network '{MANAGED_VNET}'.",
            target=name,
        )

    # -- linked services -------------------------------------------------------------------------

    def list_linked_services(self, request: Request) -> Response:
        workspace = find_workspace(self._workspaces, request.params["workspace"])
        items = [render_linked_service(workspace, i) for i in range(len(workspace.linked_services))]
        return Response(200, self._page(request, workspace, "/linkedservices", items))

    def get_linked_service(self, request: Request) -> Response:
        workspace = find_workspace(self._workspaces, request.params["workspace"])
        name = request.params["linkedServiceName"]
        for index, spec in enumerate(workspace.linked_services):
            if spec.name.lower() == name.lower():
                body = render_linked_service(workspace, index)
                return Response(304, None) if request.none_match(body["etag"]) else Response(200, body)
        raise ApiError(404, "LinkedServiceNotFound", f"Linked service '{name}' not found.", target=name)

    def _page(self, request: Request, workspace: WorkspaceSpec, path: str, items: list[dict[str, Any]]) -> Any:
        """One page of ``items``; ``nextLink`` is absolute and carries the api-version, because the SDKs
        follow it as given, adding nothing."""
        try:
            start = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            raise ApiError(400, "BadRequest", "The $skipToken is not valid.", target="$skipToken") from None
        end = start + self._page_size()
        page: dict[str, Any] = {"value": items[start:end]}
        if end < len(items):
            query = urlencode({"api-version": request.query.get("api-version", ""), "$skipToken": str(end)})
            page["nextLink"] = f"{self._endpoint_of(workspace.name)}{path}?{query}"
        return page

    # -- the target's side -----------------------------------------------------------------------

    def connections_to(self, resource_id: str) -> list[dict[str, Any]]:
        """The private endpoint connections the workspaces' managed private endpoints make on the resource
        ``resource_id`` (the target's PrivateEndpointConnections_List)."""
        connections = []
        for workspace in self._workspaces.values():
            for spec in workspace.managed_private_endpoints:
                if spec.private_link_resource_id.lower() == resource_id.lower():
                    connections.append(_connection(workspace, spec, resource_id))
        return connections


def render_endpoint(workspace: WorkspaceSpec, spec: ManagedPrivateEndpointSpec) -> dict[str, Any]:
    reserved = spec.name.startswith("synapse-ws-")
    return {
        "id": f"{workspace_resource_id(workspace)}/managedVirtualNetworks/{MANAGED_VNET}/managedPrivateEndpoints/"
        f"{spec.name}",
        "name": spec.name,
        "type": MPE_TYPE,
        "properties": {
            "privateLinkResourceId": spec.private_link_resource_id,
            "groupId": spec.group_id,
            "provisioningState": spec.provisioning_state,
            "connectionState": {"status": spec.state, "description": "", "actionsRequired": ""},
            "isReserved": reserved,
            "fqdns": list(spec.fqdns),
            "isCompliant": True,
        },
    }


def render_linked_service(workspace: WorkspaceSpec, index: int) -> dict[str, Any]:
    spec = workspace.linked_services[index]
    resource_id = f"{workspace_resource_id(workspace)}/linkedservices/{spec.name}"
    properties = {"type": spec.type, "typeProperties": dict(spec.type_properties)}
    return {
        "id": resource_id,
        "name": spec.name,
        "type": LINKED_SERVICE_TYPE,
        "etag": stable_uuid("etag", resource_id, json.dumps(properties, sort_keys=True)),
        "properties": properties,
    }


def _connection(workspace: WorkspaceSpec, spec: ManagedPrivateEndpointSpec, target: str) -> dict[str, Any]:
    """How a managed private endpoint looks on its target: a connection from a private endpoint in the
    workspace's managed resource group (Microsoft's subscription, not the customer's)."""
    name = f"{workspace.name}.{spec.name}"
    managed = stable_uuid("synapse-managed-subscription", workspace_resource_id(workspace))
    return {
        "id": f"{target}/privateEndpointConnections/{name}",
        "name": name,
        "type": CONNECTION_TYPE,
        "properties": {
            "provisioningState": "Succeeded",
            "privateEndpoint": {
                "id": f"/subscriptions/{managed}/resourceGroups/synapseworkspace-managedrg-{workspace.name}"
                f"/providers/Microsoft.Network/privateEndpoints/{name}"
            },
            "privateLinkServiceConnectionState": {
                "status": spec.state,
                "description": f"Managed private endpoint {spec.name} of Synapse workspace {workspace.name}",
                "actionsRequired": "None",
            },
        },
    }
