"""Forwarded alerts as Teams, Slack and signed JSON receivers get them: summary, facts, why, link."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts.build import build_alert
from shared.alerts.formats import slack_blocks, teams_card
from shared.alerts.forwarding import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, verify
from shared.alerts.model import Alert
from shared.config.catalog import parse_catalog
from shared.config.settings import Settings
from shared.kinds.base import FailedActivity, FailureDetails
from shared.kinds.registry import kind_named
from shared.runs.model import Run

NOW = datetime(2026, 11, 22, 2, 0, 48, tzinfo=UTC)
CATALOG = parse_catalog(
    json.dumps(
        {
            "targets": [
                {
                    "name": "sales",
                    "kind": "datafactory",
                    "subscriptionId": "00000000-0000-0000-0000-000000000001",
                    "resourceGroup": "rg-data",
                    "factoryName": "contoso-adf",
                    "pipelines": ["*"],
                },
                {
                    "name": "lake",
                    "kind": "synapse",
                    "workspaceName": "contoso-syn",
                    "endpoint": "https://contoso-syn.dev.azuresynapse.net",
                    "pipelines": ["*"],
                    "sparkPools": ["small"],
                },
            ]
        }
    ),
    "test",
)
WHY = "Cannot connect to <sales-db> & its firewall. " + "x" * 5000


def adf_alert() -> Alert:
    run = Run(
        id="sales.8204687154850144pwgxk",
        target="sales",
        kind="datafactory",
        pipeline="copy_sales",
        status="Failed",
        created_at=NOW - timedelta(seconds=3),
        updated_at=NOW,
        upstream_run_id="9e1b6851-9f98-4a38-a144-de17e4ab33fe",
        upstream_status="Failed",
        run_start=NOW - timedelta(seconds=3),
        run_end=NOW,
        duration_ms=3000,
        caller="erp-system",
        product="erp",
        message="Operation on target CopySales failed",
    )
    activity = FailedActivity("CopySales", "Copy", "2200", "UserError", WHY, run.run_start, NOW)
    return build_alert(
        run,
        "failed",
        kind=kind_named(run.kind),
        target=CATALOG.get("sales"),
        details=FailureDetails(activities=[activity]),
        history=[],
        settings=Settings({"GATEWAY_PUBLIC_BASE_URL": "https://apim.example/pipelines/api"}),
        now=NOW,
    )


def spark_alert() -> Alert:
    run = Run(
        id="lake.8204687154850144sparkab",
        target="lake",
        kind="spark",
        pipeline="nightly_enrich",
        status="Failed",
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW,
        spark_pool="small",
        upstream_run_id="17",
        run_end=NOW,
    )
    details = FailureDetails(
        errors=["AnalysisException: table silver.orders not found"],
        log_tail=[f"driver line {index}" for index in range(40)],
        app_id="application_1732240000000_0017",
    )
    return build_alert(
        run,
        "failed",
        kind=kind_named(run.kind),
        target=CATALOG.get("lake"),
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
    )


def test_teams_gets_an_adaptive_card_with_the_summary_facts_why_and_studio_button() -> None:
    alert = adf_alert()
    message = teams_card(alert)

    attachment = message["attachments"][0]
    assert message["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [block.get("text", "") for block in card["body"]]
    assert texts[0] == "Run failed: sales/copy_sales"
    assert texts[1] == alert.summary.replace("<sales-db>", "\\<sales-db\\>"), "Markdown in Azure's words escaped"
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Pipeline"] == "copy_sales" and facts["Status"] == "Failed"
    assert facts["When"] == "2026-11-22 02:00:45 → 02:00:48 UTC (3s)"
    assert facts["Caller"] == "erp-system (product erp)" and facts["Alert"] == "sales.8204687154850144pwgxk:failed"
    assert "Failed activity CopySales (Copy), UserError 2200" in texts
    assert all(len(text) <= 2500 for text in texts), "long messages are cut, not refused by Teams"
    buttons = {action["title"]: action["url"] for action in card["actions"]}
    assert buttons["Open in ADF Studio"] == alert.links["studio"]
    assert buttons["Run in the gateway"] == "https://apim.example/pipelines/api/runs/sales.8204687154850144pwgxk"


def test_slack_gets_block_kit_within_its_limits_with_mrkdwn_escaped() -> None:
    alert = adf_alert()
    message = slack_blocks(alert)

    assert message["text"].startswith("ADF sales/copy_sales run 9e1b6851… failed at activity CopySales")
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Run failed: sales/copy_sales", "emoji": True},
    }
    fields = blocks[2]["fields"]
    assert len(fields) <= 10 and "*Alert*\nsales.8204687154850144pwgxk:failed" in [f["text"] for f in fields]
    why = blocks[3]["text"]["text"]
    assert why.startswith(
        "*Failed activity CopySales (Copy), UserError 2200*\n```Cannot connect to &lt;sales-db&gt; &amp; its"
    )
    assert all(len(block.get("text", {}).get("text", "")) <= 3000 for block in blocks)
    assert blocks[-1]["elements"][0]["url"] == alert.links["studio"]


def test_a_spark_failure_carries_its_errors_and_the_end_of_the_driver_log() -> None:
    alert = spark_alert()
    card = teams_card(alert)["attachments"][0]["content"]
    slack = slack_blocks(alert)

    texts = [block.get("text", "") for block in card["body"]]
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Pipeline"] == "nightly_enrich on Spark pool small"
    assert "Spark errors" in texts and "AnalysisException: table silver.orders not found" in texts
    log = texts[texts.index("Driver log (last lines)") + 1]
    assert log.splitlines() == [f"driver line {index}" for index in range(25, 40)]
    assert any("driver line 39" in block.get("text", {}).get("text", "") for block in slack["blocks"])


def test_the_signature_is_an_hmac_of_timestamp_and_body_that_receivers_can_verify() -> None:
    body = json.dumps(adf_alert().queue_message()).encode()
    expected = hmac.new(b"s3cret", b"1732240848." + body, hashlib.sha256).hexdigest()
    header = signature("s3cret", "1732240848", body)
    headers = {TIMESTAMP_HEADER: "1732240848", SIGNATURE_HEADER: header}

    assert header == f"sha256={expected}"
    assert verify("s3cret", headers, body, now=1732240848 + 60)
    assert not verify("other", headers, body, now=1732240848)
    assert not verify("s3cret", headers, body + b" ", now=1732240848), "a changed body fails"
    assert not verify("s3cret", headers, body, now=1732240848 + 301), "an old capture cannot be replayed"


@pytest.mark.parametrize("kind", ["overdue", "unknown", "cancelled"])
def test_every_alert_kind_has_its_own_title(kind: str) -> None:
    alert = adf_alert().model_copy(update={"kind": kind})
    assert teams_card(alert)["attachments"][0]["content"]["body"][0]["text"].endswith(": sales/copy_sales")
    assert not teams_card(alert)["attachments"][0]["content"]["body"][0]["text"].startswith("Run failed")


def test_an_azure_ml_alert_names_the_failed_step_and_its_log_in_teams_and_slack() -> None:
    catalog = parse_catalog(
        json.dumps(
            {
                "targets": [
                    {
                        "name": "sales-ml",
                        "kind": "machinelearning",
                        "subscriptionId": "00000000-0000-0000-0000-000000000001",
                        "resourceGroup": "rg-ml",
                        "workspaceName": "contoso-aml",
                        "jobs": [{"name": "score_batch", "jobType": "Pipeline", "componentId": "azureml:score:1"}],
                    }
                ]
            }
        ),
        "test",
    )
    run = Run(
        id="sales-ml.8204687154850144pwgxk",
        target="sales-ml",
        kind="machinelearning",
        pipeline="score_batch",
        status="Failed",
        created_at=NOW - timedelta(seconds=90),
        updated_at=NOW,
        upstream_run_id="sales-ml_8204687154850144pwgxk",
        upstream_status="Failed",
        run_start=NOW - timedelta(seconds=80),
        run_end=NOW,
        duration_ms=80_000,
    )
    step = FailedActivity("score", "pipeline step", "", "UserError", "KeyError: store_region", None, None)
    details = FailureDetails(
        activities=[step],
        log_tail=["Traceback ...", "KeyError: store_region"],
        log_name="user_logs/std_log.txt of step score",
    )
    alert = build_alert(
        run,
        "failed",
        kind=kind_named(run.kind),
        target=catalog.get("sales-ml"),
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
    )

    assert alert.summary.startswith(
        "Azure ML sales-ml/score_batch job sales-ml_8204687154850144pwgxk failed at step score"
    )
    teams = json.dumps(teams_card(alert))
    slack = json.dumps(slack_blocks(alert))
    for document in (teams, slack):
        assert "Failed step score (pipeline step), UserError" in document
        assert "user_logs/std_log.txt of step score (last lines)" in document
        assert (
            "Open in Azure ML studio" in document
            and "https://ml.azure.com/runs/sales-ml_8204687154850144pwgxk" in document
        )
