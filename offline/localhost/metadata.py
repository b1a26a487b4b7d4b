"""The app's functions as the host sees them: read from the app's own metadata, nothing registered twice.

``FunctionApp.get_functions()`` yields each function; ``get_function_json()`` (a JSON string in
azure-functions 1.26) its bindings, the same document the Python worker hands the real host;
``get_user_function()`` the handler. The function's name is not in that document: it comes from
``get_function_name()`` (the ``@function_name`` setting, else the Python name).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from offline.localhost.config import HostConfigError

Handler = Callable[..., Any]
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class HttpFunction:
    name: str
    handler: Handler
    param: str
    route: str
    methods: frozenset[str]
    auth_level: str  # anonymous | function | admin


@dataclass(frozen=True)
class TimerFunction:
    name: str
    handler: Handler
    param: str
    schedule: str
    run_on_startup: bool


@dataclass(frozen=True)
class QueueFunction:
    name: str
    handler: Handler
    param: str
    queue_name: str
    connection: str


FunctionSpec = HttpFunction | TimerFunction | QueueFunction


def read_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    """Every function of ``app``, refusing what this host cannot serve as the real host would run it."""
    return [_spec(function) for function in _index(app)]


def _index(app: func.FunctionApp) -> list[func.Function]:
    """``get_functions()`` on a fresh record of names.

    It records the names it returns to refuse duplicates, so a second call on the same app fails on the
    first call's names. The real worker indexes once; here other code in the same process (an OpenAPI
    export, a test) may have indexed the app already, so index with an empty record and put the old
    one back. Duplicates within the app are still refused.
    """
    recorded = app.functions_bindings
    app.functions_bindings = {}
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = recorded


def _spec(function: func.Function) -> FunctionSpec:
    name = function.get_function_name() or function.get_user_function().__name__
    handler = function.get_user_function()
    bindings: list[dict[str, Any]] = json.loads(function.get_function_json())["bindings"]
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise HostConfigError(f"function {name}: expected one trigger, found {len(triggers)}")
    trigger = triggers[0]
    _check_other_bindings(name, trigger, bindings)
    param = str(trigger["name"])
    _check_parameters(name, handler, param)
    kind = trigger["type"]
    if kind == "httpTrigger":
        methods = trigger.get("methods")
        return HttpFunction(
            name=name,
            handler=handler,
            param=param,
            route=str(trigger.get("route") or name),
            methods=frozenset(str(m).upper() for m in methods) if methods else ALL_METHODS,
            auth_level=str(trigger.get("authLevel") or "function").lower(),
        )
    if kind == "timerTrigger":
        return TimerFunction(name, handler, param, str(trigger["schedule"]), bool(trigger.get("runOnStartup")))
    if kind == "queueTrigger":
        return QueueFunction(name, handler, param, str(trigger["queueName"]), str(trigger["connection"]))
    raise HostConfigError(f"function {name}: the local host does not run {kind} functions")


def _check_other_bindings(name: str, trigger: dict[str, Any], bindings: list[dict[str, Any]]) -> None:
    """Output and input bindings would need the host's binding extensions; only the HTTP result is served."""
    for binding in bindings:
        if binding is trigger:
            continue
        if not (trigger["type"] == "httpTrigger" and binding.get("type") == "http"
                and binding.get("name") == "$return"):  # fmt: skip
            raise HostConfigError(
                f"function {name}: the local host does not support the {binding.get('type')} binding "
                f"{binding.get('name')!r}; use the Azure SDK clients in the handler instead"
            )


def _check_parameters(name: str, handler: Handler, param: str) -> None:
    """The handler gets its trigger argument only (no ``context``): anything else it requires is refused now
    rather than failing on every call."""
    parameters = inspect.signature(handler).parameters
    if param not in parameters:
        raise HostConfigError(f"function {name}: the handler has no parameter {param!r} for its trigger")
    for other in parameters.values():
        required = other.default is inspect.Parameter.empty and other.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if other.name != param and required:
            raise HostConfigError(f"function {name}: parameter {other.name!r} is not supported by the local host")
