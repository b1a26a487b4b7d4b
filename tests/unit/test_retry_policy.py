"""The retry policy in the catalog, what each kind retries and how, and the alerts of a retry chain."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.alerts.build import alert_id, build_alert, failure_line
from shared.alerts.model import AlertKind, read_alert
from shared.config.catalog import parse_catalog
from shared.config.retry import RetryPolicy
from shared.config.settings import Settings
from shared.errors import ConfigurationError
from shared.kinds.base import FailedActivity, FailureDetails, FailureSignature
from shared.kinds.registry import kind_named
from shared.runs.model import RetryState, Run, RunStatus

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
FACTORY = {
    "name": "sales",
    "kind": "datafactory",
    "subscriptionId": "00000000-0000-0000-0000-000000000001",
    "resourceGroup": "rg-data",
    "factoryName": "contoso-adf",
}
WORKSPACE = {"name": "lake", "kind": "synapse", "workspaceName": "contoso-syn", "endpoint": "https://x.example"}
ADF, SYNAPSE, SPARK = (kind_named(name) for name in ("datafactory", "synapse", "spark"))


def catalog(*targets: dict[str, Any]) -> Any:
    return parse_catalog(json.dumps({"targets": list(targets)}), "App setting GATEWAY_CATALOG")


def activity(name: str, failure_type: str, code: str = "2108", minute: int = 0) -> FailedActivity:
    start = NOW + timedelta(minutes=minute)
    return FailedActivity(name, "Copy", code, failure_type, f"{name} broke", start, start + timedelta(seconds=3))


def failed_run(run_id: str = "sales.8204687154850144pwgxk", **fields: Any) -> Run:
    values: dict[str, Any] = {
        "target": "sales",
        "kind": "datafactory",
        "pipeline": "load_inventory",
        "status": RunStatus.FAILED,
        "created_at": NOW - timedelta(seconds=3),
        "updated_at": NOW,
        "upstream_run_id": "9e1b6851-9f98-4a38-a144-de17e4ab33fe",
        "run_start": NOW - timedelta(seconds=3),
        "run_end": NOW,
        "duration_ms": 3000,
        "message": "Operation on target CopyInventory failed",
        **fields,
    }
    return Run(id=run_id, **values)


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (
            {"pipelines": [{"match": "copy_*", "retry": {"attempts": 3, "delaySeconds": -1}}]},
            "pipelines[0].retry.delaySeconds",
        ),
        ({"pipelines": [{"match": "copy_*", "retry": {"attempts": 3, "on": {}}}]}, "pipelines[0].retry.on"),
        ({"pipelines": [{"match": "c", "retry": {"attempts": 2, "on": {"errorCodes": [" "]}}}]}, "retry.on.errorCodes"),
        ({"retry": {"attempts": 0}}, "targets[0].retry.attempts"),
        ({"retry": {"attempts": 11}}, "targets[0].retry.attempts"),
        ({"retry": {"attempts": 2, "delaySeconds": 100, "maxDelaySeconds": 10}}, "retry.maxDelaySeconds"),
        ({"retry": {"attempts": 2, "backoff": 0.5}}, "targets[0].retry.backoff"),
        ({"retry": {"attempts": 2, "retries": 1}}, "targets[0].retry.retries"),
        ({"retry": {"delaySeconds": 5}}, "targets[0].retry.attempts"),
    ],
)
def test_a_bad_retry_policy_is_refused_naming_the_field(target: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        catalog({**FACTORY, "pipelines": ["*"], **target})
    assert field in refused.value.detail


def test_a_rule_s_policy_overrides_the_target_default_and_every_kind_s_rules_take_one() -> None:
    default = {"attempts": 2}
    own = {"attempts": 4, "delaySeconds": 5, "on": {"failureTypes": ["SystemError"]}}
    found = catalog(
        {**FACTORY, "retry": default, "pipelines": [{"match": "copy_*", "retry": own}, "daily_load"]},
        {**WORKSPACE, "sparkPools": [{"match": "small", "retry": {"attempts": 3}}]},
    )
    factory, workspace = found.get("sales"), found.get("lake")
    copy_rule, daily_rule = factory.pipelines
    assert factory.retry_for(copy_rule) == RetryPolicy(
        attempts=4, delay_seconds=5, on={"failureTypes": ["SystemError"]}
    )
    assert factory.retry_for(daily_rule) == RetryPolicy(attempts=2)
    (pool,) = SPARK.rules(workspace)
    assert workspace.retry_for(pool) == RetryPolicy(attempts=3)


def test_backoff_multiplies_the_delay_per_attempt_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=5, delay_seconds=30, backoff=3, max_delay_seconds=600)
    assert [policy.delay(attempt).total_seconds() for attempt in (1, 2, 3, 4)] == [30, 90, 270, 600]
    assert RetryPolicy(attempts=3, delay_seconds=10, backoff=1).delay(3) == timedelta(seconds=10)


def test_on_matches_failure_types_or_error_codes_case_insensitively_and_every_failure_must_match() -> None:
    policy = RetryPolicy(attempts=3, on={"failureTypes": ["SystemError"], "errorCodes": ["2200"]})
    system = FailureDetails(activities=[activity("CopySales", "systemerror")])
    user_but_listed_code = FailureDetails(activities=[activity("CopySales", "UserError", "2200")])
    mixed = FailureDetails(activities=[activity("A", "SystemError"), activity("B", "UserError", "2011")])
    assert ADF.retryable(system, policy) and ADF.retryable(user_but_listed_code, policy)
    assert not ADF.retryable(mixed, policy)
    assert not ADF.retryable(FailureDetails(), policy), "a failure that says nothing is not known to be transient"
    assert ADF.retryable(FailureDetails(), RetryPolicy(attempts=2)), "without 'on' any failure is retried"


def test_a_spark_batch_is_matched_by_livy_s_error_source_and_code() -> None:
    dead = FailureDetails(
        errors=["Job failed"], causes=[FailureSignature("User", "Spark_Ambiguous_NonJvmUserApp_ExitWithStatus1")]
    )
    assert SPARK.failure_signatures(dead) == [FailureSignature("User", "Spark_Ambiguous_NonJvmUserApp_ExitWithStatus1")]
    assert not SPARK.retryable(dead, RetryPolicy(attempts=2, on={"failureTypes": ["System"]}))
    assert SPARK.retryable(
        dead, RetryPolicy(attempts=2, on={"errorCodes": ["spark_ambiguous_nonjvmuserapp_exitwithstatus1"]})
    )


def test_each_kind_reruns_from_the_failure_where_it_can() -> None:
    run = failed_run()
    details = FailureDetails(
        activities=[activity("LoadFacts", "SystemError", minute=2), activity("LoadDims", "SystemError")]
    )
    assert ADF.retry_request(run, details).model_dump(exclude_none=True) == {"startFromFailure": True}
    assert SYNAPSE.retry_request(run, details).model_dump(exclude_none=True) == {"startActivityName": "LoadDims"}
    assert SYNAPSE.retry_request(run, FailureDetails()).model_dump(exclude_none=True) == {}
    assert SPARK.retry_request(run, details).model_dump(exclude_none=True) == {}, "the base: the same request whole"


def test_the_last_failure_of_a_chain_is_one_alert_under_the_first_run_listing_every_attempt() -> None:
    root = "sales.8204687154850144pwgxk"
    first = failed_run(
        root, max_attempts=3, retry_state=RetryState.RETRIED, failure="CopyInventory (SystemError 2108): timed out"
    )
    second = failed_run(
        "sales.8204687154000000aaaaa",
        attempt=2,
        max_attempts=3,
        retry_root=root,
        rerun_of=root,
        retry_state=RetryState.RETRIED,
        failure="CopyInventory (SystemError 2108): timed out again",
    )
    last = failed_run("sales.8204687153000000bbbbb", attempt=3, max_attempts=3, retry_root=root, rerun_of=second.id)
    details = FailureDetails(activities=[activity("CopyInventory", "SystemError")])

    alert = build_alert(
        last,
        AlertKind.FAILED,
        kind=ADF,
        target=catalog({**FACTORY, "pipelines": ["*"]}).get("sales"),
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
        earlier_attempts=[first, second],
    )

    assert alert.alertId == f"{root}:failed" == alert_id(first, AlertKind.FAILED)
    assert alert.summary.startswith(
        "ADF sales/load_inventory run 9e1b6851… failed 3 times, last at activity CopyInventory on "
    )
    assert (alert.attempt, alert.maxAttempts, alert.nextRetryAt) == (3, 3, None)
    assert [(a.attempt, a.runId, a.failure) for a in alert.attempts or []] == [
        (1, root, first.failure),
        (2, second.id, second.failure),
        (3, last.id, "CopyInventory (SystemError 2108): CopyInventory broke"),
    ]
    message = alert.queue_message()
    assert read_alert(message) == alert
    assert alert_id(last, AlertKind.OVERDUE) == f"{last.id}:overdue", "only failures are the chain's"


def test_an_alert_of_a_run_without_a_policy_carries_no_retry_fields() -> None:
    alert = build_alert(
        failed_run(),
        AlertKind.FAILED,
        kind=ADF,
        target=catalog({**FACTORY, "pipelines": ["*"]}).get("sales"),
        details=None,
        history=[],
        settings=Settings({}),
        now=NOW,
    )
    assert not {"attempt", "maxAttempts", "attempts", "nextRetryAt"} & set(alert.queue_message())


def test_the_retrying_notice_and_a_cancelled_retry_say_so_in_their_first_line() -> None:
    target = catalog({**FACTORY, "pipelines": ["*"]}).get("sales")
    details = FailureDetails(activities=[activity("CopyInventory", "SystemError")])
    scheduled = failed_run(max_attempts=3, retry_state=RetryState.SCHEDULED, next_retry_at=NOW + timedelta(minutes=1))
    notice = build_alert(
        scheduled,
        AlertKind.RETRYING,
        kind=ADF,
        target=target,
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
    )
    assert "failed at activity CopyInventory" in notice.summary
    assert "(attempt 1 of 3); retrying at 05:07:07 UTC: CopyInventory broke" in notice.summary
    assert notice.nextRetryAt == "2031-03-04T05:07:07Z" and notice.alertId.endswith(":retrying")

    cancelled = failed_run(max_attempts=3, retry_state=RetryState.CANCELLED, cancel_requested_by="cli:ana")
    alert = build_alert(
        cancelled,
        AlertKind.FAILED,
        kind=ADF,
        target=target,
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
    )
    assert "failed (its retry was cancelled by cli:ana) at activity CopyInventory" in alert.summary


def test_an_attempt_s_failure_is_one_short_line() -> None:
    run = failed_run()
    spark = FailureDetails(errors=["Job   failed\nbadly"], causes=[FailureSignature("User", "Spark_X")])
    assert failure_line(spark, run) == "(User Spark_X): Job failed badly"
    assert failure_line(None, run) == "Operation on target CopyInventory failed"
    long = FailureDetails(activities=[FailedActivity("A", "Copy", "1", "SystemError", "x" * 1000, None, None)])
    assert len(failure_line(long, run)) == 300 and failure_line(long, run).endswith("…")


def test_the_retry_state_survives_the_registry_s_table_entity() -> None:
    """A restart reads back what was scheduled: the retry fields round-trip through the entity."""
    from shared.runs.registry import _from_entity, _to_entity

    run = failed_run(
        attempt=2,
        max_attempts=3,
        retry_root="sales.8204687154850999aaaaa",
        retry_state=RetryState.SCHEDULED,
        next_retry_at=NOW,
        retry_options={"startFromFailure": True},
        failure="X (SystemError 1): y",
    )
    back = _from_entity(_to_entity(run, "live-"))
    assert back == replace(run, row_key="live-8204687154850144pwgxk")
