"""Checks of the app's own network path to a target: does its data-plane host resolve, from the app,
to a private address?

With private networking a target is reached through a private endpoint in the app's virtual network;
that works only when the private DNS zone holding the endpoint's record is linked to that network.
Unlinked, the name resolves to the service's public address and calls fail (public access off) or go
round the private endpoint, silently. Only the resolver the app itself uses can tell, so the check
resolves the host in process, with no Azure call.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from shared.config.settings import Settings
from shared.kinds.checks import Check, finding, skipped

# Takes a host name, returns the addresses it resolves to; raises OSError when it does not resolve.
Resolver = Callable[[str], list[str]]

# RFC 1918, RFC 6598 (shared address space, used by some private DNS setups) and IPv6 unique local.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def system_resolver(host: str) -> list[str]:
    """The addresses the app's own resolver gives for ``host`` (the VNet's DNS in Azure)."""
    infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in PRIVATE_NETWORKS if network.version == ip.version)


def private_dns_check(name: str, host: str, zone: str, settings: Settings, *, resolve: Resolver | None = None) -> Check:
    """Whether ``host`` resolves to a private address from the app, when the deployment uses private
    networking (``GATEWAY_PRIVATE_NETWORKING``); else skipped. ``zone`` is the private DNS zone that
    must be linked to the app's virtual network for it to. ``resolve`` defaults to this module's
    ``system_resolver``, looked up per call (tests of whole reports replace it)."""
    resolve = resolve or system_resolver
    call = f"DNS lookup of {host}"
    if not settings.private_networking:
        return skipped(name, call, "private networking is off (GATEWAY_PRIVATE_NETWORKING)")
    link = (
        f"link the private DNS zone {zone} (holding the private endpoint's record for {host}) to the app's "
        "virtual network: Azure portal → Private DNS zones → " + zone + " → Virtual network links → Add"
    )
    try:
        addresses = resolve(host)
    except OSError as exc:
        return finding(
            name,
            call,
            "error",
            f"{host} does not resolve from the app ({type(exc).__name__}: {exc}).",
            action=link,
            facts={"host": host, "zone": zone, "addresses": []},
        )
    facts = {"host": host, "zone": zone, "addresses": addresses}
    public = [address for address in addresses if not is_private(address)]
    if not addresses or public:
        return finding(
            name,
            call,
            "error",
            f"{host} resolves to {', '.join(public) or 'no address'} from the app, not to a private endpoint's "
            f"address: calls go to the public endpoint, or fail where public network access is off.",
            action=link,
            facts=facts,
        )
    return Check(name=name, call=call, ok=True, facts=facts)
