"""Target diagnostics: does the gateway's identity reach a target the way the app will use it?

Operators run this right after a deployment. Each kind working on the target contributes its checks,
one cheap read-only call each on the path the app depends on (the management plane, the run reads the
poller makes, each listed Spark pool); a refused call says which role is missing and where.
"""

from __future__ import annotations

from shared.api.views import TargetDiagnostics, target_view
from shared.config.targets import TargetEntry
from shared.kinds.base import Azure
from shared.kinds.registry import kinds_of


def diagnose(azure: Azure, target: TargetEntry, product: str | None = None) -> TargetDiagnostics:
    checks = [check for kind in kinds_of(target) for check in kind.checks(azure, target)]
    return TargetDiagnostics(target=target_view(target, product), healthy=all(c.ok for c in checks), checks=checks)
