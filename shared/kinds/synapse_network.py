"""What blocks a private Synapse setup, as diagnostics checks: the managed virtual network and data
exfiltration protection (the workspace's ARM resource), each managed private endpoint and its approval
(data plane, managedPrivateEndpoints.json), each Azure ML linked service and whether it has an approved
way in (linkedServices.json), and whether the app itself resolves the workspace's dev endpoint to a
private address.

The steps of the secure Synapse ↔ Azure ML setup (Azure ML docs, "How to securely integrate Azure
Machine Learning and Azure Synapse") fail silently: an endpoint left ``Pending`` until the target's owner
approves it, an Azure ML linked service in a workspace with data exfiltration protection (not
supported), a DNS zone not linked. Each check says which, and what to do where.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from shared.azure.transport import TargetClient, UpstreamClient
from shared.errors import GatewayError, UpstreamBadResponse
from shared.kinds.base import Azure
from shared.kinds.checks import Check, Level, finding, refused, run_checks, skipped
from shared.kinds.network import private_dns_check

if TYPE_CHECKING:
    from shared.kinds.synapse import SynapseTarget

MANAGED_VNET = "default"  # the only managed virtual network a Synapse workspace has
MAX_PAGES = 20  # diagnostics read at most this many pages of a list
DEV_ZONE = "privatelink.dev.azuresynapse.net"
AML_GROUP = "amlworkspace"
AML_PROVIDER = "microsoft.machinelearningservices/workspaces"
WORKSPACE_CALL = "GET Microsoft.Synapse/workspaces"
ENDPOINTS_CALL = f"GET managedVirtualNetworks/{MANAGED_VNET}/managedPrivateEndpoints"
LINKED_SERVICES_CALL = "GET linkedservices"
# How Azure names resource types where people read them, by ARM provider/type (lower case).
RESOURCE_NOUNS = {
    AML_PROVIDER: "Azure Machine Learning workspace",
    "microsoft.storage/storageaccounts": "storage account",
    "microsoft.keyvault/vaults": "key vault",
    "microsoft.synapse/workspaces": "Synapse workspace",
    "microsoft.sql/servers": "SQL server",
    "microsoft.documentdb/databaseaccounts": "Cosmos DB account",
}
CREATE_ENDPOINT = "Synapse Studio → Manage → Managed private endpoints → + New"


class SynapseNetworkClient(TargetClient):
    """The workspace's managed private endpoints and linked services (data plane 2020-12-01)."""

    api_version = "2020-12-01"

    def __init__(self, upstream: UpstreamClient, target: SynapseTarget, *, scope: str) -> None:
        super().__init__(upstream, base_url=target.endpoint, scope=scope, target=target.name)
        self._role = f"the Synapse User role (Synapse RBAC) on workspace {target.workspace_name}"

    def list_managed_private_endpoints(self) -> list[dict[str, Any]]:
        """ManagedPrivateEndpoints_List of the managed virtual network, every page."""
        path = f"/managedVirtualNetworks/{MANAGED_VNET}/managedPrivateEndpoints"
        return list(self._pages("listManagedPrivateEndpoints", path))

    def list_linked_services(self) -> list[dict[str, Any]]:
        """LinkedService_GetLinkedServicesByWorkspace, every page."""
        return list(self._pages("getLinkedServicesByWorkspace", "/linkedservices"))

    def _pages(self, name: str, path: str) -> Iterator[dict[str, Any]]:
        params: dict[str, str] = {}
        for _ in range(MAX_PAGES):
            body, request_id = self._call(name, "GET", path, role=self._role, params=params)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise UpstreamBadResponse(
                    f"{name} on {self._target} answered without a value list.", request_id=request_id
                )
            yield from (item for item in body["value"] if isinstance(item, dict))
            next_link = body.get("nextLink")
            if not next_link:
                return
            path, params = self._next(next_link, request_id)

    def _next(self, next_link: Any, request_id: str | None) -> tuple[str, dict[str, str]]:
        """The next page's path and query, only on our own endpoint: a token never goes elsewhere."""
        base, link = urlsplit(self._base), urlsplit(str(next_link))
        if (link.scheme, link.netloc) != (base.scheme, base.netloc) or not link.path.startswith(base.path):
            raise UpstreamBadResponse(
                f"A nextLink from {self._target} points outside its endpoint.", request_id=request_id
            )
        return link.path[len(base.path) :], dict(parse_qsl(link.query))


