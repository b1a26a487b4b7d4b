"""The ``/_emulator/*`` control API: the in-process controls, for callers in another process.

Unauthenticated on purpose (it only listens on 127.0.0.1); never counted, delayed or faulted, so
a test can always inspect and repair the emulator it is breaking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import isoformat
from .faults import Fault
from .server import ApiError, Family, Handler, Request, Response, Router

if TYPE_CHECKING:
    from .emulator import Emulator

PREFIX = "/_emulator"


class AdminApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.endpoints: list[dict[str, str]] = []

    def register(self, router: Router) -> None:
        def add(name: str, method: str, path: str, handler: Handler, family: Family) -> None:
            router.add(name, method, path, handler, family)
            self.endpoints.append({"operation": name, "method": method, "path": path})

        add("Admin_Index", "GET", PREFIX, self.index, "admin")
        add("Admin_GetInfo", "GET", PREFIX + "/info", lambda _: Response(200, self.emulator.info), "admin")
        add("Admin_GetCounters", "GET", PREFIX + "/counters", lambda _: Response(200, self.emulator.counters), "admin")
        add("Admin_ResetCounters", "POST", PREFIX + "/counters/reset", self.reset_counters, "admin")
        add("Admin_GetFaults", "GET", PREFIX + "/faults", self.list_faults, "admin")
        add("Admin_AddFault", "POST", PREFIX + "/faults", self.add_fault, "admin")
        add("Admin_ClearFaults", "DELETE", PREFIX + "/faults", self.clear_faults, "admin")
        add("Admin_GetClock", "GET", PREFIX + "/clock", lambda _: Response(200, self._clock()), "admin")
        add("Admin_AdvanceClock", "POST", PREFIX + "/clock/advance", self.advance_clock, "admin")
        add("Admin_GetRuns", "GET", PREFIX + "/runs", lambda _: Response(200, {"value": self.emulator.runs()}), "admin")
        add("Admin_SetPageSize", "PUT", PREFIX + "/page-size", self.set_page_size, "admin")
        add(
            "Admin_GetLatency",
            "GET",
            PREFIX + "/latency",
            lambda _: Response(200, self.emulator.latency.describe()),
            "admin",
        )
        add("Admin_SetLatency", "PUT", PREFIX + "/latency", self.set_latency, "admin")

    def index(self, _: Request) -> Response:
        """What the admin API offers, so its root answers rather than 404s."""
        return Response(200, {"name": "Pipeline Gateway offline Azure emulator", "endpoints": self.endpoints})

    def _clock(self) -> dict[str, Any]:
        clock = self.emulator.clock
        return {"now": isoformat(clock.now()), "offsetSeconds": clock.offset}

    def reset_counters(self, _: Request) -> Response:
        self.emulator.reset_counters()
        return Response(200, {})

    def list_faults(self, _: Request) -> Response:
        return Response(200, {"value": self.emulator.faults.active()})

    def add_fault(self, request: Request) -> Response:
        body = _object(request)
        try:
            fault = Fault.from_dict(body)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        self.emulator.faults.add(fault)
        return Response(201, {"value": self.emulator.faults.active()})

    def clear_faults(self, _: Request) -> Response:
        self.emulator.faults.clear()
        return Response(200, {"value": []})

    def advance_clock(self, request: Request) -> Response:
        seconds = _number(_object(request), "seconds")
        try:
            self.emulator.clock.advance(seconds)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        return Response(200, self._clock())

    def set_page_size(self, request: Request) -> Response:
        size = _number(_object(request), "size")
        try:
            self.emulator.set_page_size(int(size))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        return Response(200, {"size": int(size)})

    def set_latency(self, request: Request) -> Response:
        body = _object(request)
        route = body.get("route")
        if route is not None and not isinstance(route, str):
            raise ApiError(400, "BadRequest", "'route' must be a route name or null.")
        try:
            self.emulator.set_latency(_number(body, "seconds"), route=route)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        return Response(200, self.emulator.latency.describe())


def _object(request: Request) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, "BadRequest", f"'{name}' must be a number.", target=name)
    return float(value)
