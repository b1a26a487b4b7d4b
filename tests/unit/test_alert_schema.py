"""The alert on the queue is schema v1, field for field: receivers and runbooks depend on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.alerts.build import build_alert
from shared.alerts.formats import json_document
from shared.alerts.model import read_alert
from shared.config.catalog import parse_catalog
from shared.config.settings import Settings
from shared.kinds.base import FailedActivity, FailureDetails
from shared.kinds.registry import kind_named
from shared.runs.model import Run

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
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
                }
            ]
        }
    ),
    "test",
)
V1_SAMPLE = {
    "schemaVersion": 1,
    "alertId": "sales.8204687154850144pwgxk:failed",
    "kind": "failed",
    "summary": "ADF sales/copy_sales run 9e1b6851… failed at activity CopySales on 2031-03-04 05:06:07 UTC "
    "after 3s: Cannot connect",
    "target": "sales",
    "targetKind": "datafactory",
    "location": "factory contoso-adf (rg-data)",
    "pipeline": "copy_sales",
    "sparkPool": None,
    "status": "Failed",
    "upstreamStatus": "Failed",
    "upstreamRunId": "9e1b6851-9f98-4a38-a144-de17e4ab33fe",
    "runId": "sales.8204687154850144pwgxk",
    "message": "Operation on target CopySales failed",
    "failedActivities": [
        {
            "name": "CopySales",
            "type": "Copy",
            "errorCode": "2200",
            "failureType": "UserError",
            "message": "Cannot connect",
            "start": "2031-03-04T05:06:04Z",
            "end": "2031-03-04T05:06:07Z",
        }
    ],
    "appId": None,
    "errors": [],
    "driverLogTail": [],
    "logName": None,
    "start": "2031-03-04T05:06:04Z",
    "end": "2031-03-04T05:06:07Z",
    "durationMs": 3000,
    "caller": "erp-system",
    "product": "erp",
    "correlationId": "c0ffee",
    "links": {
        "studio": "https://adf.azure.com/en/monitoring/pipelineruns/9e1b6851-9f98-4a38-a144-de17e4ab33fe"
        "?factory=%2Fsubscriptions%2F00000000-0000-0000-0000-000000000001%2FresourceGroups%2Frg-data"
        "%2Fproviders%2FMicrosoft.DataFactory%2Ffactories%2Fcontoso-adf",
        "run": "https://apim.example/pipelines/api/runs/sales.8204687154850144pwgxk",
    },
    "previousRuns": [{"id": "sales.8204687154850999aaaaa", "status": "Succeeded", "createdAt": "2031-03-03T05:06:07Z"}],
    "firstFailure": True,
    "raisedAt": "2031-03-04T05:06:07Z",
}


def _failed_run() -> Run:
    return Run(
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
        correlation_id="c0ffee",
        message="Operation on target CopySales failed",
    )


def test_a_failed_run_alert_is_exactly_the_v1_document() -> None:
    run = _failed_run()
    previous = Run(
        id="sales.8204687154850999aaaaa",
        target="sales",
        kind="datafactory",
        pipeline="copy_sales",
        status="Succeeded",
        created_at=NOW - timedelta(days=1),
        updated_at=NOW - timedelta(days=1),
    )
    activity = FailedActivity("CopySales", "Copy", "2200", "UserError", "Cannot connect", run.run_start, NOW)
    alert = build_alert(
        run,
        "failed",
        kind=kind_named(run.kind),
        target=CATALOG.get("sales"),
        details=FailureDetails(activities=[activity]),
        history=[previous],
        settings=Settings({"GATEWAY_PUBLIC_BASE_URL": "https://apim.example/pipelines/api"}),
        now=NOW,
    )

    message = alert.queue_message()

    assert message == V1_SAMPLE
    assert list(message) == list(V1_SAMPLE), "field order is part of what people read on the queue"


def test_a_reader_keeps_fields_a_newer_writer_added_and_refuses_what_is_not_an_alert() -> None:
    newer = {**V1_SAMPLE, "runbook": "https://wiki.example/copy_sales"}

    alert = read_alert(newer)

    assert alert is not None and alert.alertId == V1_SAMPLE["alertId"]
    assert json_document(alert) == newer, "the JSON receiver gets the message exactly as it was on the queue"
    assert read_alert({"summary": "no id, no run"}) is None
    assert read_alert(["not", "an", "object"]) is None