@dataclass(frozen=True)
class ManagedNetwork:
    """What the workspace's ARM resource says of its network; None where it could not be read."""

    managed_vnet: bool | None
    exfiltration_protection: bool | None


def managed_network(workspace: dict[str, Any] | None) -> ManagedNetwork:
    if workspace is None:
        return ManagedNetwork(None, None)
    properties = workspace.get("properties") or {}
    on = bool(properties.get("managedVirtualNetwork"))
    settings = properties.get("managedVirtualNetworkSettings") or {}
    return ManagedNetwork(on, bool(settings.get("preventDataExfiltration")) if on else False)


def network_checks(
    azure: Azure, target: SynapseTarget, workspace: dict[str, Any] | None, *, unreadable: str | None
) -> list[Check]:
    """The private-setup checks of a Synapse target. ``workspace`` is its ARM resource as the management
    plane check read it; ``unreadable`` says why there is none (no subscription in the catalog, or refused)."""
    network = managed_network(workspace)
    client = azure.client(
        ("synapse-network", target.name),
        lambda: SynapseNetworkClient(azure.upstream, target, scope=azure.settings.synapse_scope),
    )
    checks = [*_workspace_checks(network, unreadable)]
    if network.managed_vnet is False:
        checks.append(
            skipped("managedPrivateEndpoints", ENDPOINTS_CALL, "the workspace has no managed virtual network")
        )
        endpoints: list[dict[str, Any]] | None = []
    else:
        endpoints, endpoint_checks = _endpoints(client, target.workspace_name)
        checks += endpoint_checks
    checks += run_checks(
        "linkedServices", LINKED_SERVICES_CALL, lambda: _linked_service_checks(client, network, endpoints)
    )
    host = urlsplit(target.endpoint).hostname or target.endpoint
    checks.append(private_dns_check("privateDns:dev", host, DEV_ZONE, azure.settings))
    return checks


def _workspace_checks(network: ManagedNetwork, unreadable: str | None) -> list[Check]:
    if network.managed_vnet is None:
        reason = f"the workspace's ARM resource was not read ({unreadable})"
        return [
            skipped("managedVirtualNetwork", WORKSPACE_CALL, reason),
            skipped("dataExfiltrationProtection", WORKSPACE_CALL, reason),
        ]
    vnet = Check(
        name="managedVirtualNetwork",
        call=WORKSPACE_CALL,
        facts={"managedVirtualNetwork": MANAGED_VNET if network.managed_vnet else None},
        detail="on: Synapse compute runs in a managed virtual network and reaches private resources through "
        "managed private endpoints"
        if network.managed_vnet
        else "off: Synapse compute reaches other resources over their public endpoints (a managed virtual "
        "network can only be chosen when a workspace is created)",
    )
    exfiltration = Check(
        name="dataExfiltrationProtection",
        call=WORKSPACE_CALL,
        facts={"preventDataExfiltration": network.exfiltration_protection},
        detail="on: outbound traffic only through approved managed private endpoints; Azure Machine Learning "
        "linked services are not supported"
        if network.exfiltration_protection
        else "off",
    )
    return [vnet, exfiltration]


