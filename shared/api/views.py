"""How runs and targets look to callers (JSON, camelCase) — one place, shared by API and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.config.catalog import AccessRule, DataFactoryTarget, SynapseTarget
from shared.config.settings import Settings
from shared.kinds.links import studio_run_link
from shared.runs.model import Run


def iso_time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def run_view(
    run: Run, *, base_url: str, target: DataFactoryTarget | SynapseTarget | None, settings: Settings
) -> dict[str, Any]:
    links: dict[str, str] = {"self": f"{base_url}/runs/{run.id}"}
    if target is not None and run.upstream_run_id and run.kind != "spark":
        links["studio"] = studio_run_link(
            target, run.upstream_run_id, adf_studio=settings.adf_studio_url, synapse_studio=settings.synapse_studio_url
        )
    view: dict[str, Any] = {
        "id": run.id,
        "target": run.target,
        "kind": run.kind,
        "pipeline": run.pipeline,
        "status": run.status,
        "upstreamStatus": run.upstream_status,
        "upstreamRunId": run.upstream_run_id,
        "message": run.message,
        "parameters": run.parameters,
        "options": run.options,
        "createdAt": iso_time(run.created_at),
        "updatedAt": iso_time(run.updated_at),
        "runStart": iso_time(run.run_start),
        "runEnd": iso_time(run.run_end),
        "durationMs": run.duration_ms,
        "appId": run.app_id,
        "cancelRequestedAt": iso_time(run.cancel_requested_at),
        "rerunOf": run.rerun_of,
        "rerunBy": run.rerun_by,
        "correlationId": run.correlation_id,
        "links": links,
    }
    if run.spark_pool:
        view["sparkPool"] = run.spark_pool
    return view


def chain_view(chain: list[Run]) -> list[dict[str, Any]]:
    return [{"id": r.id, "status": r.status, "createdAt": iso_time(r.created_at)} for r in chain]


def _rules(rules: tuple[AccessRule, ...], product: str | None) -> list[dict[str, Any]]:
    return [
        {"match": rule.match, "maxDurationMinutes": rule.max_duration_minutes}
        for rule in rules
        if rule.allows_product(product)
    ]


def target_view(target: DataFactoryTarget | SynapseTarget, product: str | None) -> dict[str, Any]:
    """A target as a caller may see it: only what its product may start; no subscription ids."""
    view: dict[str, Any] = {"name": target.name, "kind": target.kind, "pipelines": _rules(target.pipelines, product)}
    if isinstance(target, DataFactoryTarget):
        view["factoryName"] = target.factory_name
    else:
        view["workspaceName"] = target.workspace_name
        view["sparkPools"] = _rules(target.spark_pools, product)
    return view
