"""Injected failures: what the app's retry, throttling and "outcome unknown" paths are tested with.

A fault matches a route by its operationId (or ``*``, every route but the admin API) and affects the
next ``count`` calls (``None``: until cleared). Kinds:

* ``status``: answer ``status`` with the API's error body (and ``Retry-After`` when given); the
  operation is not applied.
* ``delay``: sleep ``delay_s`` seconds, then handle the call normally.
* ``drop``: close the connection without answering, ``when="before"`` the operation is applied
  (nothing happened) or ``"after"`` (it happened, the caller just never heard).
* ``malformed``: answer ``status`` (200 included) with a JSON content type and a body cut short, as a
  truncating proxy leaves it; ``when="before"`` nothing is applied, ``"after"`` the operation is
  applied and its own answer is the one cut short (the run exists; the caller cannot read which).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

FaultKind = Literal["status", "delay", "drop", "malformed"]
KINDS: tuple[str, ...] = ("status", "delay", "drop", "malformed")


@dataclass(frozen=True)
class Fault:
    route: str = "*"
    kind: FaultKind = "status"
    status: int = 503
    retry_after: float | None = None
    delay_s: float = 0.0
    when: Literal["before", "after"] = "before"
    count: int | None = None
    code: str | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}")
        if self.when not in ("before", "after"):
            raise ValueError("fault 'when' must be 'before' or 'after'")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError("a status fault answers a 4xx or 5xx status")
        if self.kind == "malformed" and not 200 <= self.status <= 599:
            raise ValueError("a malformed fault answers a 2xx to 5xx status")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be positive, or null for 'until cleared'")
        if self.delay_s < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delays cannot be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultRegistry:
    """Faults in the order they were added; the first match wins and uses up one of its calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[list[Any]] = []  # [fault, remaining calls or None]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.count])

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**entry[0].to_dict(), "remaining": entry[1]} for entry in self._faults]

    def take(self, route: str) -> Fault | None:
        """The fault that applies to this call of ``route``, if any, counted as used."""
        if not self._faults:
            return None
        with self._lock:
            for index, entry in enumerate(self._faults):
                fault: Fault = entry[0]
                if fault.route not in ("*", route):
                    continue
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] == 0:
                        del self._faults[index]
                return fault
        return None