def _endpoints(client: SynapseNetworkClient, workspace: str) -> tuple[list[dict[str, Any]] | None, list[Check]]:
    """The endpoints (None when they could not be listed): a check of the list, then one per endpoint."""
    try:
        listed = client.list_managed_private_endpoints()
    except GatewayError as exc:
        return None, [refused("managedPrivateEndpoints", ENDPOINTS_CALL, exc)]
    count = Check(name="managedPrivateEndpoints", call=ENDPOINTS_CALL, facts={"count": len(listed)})
    return listed, [count, *(_endpoint_check(endpoint, workspace) for endpoint in listed)]


def _endpoint_check(endpoint: dict[str, Any], workspace: str) -> Check:
    properties = endpoint.get("properties") or {}
    name = str(endpoint.get("name") or properties.get("name") or "?")
    target = str(properties.get("privateLinkResourceId") or "")
    approval = str((properties.get("connectionState") or {}).get("status") or "")
    provisioning = str(properties.get("provisioningState") or "")
    facts = {
        "privateLinkResourceId": target,
        "groupId": properties.get("groupId"),
        "provisioningState": provisioning,
        "approval": approval,
        "isReserved": bool(properties.get("isReserved")),
    }
    check_name, call = f"managedPrivateEndpoint:{name}", ENDPOINTS_CALL
    where = describe_resource(target)
    approve = (
        f"approve it on {where} → Networking → Private endpoint connections (the connection from Synapse "
        f"workspace {workspace}, named after {name})"
    )
    recreate = (
        "ask the owner of the target why, then delete it in Synapse Studio → Manage → Managed private endpoints, "
        f"create it again and {approve}"
    )
    if provisioning.lower() == "failed":
        return finding(check_name, call, "error", f"provisioning failed for {where}", action=recreate, facts=facts)
    if approval == "Pending":
        return finding(
            check_name,
            call,
            "warning",
            f"waiting for approval by the owner of {where}: nothing goes through it until then",
            action=approve,
            facts=facts,
        )
    if approval in ("Rejected", "Disconnected"):
        return finding(
            check_name,
            call,
            "error",
            f"{approval.lower()} by the owner of {where}: nothing goes through it",
            action=recreate,
            facts=facts,
        )
    if provisioning.lower() != "succeeded":
        return finding(
            check_name,
            call,
            "warning",
            f"still {provisioning or 'provisioning'}; check again in a few minutes",
            facts=facts,
        )
    return Check(name=check_name, call=call, facts=facts, detail=f"approved, to {where}")


def describe_resource(resource_id: str) -> str:
    """An ARM resource as people name it: "Azure Machine Learning workspace contoso-aml (rg-ml)"."""
    parts = resource_id.strip("/").split("/")
    lowered = [part.lower() for part in parts]
    if len(parts) < 8 or lowered[0] != "subscriptions" or lowered[2] != "resourcegroups" or lowered[4] != "providers":
        return resource_id or "the target resource"
    kind = f"{lowered[5]}/{lowered[6]}"
    return f"{RESOURCE_NOUNS.get(kind, parts[6])} {parts[7]} ({parts[3]})"


def _literal(value: Any) -> str | None:
    """A linked-service property's value when it is a plain string (not an expression or a parameter)."""
    return value if isinstance(value, str) and value and not value.startswith("@") else None


def _linked_service_checks(
    client: SynapseNetworkClient, network: ManagedNetwork, endpoints: list[dict[str, Any]] | None
) -> list[Check]:
    return [
        _linked_service_check(service, network, endpoints)
        for service in client.list_linked_services()
        if (service.get("properties") or {}).get("type") == "AzureMLService"
    ]


