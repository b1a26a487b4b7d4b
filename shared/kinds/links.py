"""Deep links to a run in ADF Studio and Synapse Studio, for callers and on-call engineers."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from shared.config.catalog import DataFactoryTarget, SynapseTarget


def studio_run_link(
    target: DataFactoryTarget | SynapseTarget, upstream_run_id: str, *, adf_studio: str, synapse_studio: str
) -> str:
    run = quote(upstream_run_id, safe="")
    if isinstance(target, DataFactoryTarget):
        return f"{adf_studio}/en/monitoring/pipelineruns/{run}?factory={quote(target.resource_id, safe='')}"
    workspace = target.resource_id
    suffix = f"?workspace={quote(workspace, safe='')}" if workspace else ""
    return f"{synapse_studio}/en/monitoring/pipelineruns/{run}{suffix}"


def studio_spark_link(
    target: SynapseTarget, app_id: str, pool: str, batch_id: str | None, *, synapse_studio: str
) -> str:
    """The Spark application's page in Synapse Studio's monitoring hub."""
    query = {"sparkPoolName": pool}
    if target.resource_id:
        query["workspace"] = target.resource_id
    if batch_id:
        query["livyId"] = batch_id
    return f"{synapse_studio}/en/monitoring/sparkapplication/{quote(app_id, safe='')}?{urlencode(query)}"
