"""Building blocks of the diagnostics each kind runs: one read-only call per check, failures reported.

A check is ``ok``, a ``warning`` (works today, but something needs a person: an endpoint waiting for
approval) or an ``error`` (what the app depends on is broken or refused). A refused call names the
role it needs (``role``) instead of failing the whole report, and a finding says what to do and where
(``action``), so one report is enough to act on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from shared.errors import GatewayError, UpstreamError, UpstreamForbidden

Level = Literal["ok", "warning", "error"]


class Check(BaseModel):
    """One diagnostics check as operators read it (``GET /api/targets/{t}``, ``pipeline-gateway targets``).

    ``level`` defaults from ``ok`` ("ok" when ok, else "error"); given, it decides ``ok``, which is False
    only for an error (callers that read ``ok`` alone keep working).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    call: str
    ok: bool = True
    level: Level = "ok"
    facts: dict[str, Any] | None = None
    detail: str | None = None
    action: str | None = None
    role: str | None = None
    skipped: str | None = None
    upstreamStatus: int | None = None
    upstreamCode: str | None = None
    upstreamRequestId: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _level_and_ok(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        level = data.get("level")
        if level is None:
            level = "ok" if data.get("ok", True) else "error"
        return {**data, "level": level, "ok": level != "error"}


def finding(
    name: str,
    call: str,
    level: Level,
    detail: str,
    *,
    action: str | None = None,
    facts: dict[str, Any] | None = None,
) -> Check:
    """A check whose call worked and whose answer says something: ``detail`` what, ``action`` what to do
    and where."""
    return Check(name=name, call=call, level=level, detail=detail, action=action, facts=facts)


def refused(name: str, call: str, exc: GatewayError) -> Check:
    """The check's call failed: an error with Azure's status and request id, and the role it needs when
    access was refused."""
    if isinstance(exc, UpstreamError):
        return Check(
            name=name,
            call=call,
            level="error",
            detail=exc.detail,
            role=exc.role if isinstance(exc, UpstreamForbidden) else None,
            upstreamStatus=exc.upstream_status,
            upstreamCode=exc.upstream_code,
            upstreamRequestId=exc.request_id,
        )
    return Check(name=name, call=call, level="error", detail=exc.detail)


def run_check(name: str, call: str, action: Callable[[], dict[str, Any]]) -> Check:
    """Runs one check; its failure is reported, with Azure's status and the role, not raised."""
    try:
        facts = action()
    except GatewayError as exc:
        return refused(name, call, exc)
    return Check(name=name, call=call, ok=True, facts=facts)


def run_checks(name: str, call: str, action: Callable[[], list[Check]]) -> list[Check]:
    """One call that yields several checks (one per endpoint or linked service listed); when the call
    fails, one refused check named ``name`` stands for them all."""
    try:
        return action()
    except GatewayError as exc:
        return [refused(name, call, exc)]


def skipped(name: str, call: str, reason: str) -> Check:
    return Check(name=name, call=call, ok=True, skipped=reason)


def summary(checks: Sequence[Check]) -> str:
    """One line per target: "all 7 checks ok", or "2 errors, 1 warning: a, b, c" naming the checks that
    need a person, errors first."""
    errors = [check.name for check in checks if check.level == "error"]
    warnings = [check.name for check in checks if check.level == "warning"]
    if not errors and not warnings:
        skipped_count = sum(1 for check in checks if check.skipped)
        tail = f" ({skipped_count} skipped)" if skipped_count else ""
        return f"all {len(checks)} check{'s' if len(checks) != 1 else ''} ok{tail}"
    counts = [_count(len(errors), "error"), _count(len(warnings), "warning")]
    return ", ".join(count for count in counts if count) + ": " + ", ".join(errors + warnings)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}" if number else ""


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
