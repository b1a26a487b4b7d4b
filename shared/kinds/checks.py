"""Building blocks of the diagnostics each kind runs: one read-only call per check, failures reported.

A refused call says which role is missing and where (the transport's role hint), instead of failing
the whole report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.errors import GatewayError, UpstreamError


class Check(BaseModel):
    """One diagnostics check as operators read it (``GET /api/targets/{t}``, ``pipeline-gateway targets``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    call: str
    ok: bool
    facts: dict[str, Any] | None = None
    detail: str | None = None
    skipped: str | None = None
    upstreamStatus: int | None = None
    upstreamCode: str | None = None
    upstreamRequestId: str | None = None


def run_check(name: str, call: str, action: Callable[[], dict[str, Any]]) -> Check:
    """Runs one check; its failure is reported, with Azure's status and the role hint, not raised."""
    try:
        facts = action()
    except UpstreamError as exc:
        return Check(
            name=name,
            call=call,
            ok=False,
            detail=exc.detail,
            upstreamStatus=exc.upstream_status,
            upstreamCode=exc.upstream_code,
            upstreamRequestId=exc.request_id,
        )
    except GatewayError as exc:
        return Check(name=name, call=call, ok=False, detail=exc.detail)
    return Check(name=name, call=call, ok=True, facts=facts)


def skipped(name: str, call: str, reason: str) -> Check:
    return Check(name=name, call=call, ok=True, skipped=reason)


def resource_facts(resource: dict[str, Any]) -> dict[str, Any]:
    """What an ARM resource tells an operator at a glance."""
    properties = resource.get("properties") or {}
    return {
        "name": resource.get("name"),
        "location": resource.get("location"),
        "provisioningState": properties.get("provisioningState"),
        "publicNetworkAccess": properties.get("publicNetworkAccess"),
        "identityType": (resource.get("identity") or {}).get("type"),
    }
