"""The app's registered functions, read once per process.

``FunctionApp.get_functions()`` (azure-functions 1.26) validates names against every earlier call,
so a second call raises; the worker calls it once, and so must the OpenAPI builder, the local host
and the tests, through this cache.
"""

from __future__ import annotations

import functools
from typing import Any

import azure.functions as func


@functools.cache
def registered_functions(app: func.FunctionApp) -> tuple[Any, ...]:
    return tuple(app.get_functions())


def user_function(app: func.FunctionApp, name: str) -> Any:
    """The handler registered under ``name``."""
    for function in registered_functions(app):
        if function.get_function_name() == name:
            return function.get_user_function()
    raise LookupError(f"no function named {name!r}")
