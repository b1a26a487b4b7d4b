"""Spark guardrails per pool: where code comes from, which conf keys are set, and caps no conf key lifts.

Every case of the issue ("file/jars at https://attacker.example/..., spark.driver.extraJavaOptions, an
account key in conf, driverMemory 999999g, spark.executor.instances=100000: all 202") is refused here,
with the field and the rule it breaks; ordinary definitions still pass the defaults.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.api.requests import SparkBatchRequest
from shared.config.catalog import parse_catalog
from shared.errors import ConfigurationError, ValidationFailed
from shared.kinds.spark_rules import DEFAULT_REFUSED_CONF, SparkPoolRule
from shared.kinds.synapse import SynapseTarget

LAKE = "abfss://jobs@lake.dfs.core.windows.net"
APPROVED = f"{LAKE}/approved/"
OK = {"name": "nightly", "file": f"{LAKE}/aggregate.py"}
DEFAULT = SparkPoolRule(match="small")


def batch(**fields: Any) -> SparkBatchRequest:
    return SparkBatchRequest.model_validate({**OK, **fields})


def refusal(rule: SparkPoolRule, **fields: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        rule.check_batch("small", batch(**fields))
    assert caught.value.status == 422
    assert caught.value.detail.startswith("The batch breaks the Spark rules of pool 'small': ")
    return caught.value


def refused(rule: SparkPoolRule, field: str, *words: str, **fields: Any) -> str:
    """The message for ``field``; the detail names the first field, and each word is in the message."""
    error = refusal(rule, **fields)
    messages = {e["field"]: e["message"] for e in error.errors}
    assert field in messages, error.errors
    assert all(word in messages[field] for word in words), messages[field]
    assert f"{error.errors[0]['field']}: {error.errors[0]['message']}" in error.detail
    return messages[field]


# --- The issue's cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"file": "https://attacker.example/job.py"}, "file", ("default allowed locations", "Azure Storage")),
        ({"jars": [f"{LAKE}/ok.jar", "https://attacker.example/x.jar"]}, "jars[1]", ("https://attacker.example",)),
        ({"pyFiles": ["https://attacker.example/x.py"]}, "pyFiles[0]", ("outside",)),
        ({"files": ["http://lake.blob.core.windows.net/c/x"]}, "files[0]", ("outside",)),
        ({"archives": ["https://attacker.example/env.zip#env"]}, "archives[0]", ("outside",)),
        ({"conf": {"spark.driver.extraJavaOptions": "-javaagent:/x"}}, "conf.spark.driver.extraJavaOptions", ("JVM",)),
        (
            {"conf": {"fs.azure.account.key.lake.dfs.core.windows.net": "k=="}},
            "conf.fs.azure.account.key.lake.dfs.core.windows.net",
            ("account key",),
        ),
        (
            {"conf": {"spark.hadoop.fs.azure.account.key.lake.blob.core.windows.net": "k"}},
            "conf.spark.hadoop.fs.azure.account.key.lake.blob.core.windows.net",
            ("account key",),
        ),
        ({"driverMemory": "999999g"}, "driverMemory", ("999999g", "default cap of 56g", "maxMemory")),
        (
            {"conf": {"spark.executor.instances": "100000"}},
            "conf.spark.executor.instances",
            ("100000 executors", "default cap of 10", "maxExecutors"),
        ),
    ],
)
def test_each_case_of_the_issue_is_refused_naming_field_and_rule(
    fields: dict[str, Any], field: str, words: tuple[str, ...]
) -> None:
    refused(DEFAULT, field, *words, **fields)


def test_every_problem_is_listed_and_the_detail_counts_the_rest() -> None:
    error = refusal(
        DEFAULT,
        file="https://attacker.example/job.py",
        conf={"spark.driver.extraJavaOptions": "-x", "spark.executor.instances": "100000"},
        driverMemory="999999g",
    )
    assert {e["field"] for e in error.errors} == {
        "file",
        "conf.spark.driver.extraJavaOptions",
        "conf.spark.executor.instances",
        "driverMemory",
    }
    assert error.detail.startswith("The batch breaks the Spark rules of pool 'small': file: ")
    assert error.detail.endswith("(and 3 more, listed in errors)")


# --- Legitimate definitions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {  # the integration tests' batch
            "args": ["--day", "2026-11-21"],
            "conf": {"spark.dynamicAllocation.enabled": "false"},
            "driverMemory": "4g",
            "driverCores": 4,
            "executorMemory": "8g",
            "executorCores": 4,
            "numExecutors": 2,
            "tags": {"team": "finance"},
        },
        {  # the demo's batch
            "file": "abfss://jobs@contosolake.dfs.core.windows.net/spark/fail_aggregate_sales.py",
            "driverMemory": "4g",
            "executorMemory": "8g",
            "numExecutors": 2,
        },
        {  # a JVM job with its dependencies in storage, Delta configured
            "file": "wasbs://jobs@lake.blob.core.windows.net/etl.jar",
            "className": "com.contoso.Etl",
            "jars": ["abfs://libs@lake.dfs.core.windows.net/delta-core.jar"],
            "pyFiles": ["https://lake.blob.core.windows.net/libs/helpers.zip"],
            "files": ["https://lake.dfs.core.windows.net/jobs/settings.json"],
            "archives": [f"{LAKE}/envs/py311.tar.gz#environment"],
            "conf": {
                "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
                "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
                "spark.sql.shuffle.partitions": "200",
                "spark.dynamicAllocation.enabled": "true",
                "spark.dynamicAllocation.minExecutors": "1",
                "spark.dynamicAllocation.maxExecutors": "10",
                "spark.executor.memory": "48g",
                "spark.executor.memoryOverhead": "8g",
                "spark.executor.cores": "8",
            },
        },
        {"file": "abfss://jobs@gov1.dfs.core.usgovcloudapi.net/job.py"},
        {"executorMemory": "56g", "driverMemory": "57344m", "driverCores": 8, "executorCores": 8, "numExecutors": 10},
    ],
)
def test_legitimate_definitions_pass_the_defaults(fields: dict[str, Any]) -> None:
    DEFAULT.check_batch("small", batch(**fields))


# --- Locations -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "https://attacker.example/job.py",
        "http://lake.blob.core.windows.net/jobs/job.py",  # no TLS
        "wasb://jobs@lake.blob.core.windows.net/job.py",  # no TLS
        "https://lake.blob.core.windows.net@attacker.example/job.py",
        "https://jobs@lake.blob.core.windows.net/job.py",
        "abfss://jobs@attacker.example/job.py",  # ABFS would send the workspace's token there
        "abfss://jobs@lake/job.py",
        "abfss://lake.dfs.core.windows.net/job.py",  # no container
        "abfss://jobs@lake.dfs.core.windows.net:8443/job.py",
        "abfss://jobs@LAKE.dfs.core.windows.net/job.py",
        "abfss://jobs@lake.dfs.core.windows.net.attacker.example/job.py",
        "abfss://jobs@lake.dfs.core.windows.net/",
        "ABFSS://jobs@lake.dfs.core.windows.net/job.py",
        "hdfs://namenode/job.py",
        "file:///tmp/job.py",
        "local:///opt/job.py",
        "/jobs/job.py",
        "job.py",
    ],
)
def test_the_default_locations_are_azure_storage_over_tls(location: str) -> None:
    refused(DEFAULT, "file", "outside the default allowed locations", file=location)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        (f"{LAKE}/approved/../private/job.py", ("'..' segment",)),
        (f"{LAKE}/approved/./job.py", ("'..' segment",)),
        (f"{LAKE}/approved/%2e%2e/private/job.py", ("percent-encoding",)),
        (f"{LAKE}/approved\\..\\private/job.py", ("backslashes",)),
        (f"{LAKE}/approved/job.py\nspark.jars=x", ("control characters",)),
        (f"{LAKE}/approved/my job.py", ("spaces",)),
        ("https://lake.blob.core.windows.net/jobs/job.py?sv=2024&sig=abc", ("query", "SAS")),
        ("https://[lake.blob.core.windows.net/job.py", ("not a URI",)),
        (f"{LAKE}/approved/env.tar.gz#../../etc", ("link name",)),
        ("https://attacker.example#@lake.blob.core.windows.net/job.py", ("link name",)),
    ],
)
def test_locations_that_could_escape_a_folder_are_refused_whatever_the_rule(
    location: str, words: tuple[str, ...]
) -> None:
    refused(DEFAULT, "file", *words, file=location)
    refused(SparkPoolRule(match="small", allowed_locations=[APPROVED]), "file", *words, file=location)


def test_a_pools_locations_replace_the_default() -> None:
    rule = SparkPoolRule(match="small", allowed_locations=[APPROVED, "https://artifacts.contoso.example/spark/"])
    rule.check_batch(
        "small",
        batch(
            file=f"{APPROVED}job.py",
            jars=["https://artifacts.contoso.example/spark/lib.jar"],
            archives=[f"{APPROVED}env.tar.gz#env"],
        ),
    )
    message = refused(
        rule, "jars[1]", file=f"{APPROVED}job.py", jars=[f"{APPROVED}a.jar", "https://attacker.example/x.jar"]
    )
    assert message == (
        "https://attacker.example/x.jar is outside the pool's allowed locations "
        f"({APPROVED}, https://artifacts.contoso.example/spark/)"
    )
    refused(rule, "file", "outside the pool's", file=f"{LAKE}/aggregate.py")  # Azure Storage, not approved
    refused(rule, "file", "outside the pool's", file=f"{LAKE}/approved-evil/job.py")  # a sibling folder


# --- Conf keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("spark.driver.extraJavaOptions", "JVM options"),
        ("spark.executor.extraJavaOptions", "JVM options"),
        ("spark.yarn.am.extraJavaOptions", "JVM options"),
        ("spark.driver.defaultJavaOptions", "JVM options"),
        ("Spark.Driver.ExtraJavaOptions", "JVM options"),
        ("spark.driver.extraClassPath", "class path"),
        ("spark.executor.extraClassPath", "class path"),
        ("spark.executor.extraLibraryPath", "library path"),
        ("spark.jars", "jars"),
        ("spark.yarn.jars", "Spark's own jars"),
        ("spark.sql.hive.metastore.jars.path", "jars"),
        ("spark.jars.packages", "packages"),
        ("spark.jars.repositories", "repositories"),
        ("spark.jars.ivy", "packages"),
        ("spark.jars.ivySettings", "packages"),
        ("spark.files", "files"),
        ("spark.submit.pyFiles", "Python files"),
        ("spark.archives", "archives"),
        ("spark.yarn.dist.jars", "jars"),
        ("spark.yarn.dist.files", "files"),
        ("spark.pyspark.python", "program"),
        ("spark.executor.resource.gpu.discoveryScript", "script"),
        ("fs.azure.account.key.lake.dfs.core.windows.net", "account key"),
        ("spark.hadoop.fs.azure.account.oauth2.client.secret", "credentials"),
        ("spark.hadoop.fs.azure.account.auth.type", "signed in"),
        ("spark.hadoop.fs.azure.sas.jobs.lake.blob.core.windows.net", "SAS"),
        ("spark.hadoop.fs.azure.sas.fixed.token", "SAS"),
        ("spark.synapse.diagnostic.emitter.hub.secret", "secret"),
        ("spark.ssl.keyStorePassword", "password"),
        ("spark.kerberos.keytab", "Kerberos"),
        ("spark.executorEnv.PYTHONPATH", "environment variables"),
        ("spark.yarn.appMasterEnv.JAVA_HOME", "environment variables"),
        ("spark.kubernetes.driverEnv.LD_PRELOAD", "environment variables"),
    ],
)
def test_the_default_refuses_conf_that_runs_code_or_carries_credentials(key: str, why: str) -> None:
    refused(DEFAULT, f"conf.{key}", why, "default conf rule", conf={key: "x"})


def test_conf_keys_and_values_cannot_smuggle_another_key() -> None:
    refused(DEFAULT, "conf.spark.app.name=x", "letters, digits", conf={"spark.app.name=x": "y"})
    refused(DEFAULT, "conf.spark.app.name", "one line", conf={"spark.app.name": "x\nspark.jars=https://a.example/x"})


def test_a_pools_conf_globs_replace_the_default_and_name_refused_keys_exactly() -> None:
    rule = SparkPoolRule(
        match="small", allowed_conf=["spark.sql.*", "spark.executor.*", "spark.driver.extraJavaOptions"]
    )
    rule.check_batch("small", batch(conf={"spark.sql.shuffle.partitions": "64", "spark.executor.cores": "4"}))
    rule.check_batch("small", batch(conf={"spark.driver.extraJavaOptions": "-XX:+UseG1GC"}))  # named exactly
    message = refused(rule, "conf.spark.executor.extraJavaOptions", conf={"spark.executor.extraJavaOptions": "-x"})
    assert "not among the pool's allowed conf keys" in message and "must name it exactly" in message
    refused(
        rule,
        "conf.spark.network.timeout",
        "not among the pool's allowed conf keys",
        conf={"spark.network.timeout": "1"},
    )
    refused(SparkPoolRule(match="small", allowed_conf=[]), "conf.spark.sql.x", "not among", conf={"spark.sql.x": "1"})


# --- Caps: no conf key lifts them -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"numExecutors": 11}, "numExecutors", ("11 executors", "maxExecutors")),
        ({"conf": {"spark.executor.instances": "11"}}, "conf.spark.executor.instances", ("maxExecutors",)),
        (
            {"conf": {"spark.dynamicAllocation.maxExecutors": "500"}},
            "conf.spark.dynamicAllocation.maxExecutors",
            ("maxExecutors",),
        ),
        (
            {"conf": {"spark.dynamicAllocation.initialExecutors": "50"}},
            "conf.spark.dynamicAllocation.initialExecutors",
            ("maxExecutors",),
        ),
        (
            {"conf": {"spark.dynamicAllocation.minExecutors": "50"}},
            "conf.spark.dynamicAllocation.minExecutors",
            ("maxExecutors",),
        ),
        (
            {"conf": {"spark.dynamicAllocation.enabled": "true"}},
            "conf.spark.dynamicAllocation.enabled",
            ("spark.dynamicAllocation.maxExecutors",),
        ),
        (
            {"conf": {"spark.dynamicAllocation.enabled": " TRUE ", "spark.dynamicallocation.maxexecutors": "2"}},
            "conf.spark.dynamicAllocation.enabled",
            ("grows",),
        ),
        ({"conf": {"spark.Executor.Instances": "100000"}}, "conf.spark.Executor.Instances", ("maxExecutors",)),
        ({"conf": {"spark.executor.instances": "lots"}}, "conf.spark.executor.instances", ("whole number",)),
        ({"executorCores": 16}, "executorCores", ("16 cores", "default cap of 8", "maxCores")),
        ({"driverCores": 9}, "driverCores", ("maxCores",)),
        ({"conf": {"spark.executor.cores": "64"}}, "conf.spark.executor.cores", ("maxCores",)),
        ({"conf": {"spark.driver.cores": "32"}}, "conf.spark.driver.cores", ("maxCores",)),
        ({"executorMemory": "57g"}, "executorMemory", ("maxMemory",)),
        ({"conf": {"spark.executor.memory": "1t"}}, "conf.spark.executor.memory", ("maxMemory",)),
        ({"conf": {"spark.driver.memory": "102400"}}, "conf.spark.driver.memory", ("maxMemory",)),  # MiB
        ({"conf": {"spark.driver.memory": "4.5g"}}, "conf.spark.driver.memory", ("not a size",)),
        ({"conf": {"spark.executor.memoryOverhead": "200g"}}, "conf.spark.executor.memoryOverhead", ("maxMemory",)),
        (
            {"executorMemory": "50g", "conf": {"spark.executor.memoryOverhead": "8g"}},
            "conf.spark.executor.memoryOverhead",
            ("58g", "maxMemory"),
        ),
        (
            {
                "executorMemory": "40g",
                "conf": {"spark.executor.pyspark.memory": "10g", "spark.memory.offHeap.size": "10737418240"},
            },
            "conf.spark.executor.pyspark.memory",
            ("60g",),
        ),
        (
            {"driverMemory": "8g", "conf": {"spark.driver.memoryOverheadFactor": "10"}},
            "conf.spark.driver.memoryOverheadFactor",
            ("88g",),
        ),
        (
            {"conf": {"spark.executor.memoryOverheadFactor": "10"}},
            "conf.spark.executor.memoryOverheadFactor",
            ("set executorMemory",),
        ),
    ],
)
def test_conf_cannot_bypass_a_cap(fields: dict[str, Any], field: str, words: tuple[str, ...]) -> None:
    refused(DEFAULT, field, *words, **fields)


def test_a_pools_caps_replace_the_default_for_the_parts_they_set() -> None:
    bigger = SparkPoolRule(match="large", max_executors=50, max_cores=16, max_memory="112g")
    bigger.check_batch(
        "small",
        batch(numExecutors=40, executorCores=16, executorMemory="100g", conf={"spark.executor.instances": "50"}),
    )
    refused(bigger, "conf.spark.executor.instances", "pool's cap of 50", conf={"spark.executor.instances": "51"})
    refused(bigger, "driverMemory", "pool's cap of 112g", driverMemory="113g")
    # The parts the rule leaves out keep the default.
    refused(bigger, "file", "default allowed locations", file="https://attacker.example/job.py")
    refused(
        bigger, "conf.spark.driver.extraJavaOptions", "default conf rule", conf={"spark.driver.extraJavaOptions": "-x"}
    )
    smaller = SparkPoolRule(match="small", max_executors=2, max_memory="512m")
    refused(
        smaller,
        "conf.spark.dynamicAllocation.maxExecutors",
        "pool's cap of 2",
        conf={"spark.dynamicAllocation.maxExecutors": "3"},
    )
    refused(smaller, "executorMemory", "pool's cap of 512m", executorMemory="1g")
    refused(smaller, "executorCores", "default cap of 8", executorCores=9)


# --- The catalog ---------------------------------------------------------------------------------------


def workspace(*pools: Any) -> str:
    target = {
        "name": "lake",
        "kind": "synapse",
        "workspaceName": "contoso-syn",
        "endpoint": "https://contoso-syn.dev.azuresynapse.net",
        "sparkPools": list(pools),
    }
    return json.dumps({"targets": [target]})


def test_the_catalog_reads_pool_rules_in_camel_case() -> None:
    spec = {
        "match": "small",
        "products": ["analytics"],
        "allowedLocations": [APPROVED],
        "allowedConf": ["spark.sql.*"],
        "maxExecutors": 4,
        "maxCores": 4,
        "maxMemory": "28g",
    }
    (target,) = parse_catalog(workspace("tiny", spec), "test").targets
    assert isinstance(target, SynapseTarget)
    tiny, small = target.spark_pools
    assert tiny == SparkPoolRule(match="tiny")
    assert small.allowed_locations == (APPROVED,) and small.allowed_conf == ("spark.sql.*",)
    assert (small.max_executors, small.max_cores, small.max_memory) == (4, 4, "28g")


@pytest.mark.parametrize(
    ("pool", "field"),
    [
        ({"allowedLocations": ["https://attacker.example/x.jar"]}, "targets[0].sparkPools[1].allowedLocations[0]"),
        ({"allowedLocations": [APPROVED, f"{LAKE}/approved"]}, "targets[0].sparkPools[1].allowedLocations[1]"),
        ({"allowedLocations": [f"{LAKE}/approved/../"]}, "targets[0].sparkPools[1].allowedLocations[0]"),
        ({"allowedLocations": ["jobs/approved/"]}, "targets[0].sparkPools[1].allowedLocations[0]"),
        ({"allowedLocations": []}, "targets[0].sparkPools[1].allowedLocations"),
        ({"allowedLocations": [APPROVED, APPROVED]}, "targets[0].sparkPools[1].allowedLocations"),
        ({"allowedConf": ["spark.sql.*", ""]}, "targets[0].sparkPools[1].allowedConf[1]"),
        ({"maxExecutors": 0}, "targets[0].sparkPools[1].maxExecutors"),
        ({"maxCores": -1}, "targets[0].sparkPools[1].maxCores"),
        ({"maxMemory": "lots"}, "targets[0].sparkPools[1].maxMemory"),
        ({"maxMemory": "28gb"}, "targets[0].sparkPools[1].maxMemory"),
        ({"maxExecutor": 4}, "targets[0].sparkPools[1].maxExecutor"),
    ],
)
def test_catalog_errors_name_the_pool_rule_field(pool: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_catalog(workspace("tiny", {"match": "small", **pool}), "App setting GATEWAY_CATALOG")
    assert f"{field}:" in caught.value.detail, caught.value.detail


def test_the_default_refusals_are_lower_case_globs() -> None:
    """Keys are compared lower-cased, so a glob with a capital would never match."""
    assert all(glob == glob.lower() for glob, _ in DEFAULT_REFUSED_CONF)
