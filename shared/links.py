"""Deep links to a run in ADF Studio and Synapse Studio, for callers and on-call engineers."""

from __future__ import annotations

from urllib.parse import quote

from shared.catalog import DataFactoryTarget, SynapseTarget


def studio_run_link(
    target: DataFactoryTarget | SynapseTarget, upstream_run_id: str, *, adf_studio: str, synapse_studio: str
) -> str:
    run = quote(upstream_run_id, safe="")
    if isinstance(target, DataFactoryTarget):
        return f"{adf_studio}/en/monitoring/pipelineruns/{run}?factory={quote(target.resource_id, safe='')}"
    workspace = target.resource_id
    suffix = f"?workspace={quote(workspace, safe='')}" if workspace else ""
    return f"{synapse_studio}/en/monitoring/pipelineruns/{run}{suffix}"
