"""The HTTP functions, registered from the handlers. Route, method and auth level live here only.

The handlers (and the catalog, the kinds and the views they bring) are imported by the first request,
not when the host indexes the app: indexing needs only the routes.
"""

from __future__ import annotations

import azure.functions as func

from shared.config.settings import Settings

bp = func.Blueprint()  # type: ignore[no-untyped-call]

# Behind Easy Auth (which admits only APIM's identity) the host-level key check is off; read once, at
# indexing, like every binding setting.
_AUTH = func.AuthLevel.ANONYMOUS if Settings().anonymous_http else func.AuthLevel.FUNCTION


@bp.function_name("start_pipeline_run")
@bp.route(route="targets/{target}/pipelines/{pipeline}/runs", methods=["POST"], auth_level=_AUTH)
def start_pipeline_run(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("start_pipeline_run", req)


@bp.function_name("start_spark_batch")
@bp.route(route="targets/{target}/sparkpools/{pool}/batches", methods=["POST"], auth_level=_AUTH)
def start_spark_batch(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("start_spark_batch", req)


@bp.function_name("start_job_run")
@bp.route(route="targets/{target}/jobs/{template}/runs", methods=["POST"], auth_level=_AUTH)
def start_job_run(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("start_job_run", req)


@bp.function_name("cancel_run")
@bp.route(route="runs/{id}/cancel", methods=["POST"], auth_level=_AUTH)
def cancel_run(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("cancel_run", req)


@bp.function_name("rerun")
@bp.route(route="runs/{id}/rerun", methods=["POST"], auth_level=_AUTH)
def rerun(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("rerun", req)


@bp.function_name("get_target")
@bp.route(route="targets/{target}", methods=["GET"], auth_level=_AUTH)
def get_target(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("get_target", req)


@bp.function_name("get_run")
@bp.route(route="runs/{id}", methods=["GET"], auth_level=_AUTH)
def get_run(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("get_run", req)


@bp.function_name("list_runs")
@bp.route(route="runs", methods=["GET"], auth_level=_AUTH)
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("list_runs", req)


@bp.function_name("list_targets")
@bp.route(route="targets", methods=["GET"], auth_level=_AUTH)
def list_targets(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("list_targets", req)


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _handle("health", req)


def _handle(name: str, req: func.HttpRequest) -> func.HttpResponse:
    from shared.api import handlers
    from shared.api.http import endpoint

    return endpoint(getattr(handlers, name))(req)
