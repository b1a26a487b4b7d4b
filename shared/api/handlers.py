"""The HTTP API's handlers; ``shared.functions.http`` registers them with the Functions host.

Each caller is a tenant: its APIM product, or no product (the function key used directly). It sees
the runs its tenant started and the targets whose rules name it; the catalog's ``operatorProducts``
see everything. Anything else is not found, so no answer confirms that it exists.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode

import azure.functions as func

from shared.api.http import (
    PRODUCT_HEADER,
    SUBSCRIPTION_HEADER,
    base_url,
    json_response,
    read_json,
)
from shared.api.requests import CancelRequest, RerunRequest, parse_body, validate_name
from shared.api.views import RunPage, RunView, run_view, target_view, visible, with_chain
from shared.config import names
from shared.context import app_context
from shared.errors import ConfigurationError, TargetNotFound, ValidationFailed
from shared.kinds.registry import kind_for
from shared.runs.model import Run, RunStatus
from shared.runs.service import Caller, RunService
from shared.telemetry import tracing as telemetry

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 200
_PAGE_SIZE = re.compile(r"[0-9]{1,3}")  # ASCII digits: str.isdigit() also takes "²", which int() refuses


def _caller(req: func.HttpRequest) -> Caller:
    product = req.headers.get(PRODUCT_HEADER) or None
    return Caller(
        subscription=req.headers.get(SUBSCRIPTION_HEADER) or None,
        product=product,
        correlation_id=telemetry.correlation_id() or "",
        operator=app_context().catalog.is_operator(product),
    )


def start_pipeline_run(req: func.HttpRequest) -> func.HttpResponse:
    return _start(req, "pipelines", validate_name(names.PIPELINE, req.route_params.get("pipeline", ""), "pipeline"))


def start_spark_batch(req: func.HttpRequest) -> func.HttpResponse:
    return _start(req, "sparkpools", validate_name(names.SPARK_POOL, req.route_params.get("pool", ""), "pool"))


def start_job_run(req: func.HttpRequest) -> func.HttpResponse:
    return _start(req, "jobs", validate_name(names.ML_TEMPLATE, req.route_params.get("template", ""), "template"))


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
    service, caller = RunService(app_context()), _caller(req)
    run = service.get(req.route_params.get("id", ""), caller)
    view = with_chain(_run_view(req, run), service.chain(run, caller))
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
    """The target as the caller may see it, and a check of the identity's access to it, at most a
    minute old (``Age``). A target none of whose rules the caller's product may use is not found."""
    from shared.api.diagnostics import diagnose

    context = app_context()
    name = validate_name(names.TARGET, req.route_params.get("target", ""), "target")
    target = context.catalog.get(name)
    caller = _caller(req)
    if not visible(target, caller.product, operator=caller.operator):
        raise TargetNotFound(f"There is no target named {name!r}. GET /api/targets lists them.")
    report, age = diagnose(context, target, caller.product, operator=caller.operator)
    return json_response(report.json_view(), headers={"Age": str(int(age.total_seconds()))})


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
    caller = _caller(req)
    target = req.params.get("target")
    if target:
        validate_name(names.TARGET, target, "target")
        if not visible(context.catalog.get(target), caller.product, operator=caller.operator):
            raise TargetNotFound(f"There is no target named {target!r}. GET /api/targets lists them.")
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
        tenant=caller.tenant,
        target=target,
        pipeline=pipeline,
        status=status,
        since=since,
        limit=limit,
        continuation=req.params.get("continuation"),
    )
    next_link = None
    if token:
        # The same filters and page size, from the validated values: the next page is the same listing.
        kept = {name: req.params[name] for name in LIST_FILTERS[:4] if req.params.get(name)}
        query = urlencode({**kept, "limit": str(limit), "continuation": token})
        next_link = f"{_base_url(req)}/runs?{query}"
    page = RunPage(value=[_run_view(req, run) for run in runs], continuation=token, nextLink=next_link)
    return json_response(page.json_view())


def list_targets(req: func.HttpRequest) -> func.HttpResponse:
    """The targets the caller may use, each with only the pipelines and pools it may use."""
    caller = _caller(req)
    targets = [
        target_view(t, caller.product, operator=caller.operator).json_view()
        for t in app_context().catalog.targets
        if visible(t, caller.product, operator=caller.operator)
    ]
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
    return run_view(run, catalog=context.catalog, settings=context.settings, base_url=_base_url(req))


def _base_url(req: func.HttpRequest) -> str:
    settings = app_context().settings
    return base_url(req, settings.public_base_url, settings.own_host)


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
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise ValidationFailed(
            f"limit must be an integer from 1 to {MAX_PAGE}.", [{"field": "limit", "message": f"1-{MAX_PAGE}"}]
        )
    return int(raw)
