"""Livy batches through azure-synapse-spark's SparkClient, unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.synapse.spark import SparkClient
from azure.synapse.spark.models import SparkBatchJobOptions

from offline.emulator import Emulator

from .conftest import SYNAPSE, RawClient


def spark(
    credential: ManagedIdentityCredential, info: dict[str, Any], pool: str, version: str = "2022-02-22-preview"
) -> SparkClient:
    endpoint = info["workspaces"][0]["endpoint"]
    return SparkClient(credential, endpoint, pool, livy_api_version=version, connection_verify=info["ca_bundle"])


@pytest.mark.parametrize("version", ["2019-11-01-preview", "2020-12-01", "2022-02-22-preview"])
def test_batch_succeeds_by_the_clock(
    credential: ManagedIdentityCredential, info: dict[str, Any], emu: Emulator, version: str
) -> None:
    client = spark(credential, info, "small", version)
    options = SparkBatchJobOptions(
        name="nightly",
        file="abfss://jobs@lake.dfs.core.windows.net/nightly.py",
        arguments=["--day", "1"],
        tags={"team": "data"},
    )
    batch = client.spark_batch.create_spark_batch_job(options, detailed=True)
    assert (batch.state, batch.result, batch.app_id) == ("not_started", "Uncertain", None)
    assert batch.livy_info.job_creation_request.arguments == ["--day", "1"] and batch.tags == {"team": "data"}
    emu.clock.advance(1.5)
    assert client.spark_batch.get_spark_batch_job(batch.id, detailed=True).state == "starting"
    emu.clock.advance(1.0)
    running = client.spark_batch.get_spark_batch_job(batch.id, detailed=True)
    assert running.state == "running" and running.app_id.startswith("application_")
    assert running.app_info["driverLogUrl"].startswith(info["workspaces"][0]["endpoint"])
    emu.clock.advance(5)
    done = client.spark_batch.get_spark_batch_job(batch.id, detailed=True)
    assert (done.state, done.result, done.errors) == ("success", "Succeeded", [])
    assert done.livy_info.success_at is not None and done.scheduler.current_state == "Ended"


def test_failing_batch_has_error_info_and_traceback(
    credential: ManagedIdentityCredential, info: dict[str, Any], emu: Emulator
) -> None:
    client = spark(credential, info, "large")
    batch = client.spark_batch.create_spark_batch_job(SparkBatchJobOptions(name="etl", file="abfss://jobs/fail_etl.py"))
    emu.clock.advance(30)
    dead = client.spark_batch.get_spark_batch_job(batch.id, detailed=True)
    assert (dead.state, dead.result) == ("dead", "Failed")
    assert dead.errors[0].source == "User" and dead.errors[0].error_code and dead.errors[0].message
    assert any(line.startswith("Traceback (most recent call last)") for line in dead.log_lines)
    assert any("fail_etl.py" in line for line in dead.log_lines)
    forced = client.spark_batch.create_spark_batch_job(
        SparkBatchJobOptions(
            name="ok", file="abfss://jobs/fail_etl.py", configuration={"spark.emulator.outcome": "Succeeded"}
        )
    )
    emu.clock.advance(30)
    assert client.spark_batch.get_spark_batch_job(forced.id, detailed=True).result == "Succeeded"


def test_cancel_kills_and_list_pages(
    credential: ManagedIdentityCredential, info: dict[str, Any], emu: Emulator
) -> None:
    client = spark(credential, info, "small")
    ids = [
        client.spark_batch.create_spark_batch_job(SparkBatchJobOptions(name=f"b{i}", file="a.py")).id for i in range(3)
    ]
    client.spark_batch.cancel_spark_batch_job(ids[0])
    killed = client.spark_batch.get_spark_batch_job(ids[0], detailed=True)
    assert (killed.state, killed.result) == ("killed", "Cancelled")
    assert killed.livy_info.terminated_at is not None and killed.scheduler.cancellation_requested_at is not None
    listed = client.spark_batch.get_spark_batch_jobs(from_parameter=0, size=50, detailed=True)
    assert listed.total >= 3 and len(listed.sessions) <= 20
    tail = client.spark_batch.get_spark_batch_jobs(from_parameter=listed.total - 2, size=2)
    assert [b.id for b in tail.sessions] == ids[1:]
    assert tail.sessions[0].result is None  # not detailed: plain Livy fields only


def test_livy_errors(raw: RawClient, info: dict[str, Any], credential: ManagedIdentityCredential) -> None:
    base = f"/synapse/{info['workspaces'][0]['name']}/livyApi/versions/2020-12-01/sparkPools"
    missing = raw("POST", f"{base}/small/batches", {"name": "x"}, auth=SYNAPSE)
    assert missing.status == 400 and missing.body["error"]["target"] == "file"
    too_big = raw(
        "POST",
        f"{base}/small/batches",
        raw_body=json.dumps({"name": "x", "file": "y", "args": ["z" * 110_000]}).encode(),
        auth=SYNAPSE,
    )
    assert too_big.status == 413
    assert raw("GET", f"{base}/nopool/batches", auth=SYNAPSE).status == 404
    assert raw("GET", f"{base}/small/batches/99999", auth=SYNAPSE).status == 404
    assert raw("GET", f"{base}/small/batches", auth="https://management.azure.com").status == 401
    with pytest.raises(ResourceNotFoundError):
        spark(credential, info, "small").spark_batch.get_spark_batch_job(424242)
    with pytest.raises(HttpResponseError):
        spark(credential, info, "nopool").spark_batch.get_spark_batch_jobs()


def test_tags_are_kept_for_get_and_list(credential: ManagedIdentityCredential, info: dict[str, Any]) -> None:
    """Livy's ``SparkBatchJob.tags`` is the caller's ``tags``, on every detailed answer."""
    client = spark(credential, info, "large", "2020-12-01")
    tags = {"gateway-run": "r-42", "product": "finance"}
    created = client.spark_batch.create_spark_batch_job(SparkBatchJobOptions(name="tagged", file="t.py", tags=tags))
    got = client.spark_batch.get_spark_batch_job(created.id, detailed=True)
    assert got.tags == tags and got.name == "tagged"
    assert "tags" not in got.livy_info.job_creation_request.as_dict()  # Livy's SparkRequest has no tags
    listed = client.spark_batch.get_spark_batch_jobs(from_parameter=0, size=20, detailed=True)
    assert {b.id: b.tags for b in listed.sessions}[created.id] == tags
    plain = client.spark_batch.get_spark_batch_job(created.id)
    assert plain.tags is None  # without detailed=true only the plain Livy fields come back
    untagged = client.spark_batch.create_spark_batch_job(SparkBatchJobOptions(name="bare", file="t.py"), detailed=True)
    assert untagged.tags is None