def _linked_service_check(
    service: dict[str, Any], network: ManagedNetwork, endpoints: list[dict[str, Any]] | None
) -> Check:
    """An Azure ML linked service: which workspace, whether an approved managed private endpoint reaches
    it, and that data exfiltration protection does not allow it at all. Only the workspace's coordinates
    are read from ``typeProperties``, never its credentials."""
    name = str(service.get("name") or "?")
    check_name, call = f"linkedService:{name}", LINKED_SERVICES_CALL
    type_properties = (service.get("properties") or {}).get("typeProperties") or {}
    subscription = _literal(type_properties.get("subscriptionId"))
    group = _literal(type_properties.get("resourceGroupName"))
    workspace = _literal(type_properties.get("mlWorkspaceName"))
    resource_id = (
        f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.MachineLearningServices"
        f"/workspaces/{workspace}"
        if subscription and group and workspace
        else None
    )
    endpoint = _endpoint_to(endpoints, resource_id) if resource_id and endpoints is not None else None
    approval = str(((endpoint or {}).get("properties") or {}).get("connectionState", {}).get("status") or "") or None
    facts: dict[str, Any] = {
        "type": "AzureMLService",
        "mlWorkspace": resource_id,
        "managedPrivateEndpoint": (endpoint or {}).get("name"),
        "approval": approval,
    }
    if network.exfiltration_protection:
        return finding(
            check_name,
            call,
            "error",
            "data exfiltration protection is on in this workspace, and Azure Machine Learning linked services "
            "are not supported there (Azure ML docs: securely integrate with Azure Synapse)",
            action="run the Azure ML work from a Synapse workspace created without data exfiltration protection "
            "(the setting cannot be changed after creation), or start the Azure ML job directly",
            facts=facts,
        )
    if resource_id is None:
        return Check(
            name=check_name,
            call=call,
            facts=facts,
            detail="the Azure ML workspace is given by parameters or expressions: its private endpoint is not checked",
        )
    where = describe_resource(resource_id)
    if network.managed_vnet is False:
        return finding(
            check_name,
            call,
            "warning",
            f"the workspace has no managed virtual network, so Synapse reaches {where} over its public endpoint; "
            "that fails when the Azure ML workspace disables public network access",
            action="use a Synapse workspace with a managed virtual network and a managed private endpoint to it",
            facts=facts,
        )
    if endpoints is None:
        return Check(
            name=check_name,
            call=call,
            facts=facts,
            detail=f"points to {where}; whether a managed private endpoint reaches it is unknown "
            "(see managedPrivateEndpoints)",
        )
    if endpoint is None:
        return finding(
            check_name,
            call,
            "warning",
            f"no managed private endpoint to {where}: Synapse reaches it over its public endpoint, which fails "
            "when the Azure ML workspace disables public network access",
            action=f"create one: {CREATE_ENDPOINT} → Azure Machine Learning → {where}; then approve it on {where} → "
            "Networking → Private endpoint connections",
            facts=facts,
        )
    if approval != "Approved":
        level: Level = "warning" if approval == "Pending" else "error"
        return finding(
            check_name,
            call,
            level,
            f"its managed private endpoint {endpoint.get('name')} to {where} is {approval or 'in no state'}, so "
            "notebooks and pipelines using it cannot reach the Azure ML workspace",
            action=f"see managedPrivateEndpoint:{endpoint.get('name')}; once approved, give the Synapse workspace's "
            f"managed identity its role on {where} (Access control (IAM)) and allow minutes for Azure ML's "
            "credential cache",
            facts=facts,
        )
    return Check(
        name=check_name, call=call, facts=facts, detail=f"reaches {where} through an approved managed private endpoint"
    )


def _endpoint_to(endpoints: list[dict[str, Any]], resource_id: str) -> dict[str, Any] | None:
    """The managed private endpoint to the Azure ML workspace ``resource_id``, an approved one first."""
    matching = [
        endpoint
        for endpoint in endpoints
        if str((endpoint.get("properties") or {}).get("privateLinkResourceId") or "").lower() == resource_id.lower()
        and str((endpoint.get("properties") or {}).get("groupId") or "").lower() == AML_GROUP
    ]
    matching.sort(key=lambda e: ((e.get("properties") or {}).get("connectionState") or {}).get("status") != "Approved")
    return matching[0] if matching else None
