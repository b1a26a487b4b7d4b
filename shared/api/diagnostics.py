"""Target diagnostics: does the gateway's identity reach a target the way the app will use it?

Operators run this right after a deployment. Each kind working on the target contributes its checks,
one cheap read-only call each on the path the app depends on (the management plane, the run reads the
poller makes, each listed Spark pool, the private network path to the target); each check is ok, a
warning or an error, a refused call says which role is missing and where, and the report's summary
line names what needs a person.

A target's checks are reused for ``CHECK_TTL`` in process memory (``CheckCache``), so repeated or
concurrent requests do not multiply Azure calls; the report says when its checks ran. Nothing here is
state that matters: another instance, or a restart, simply checks again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.api.views import TargetDiagnostics, target_view
from shared.config.targets import TargetEntry
from shared.kinds.base import Azure
from shared.kinds.checks import Check, summary
from shared.kinds.registry import kinds_of
from shared.runs.model import iso_time, utcnow

CHECK_TTL = timedelta(seconds=60)


@dataclass(frozen=True)
class Checked:
    checks: list[Check]
    at: datetime


class CheckCache:
    """Each target's latest checks, reused for ``ttl``; while one request checks a target, others for
    the same target wait for its result instead of checking too."""

    def __init__(self, ttl: timedelta = CHECK_TTL, now: Callable[[], datetime] = utcnow) -> None:
        self._ttl = ttl
        self._now = now
        self._lock = threading.Lock()
        self._targets: dict[tuple[str, str], tuple[threading.Lock, list[Checked]]] = {}

    def checked(self, azure: Azure, target: TargetEntry) -> Checked:
        key = (target.name, target.model_dump_json())  # a changed catalog entry is checked anew
        with self._lock:
            lock, latest = self._targets.setdefault(key, (threading.Lock(), []))
        with lock:
            if not latest or self._now() - latest[0].at >= self._ttl:
                checks = [check for kind in kinds_of(target) for check in kind.checks(azure, target)]
                latest[:] = [Checked(checks, self._now())]
            return latest[0]


def diagnose(
    azure: Azure, target: TargetEntry, product: str | None = None, *, operator: bool = False
) -> tuple[TargetDiagnostics, timedelta]:
    """The target as ``product`` may see it, its checks, and how old they are."""
    checked = azure.client(("diagnostics",), CheckCache).checked(azure, target)
    report = TargetDiagnostics(
        target=target_view(target, product, operator=operator),
        healthy=all(check.ok for check in checked.checks),
        summary=summary(checked.checks),
        checks=checked.checks,
        checkedAt=iso_time(checked.at) or "",
    )
    return report, utcnow() - checked.at
