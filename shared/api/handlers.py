"""The HTTP API's handlers; ``shared.functions.http`` registers them with the Functions host."""

from __future__ import annotations

from datetime import datetime

import azure.functions as func

from shared.api.http import (
    PRODUCT_HEADER,
    SUBSCRIPTION_HEADER,
    base_url,
    json_response,
    read_json,
)
from shared.api.requests import CancelRequest, RerunRequest, parse_body, validate_name
from shared.api.views import RunPage, RunView, chain_view, run_view, target_view
from shared.config import names
from shared.context import app_context
from shared.errors import ConfigurationError, ValidationFailed
from shared.kinds.registry import kind_for
from shared.runs.model import Run, RunStatus
from shared.runs.service import Caller, RunService
from shared.telemetry import tracing as telemetry

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 200


def _caller(req: func.HttpRequest) -> Caller:
    return Caller(
        subscription=req.headers.get(SUBSCRIPTION_HEADER) or None,
        product=req.headers.get(PRODUCT_HEADER) or None,
        correlation_id=telemetry.correlation_id() or "",
    )


def start_pipeline_run(req: func.HttpRequest) -> func.HttpResponse:
    return _start(req, "pipelines", validate_name(names.PIPELINE, req.route_params.get("pipeline", ""), "pipeline"))


def start_spark_batch(req: func.HttpRequest) -> func.HttpResponse:
    return _start(req, "sparkpools", validate_name(names.SPARK_POOL, req.route_params.get("pool", ""), "pool"))


def _start(req: func.HttpRequest, family: str, resource: str) -> func.HttpResponse:
    """A start on ``/targets/{target}/{family}/{resource}/...``: the target's kind for that family
    validates the body and starts it."""
    context = app_context()
    target_name = validate_name(names.TARGET, req.route_params.get("target", ""), "target")
    key = _idempotency_key(req)
    raw = read_json(req, context.settings.max_body_bytes)
    target = context.catalog.get(target_name)
    kind = kind_for(family, target)
    body = parse_body(kind.request_model, raw)
    result = RunService(context).start(kind, target, resource, body, _caller(req), key)
    return _accepted(req, result.run, replayed=result.replayed)


def _idempotency_key(req: func.HttpRequest) -> str | None:
    key: str | None = req.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ValidationFailed(
            "The Idempotency-Key header must be 1-255 printable characters.",
            [{"field": "Idempotency-Key", "message": "1-255 printable characters"}],
        )
    return key


def _accepted(req: func.HttpRequest, run: Run, *, replayed: bool) -> func.HttpResponse:
    view = _run_view(req, run)
    headers = {"Location": view.links["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(view.json_view(), 202, headers)


def get_run(req: func.HttpRequest) -> func.HttpResponse:
    context = app_context()
    run = context.registry.get(req.route_params.get("id", ""))
    view = _run_view(req, run).model_copy(update={"chain": chain_view(RunService(context).chain(run))})
    return json_response(view.json_view())


def cancel_run(req: func.HttpRequest) -> func.HttpResponse:
    context = app_context()
    body = parse_body(CancelRequest, read_json(req, context.settings.max_body_bytes))
    run = RunService(context).cancel(req.route_params.get("id", ""), recursive=body.recursive, caller=_caller(req))
    return _accepted(req, run, replayed=False)


def rerun(req: func.HttpRequest) -> func.HttpResponse:
    context = app_context()
    key = _idempotency_key(req)
    body = parse_body(RerunRequest, read_json(req, context.settings.max_body_bytes))
    result = RunService(context).rerun(req.route_params.get("id", ""), body, _caller(req), key)
    return _accepted(req, result.run, replayed=result.replayed)


def get_target(req: func.HttpRequest) -> func.HttpResponse:
    """The target as the caller may see it, and a live check of the identity's access to it."""
    from shared.api.diagnostics import diagnose

    context = app_context()
    target = context.catalog.get(validate_name(names.TARGET, req.route_params.get("target", ""), "target"))
    return json_response(diagnose(context, target, req.headers.get(PRODUCT_HEADER) or None).json_view())


LIST_FILTERS = ("target", "pipeline", "status", "since", "limit", "continuation")


def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    context = app_context()
    unknown = sorted(set(req.params) - {*LIST_FILTERS, "code"})  # "code" may carry the function key
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter {unknown[0][:40]!r}; the filters are {', '.join(LIST_FILTERS)}.",
            [{"field": name[:40], "message": "unknown query parameter"} for name in unknown[:10]],
        )
    empty = [name for name in LIST_FILTERS if req.params.get(name) == ""]
    if empty:
        raise ValidationFailed(
            f"Empty query parameter {empty[0]}=; give it a value or leave it out.",
            [{"field": name, "message": "empty; give a value or leave it out"} for name in empty],
        )
    target = req.params.get("target")
    if target:
        validate_name(names.TARGET, target, "target")
        context.catalog.get(target)
    pipeline = req.params.get("pipeline")
    if pipeline:
        validate_name(names.PIPELINE, pipeline, "pipeline")
    status = req.params.get("status")
    if status and status not in RunStatus.ALL:
        raise ValidationFailed(
            f"status must be one of {', '.join(RunStatus.ALL)}.", [{"field": "status", "message": "unknown status"}]
        )
    since = _since(req.params.get("since"))
    limit = _limit(req.params.get("limit"))
    runs, token = context.registry.list_runs(
        target=target,
        pipeline=pipeline,
        status=status,
        since=since,
        limit=limit,
        continuation=req.params.get("continuation"),
    )
    next_link = f"{base_url(req, context.settings.public_base_url)}/runs?continuation={token}" if token else None
    page = RunPage(value=[_run_view(req, run) for run in runs], continuation=token, nextLink=next_link)
    return json_response(page.json_view())


def list_targets(req: func.HttpRequest) -> func.HttpResponse:
    product = req.headers.get(PRODUCT_HEADER) or None
    targets = [target_view(t, product).json_view() for t in app_context().catalog.targets]
    return json_response({"value": targets})


def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness and configuration sanity, with no upstream calls and nothing sensitive."""
    try:
        app_context().catalog  # noqa: B018 - parsing it is the check
    except ConfigurationError:
        return json_response({"status": "misconfigured"}, 503)
    return json_response({"status": "ok"})


def _run_view(req: func.HttpRequest, run: Run) -> RunView:
    context = app_context()
    settings = context.settings
    return run_view(run, catalog=context.catalog, settings=settings, base_url=base_url(req, settings.public_base_url))


def _since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationFailed(
            "since must be an ISO 8601 time with a zone, e.g. 2026-11-22T00:00:00Z.",
            [{"field": "since", "message": "ISO 8601 with zone"}],
        )
    return moment


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ValidationFailed(
            f"limit must be an integer from 1 to {MAX_PAGE}.", [{"field": "limit", "message": f"1-{MAX_PAGE}"}]
        )
    return int(raw)
