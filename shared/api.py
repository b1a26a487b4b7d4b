"""The HTTP functions, registered from the handlers. Route, method and auth level live here only."""

from __future__ import annotations

import azure.functions as func

from shared import handlers
from shared.http import endpoint

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("start_pipeline_run")
@bp.route(route="targets/{target}/pipelines/{pipeline}/runs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_pipeline_run(req: func.HttpRequest) -> func.HttpResponse:
    return endpoint(handlers.start_pipeline_run)(req)


@bp.function_name("get_run")
@bp.route(route="runs/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_run(req: func.HttpRequest) -> func.HttpResponse:
    return endpoint(handlers.get_run)(req)


@bp.function_name("list_runs")
@bp.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    return endpoint(handlers.list_runs)(req)


@bp.function_name("list_targets")
@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_targets(req: func.HttpRequest) -> func.HttpResponse:
    return endpoint(handlers.list_targets)(req)


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return endpoint(handlers.health)(req)
