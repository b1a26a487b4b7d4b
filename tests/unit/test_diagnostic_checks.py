"""The building blocks of diagnostics: check levels, findings, refusals naming the role, the summary
line, and the private DNS check with an injected resolver (no network)."""

from __future__ import annotations

import pytest

from shared.config.settings import Settings
from shared.errors import UpstreamForbidden, UpstreamUnavailable
from shared.kinds.checks import Check, finding, run_check, run_checks, skipped, summary
from shared.kinds.network import is_private, private_dns_check

PRIVATE = Settings({"GATEWAY_PRIVATE_NETWORKING": "true"})
ZONE = "privatelink.dev.azuresynapse.net"
HOST = "contoso-syn.dev.azuresynapse.net"


def resolver(*addresses: str) -> object:
    return lambda host: list(addresses)


def test_a_check_level_follows_ok_and_ok_follows_a_given_level() -> None:
    assert Check(name="a", call="GET", ok=True).level == "ok"
    assert Check(name="a", call="GET", ok=False).level == "error"
    warning = Check(name="a", call="GET", level="warning")
    assert warning.ok is True and warning.level == "warning"
    assert Check(name="a", call="GET", ok=True, level="error").ok is False


def test_a_finding_carries_its_level_detail_action_and_facts() -> None:
    check = finding("mpe:aml", "GET managedPrivateEndpoints", "warning", "Pending", action="approve it", facts={"x": 1})
    assert (check.level, check.ok, check.detail, check.action, check.facts) == (
        "warning",
        True,
        "Pending",
        "approve it",
        {"x": 1},
    )


def test_a_refused_call_is_an_error_naming_the_role_it_needs() -> None:
    def refuse() -> dict[str, object]:
        raise UpstreamForbidden(
            "get on lake was refused: no. Hint: the gateway's identity needs Reader on /x.",
            role="Reader on /x",
            upstream_status=403,
            request_id="r-1",
        )

    check = run_check("managementPlane", "GET", refuse)
    assert check.level == "error" and check.ok is False
    assert check.role == "Reader on /x" and check.upstreamStatus == 403 and check.upstreamRequestId == "r-1"


def test_one_failed_call_stands_for_the_checks_it_would_have_made() -> None:
    def unavailable() -> list[Check]:
        raise UpstreamUnavailable("down", upstream_status=503)

    checks = run_checks("managedPrivateEndpoints", "GET list", unavailable)
    assert [(c.name, c.level, c.role) for c in checks] == [("managedPrivateEndpoints", "error", None)]


def test_the_summary_counts_errors_and_warnings_and_names_them_errors_first() -> None:
    checks = [
        Check(name="a", call="c"),
        Check(name="w", call="c", level="warning"),
        Check(name="e1", call="c", level="error"),
        Check(name="e2", call="c", ok=False),
    ]
    assert summary(checks) == "2 errors, 1 warning: e1, e2, w"
    assert summary(checks[:2]) == "1 warning: w"
    assert summary([checks[0], skipped("s", "c", "why")]) == "all 2 checks ok (1 skipped)"
    assert summary([checks[0]]) == "all 1 check ok"


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.1.2.3", True),
        ("172.16.0.4", True),
        ("172.32.0.4", False),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("100.128.0.1", False),
        ("fd12:3456::1", True),
        ("2001:db8::1", False),
        ("127.0.0.1", False),
        ("20.50.1.2", False),
        ("not-an-ip", False),
    ],
)
def test_private_means_rfc1918_rfc6598_or_ipv6_unique_local(address: str, private: bool) -> None:
    assert is_private(address) is private


def test_the_dns_check_is_skipped_without_private_networking() -> None:
    check = private_dns_check("privateDns:dev", HOST, ZONE, Settings({}), resolve=resolver("20.1.1.1"))
    assert check.level == "ok" and "GATEWAY_PRIVATE_NETWORKING" in (check.skipped or "")


def test_a_host_resolving_to_a_private_endpoint_is_ok() -> None:
    check = private_dns_check("privateDns:dev", HOST, ZONE, PRIVATE, resolve=resolver("10.0.1.5"))
    assert check.level == "ok" and check.facts == {"host": HOST, "zone": ZONE, "addresses": ["10.0.1.5"]}


def test_a_host_resolving_to_a_public_address_is_an_error_naming_the_zone_to_link() -> None:
    check = private_dns_check("privateDns:dev", HOST, ZONE, PRIVATE, resolve=resolver("10.0.1.5", "20.61.1.1"))
    assert check.level == "error" and "20.61.1.1" in (check.detail or "")
    assert ZONE in (check.action or "") and "Virtual network links" in (check.action or "")


def test_a_host_that_does_not_resolve_is_an_error_naming_the_zone() -> None:
    def nxdomain(host: str) -> list[str]:
        raise OSError("Name or service not known")

    check = private_dns_check("privateDns:dev", HOST, ZONE, PRIVATE, resolve=nxdomain)
    assert check.level == "error" and "does not resolve" in (check.detail or "") and ZONE in (check.action or "")
