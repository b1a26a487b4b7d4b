"""Spark guardrails through the HTTP handler: a definition the pool's rules refuse is a 422 problem that
names the field and the rule, and nothing reaches Livy or the registry; a rerun is checked against the
pool's rules as the catalog has them now, not as they were at the first start."""

from __future__ import annotations

from typing import Any

from offline.stack import OfflineStack, catalog_for
from shared.context import AppContext
from shared.poller.poller import Poller
from shared.runs.model import RunStatus
from tests.conftest import body_of, install
from tests.integration.test_spark_cancel_rerun import BATCH, FINISH, get, post, submit
from tests.integration.test_start_runs import problem

APPROVED = "abfss://jobs@lake.dfs.core.windows.net/approved/"

# The issue's definitions, each accepted with a 202 before the guardrails: the field and words of the refusal.
ATTACKS: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    ({"file": "https://attacker.example/job.py"}, "file", ("outside the default allowed locations",)),
    ({"jars": ["https://attacker.example/x.jar"]}, "jars[0]", ("https://attacker.example/x.jar", "outside")),
    (
        {"conf": {"spark.driver.extraJavaOptions": "-javaagent:/tmp/a.jar"}},
        "conf.spark.driver.extraJavaOptions",
        ("JVM",),
    ),
    (
        {"conf": {"spark.hadoop.fs.azure.account.key.lake.dfs.core.windows.net": "c2VjcmV0"}},
        "conf.spark.hadoop.fs.azure.account.key.lake.dfs.core.windows.net",
        ("account key",),
    ),
    ({"driverMemory": "999999g"}, "driverMemory", ("default cap of 56g", "maxMemory")),
    (
        {"conf": {"spark.executor.instances": "100000"}},
        "conf.spark.executor.instances",
        ("default cap of 10", "maxExecutors"),
    ),
]


def created(stack: OfflineStack) -> list[tuple[Any, Any]]:
    """What Azure has been asked to run: pipeline runs and Spark batches, by pool and id."""
    return [(run.get("pool"), run.get("batchId", run.get("runId"))) for run in stack.emulator.runs()]


def with_pools(stack: OfflineStack, *pools: Any) -> dict[str, Any]:
    """The stack's catalog with the workspace's Spark pools replaced."""
    catalog = catalog_for(stack.emulator.info)
    (workspace,) = [target for target in catalog["targets"] if target["kind"] == "synapse"]
    workspace["sparkPools"] = list(pools)
    return catalog


def refused(response: Any, field: str, *words: str) -> dict[str, Any]:
    document = problem(response, 422, "validation")
    messages = {error["field"]: error["message"] for error in document["errors"]}
    assert field in messages, document
    assert all(word in messages[field] for word in words), messages[field]
    assert f"{field}: {messages[field]}" in document["detail"], document["detail"]
    return document


def test_the_issues_definitions_are_refused_before_anything_reaches_livy(
    context: AppContext, stack: OfflineStack, synapse: str
) -> None:
    before = created(stack)
    for fields, field, words in ATTACKS:
        refused(submit(synapse, "small", {**BATCH, **fields}), field, *words)
    assert created(stack) == before
    assert context.registry.list_runs(target=synapse)[0] == []
    assert submit(synapse, "small", BATCH).status_code == 202  # the ordinary batch passes the defaults


def test_a_pools_rules_in_the_catalog_govern_its_batches(
    stack: OfflineStack, names: dict[str, str], context: AppContext, synapse: str
) -> None:
    strict = {
        "match": "small",
        "allowedLocations": [APPROVED],
        "allowedConf": ["spark.sql.*"],
        "maxExecutors": 2,
        "maxCores": 4,
        "maxMemory": "8g",
    }
    install(stack, names, with_pools(stack, strict, "large"))
    approved = {
        **BATCH,
        "file": f"{APPROVED}aggregate.py",
        "conf": {"spark.sql.shuffle.partitions": "64"},
        "executorMemory": "8g",
    }
    accepted = submit(synapse, "small", approved)
    assert accepted.status_code == 202, accepted.get_body()
    before = created(stack)
    document = refused(
        submit(synapse, "small", {**approved, "jars": [f"{APPROVED}lib.jar", "https://attacker.example/x.jar"]}),
        "jars[1]",
    )
    assert document["errors"] == [
        {
            "field": "jars[1]",
            "message": f"https://attacker.example/x.jar is outside the pool's allowed locations ({APPROVED})",
        }
    ]
    assert "Spark rules of pool 'small'" in document["detail"]
    refused(submit(synapse, "small", BATCH), "file", "outside the pool's allowed locations")
    refused(
        submit(synapse, "small", {**approved, "conf": {"spark.dynamicAllocation.enabled": "false"}}),
        "conf.spark.dynamicAllocation.enabled",
        "not among the pool's allowed conf keys (spark.sql.*)",
    )
    refused(
        submit(synapse, "small", {**approved, "conf": {"spark.sql.x": "1"}, "numExecutors": 3}),
        "numExecutors",
        "pool's cap of 2 (maxExecutors)",
    )
    assert created(stack) == before
    # Another pool without guardrails of its own keeps the defaults.
    assert submit(synapse, "large", BATCH).status_code == 202
    refused(submit(synapse, "large", {**BATCH, "numExecutors": 11}), "numExecutors", "default cap of 10")


def test_a_rerun_is_checked_against_the_pools_rules_as_they_are_now(
    stack: OfflineStack, names: dict[str, str], context: AppContext, synapse: str
) -> None:
    first = body_of(submit(synapse, "small", {**BATCH, "name": "grown", "numExecutors": 8}))
    stack.emulator.clock.advance(FINISH)
    Poller(context).tick()
    assert get(first["id"])["status"] == RunStatus.SUCCEEDED

    install(stack, names, with_pools(stack, {"match": "small", "maxExecutors": 4}))  # the same table
    before = created(stack)
    document = refused(post("rerun", first["id"]), "numExecutors", "8 executors", "pool's cap of 4 (maxExecutors)")
    assert document["errors"] == [
        {"field": "numExecutors", "message": "8 executors is over the pool's cap of 4 (maxExecutors)"}
    ]
    assert created(stack) == before
    assert get(first["id"]).get("rerunBy") is None

    install(stack, names, with_pools(stack, {"match": "small", "maxExecutors": 8}))
    rerun = body_of(post("rerun", first["id"]))
    assert rerun["rerunOf"] == first["id"] and rerun["parameters"] == first["parameters"]
