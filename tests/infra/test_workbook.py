"""The platform team's workbook (infra/workbook/platform.workbook.json) queries only what the app emits:
its metric names, their dimensions, its Azure-call spans and its log lines, all as shared/ writes them;
and the Bicep deploys it on the gateway's Application Insights."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra._support import INFRA, MODULES, REPO, body, parse_bicep, resources_of_type

WORKBOOK = INFRA / "workbook" / "platform.workbook.json"
TRACING = REPO / "shared" / "telemetry" / "tracing.py"
SHARED = REPO / "shared"


def _workbook() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return data


def _queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in _workbook()["items"] if item["type"] == 3}


def _emitted_metrics() -> set[str]:
    text = TRACING.read_text(encoding="utf-8")
    return set(re.findall(r"create_(?:counter|histogram|gauge|up_down_counter)\(\s*\"([^\"]+)\"", text))


def _emitted_dimensions() -> set[str]:
    return set(re.findall(r"\"(gateway\.[a-z_]+)\":", TRACING.read_text(encoding="utf-8")))


def _log_formats() -> list[str]:
    """The format strings of every log call in shared/ (the text a traces row's message starts from)."""
    found = []
    for path in SHARED.rglob("*.py"):
        found += re.findall(r"_LOGGER\.(?:debug|info|warning|error|exception)\(\s*\"([^\"]+)\"", path.read_text())
    return found


def test_the_workbook_covers_what_the_platform_team_asked_for() -> None:
    queries = "\n".join(_queries().values())
    for metric in (
        "gateway.runs.started",
        "gateway.runs.failed",
        "gateway.alerts.sent",
        "gateway.runs.in_flight",
        "gateway.poll.duration",
        "gateway.poll.lag",
        "gateway.alerts.forward_failed",
    ):
        assert f'"{metric}"' in queries, f"the workbook does not show {metric}"
    assert 'resultCode == "429"' in queries, "upstream throttling"
    assert "toint(resultCode) >= 500" in queries, "upstream errors"
    per_target = [q for q in _queries().values() if 'customDimensions["gateway.target"]' in q]
    assert len(per_target) >= 5, "starts, failures, alerts, runs in flight and lag are per target"


def test_every_metric_the_workbook_reads_is_one_the_app_emits() -> None:
    used = set()
    for query in _queries().values():
        used |= set(re.findall(r'name == "([^"]+)"', query))
        for listed in re.findall(r"name in \(([^)]*)\)", query):
            used |= set(re.findall(r'"([^"]+)"', listed))
    assert used, "no metric read"
    assert used <= _emitted_metrics(), f"not emitted by shared/telemetry: {used - _emitted_metrics()}"


def test_every_dimension_the_workbook_reads_is_one_the_app_writes() -> None:
    used = {name for query in _queries().values() for name in re.findall(r'customDimensions\["([^"]+)"\]', query)}
    assert used <= _emitted_dimensions(), f"not written by shared/telemetry: {used - _emitted_dimensions()}"


def test_azure_calls_are_read_as_the_spans_the_transport_records() -> None:
    text = TRACING.read_text(encoding="utf-8")
    assert 'f"Azure {operation}"' in text and "SpanKind.CLIENT" in text
    assert '"http.response.status_code"' in text, "the status becomes the dependency's resultCode"
    for query in _queries().values():
        if "dependencies" in query:
            assert 'name startswith "Azure "' in query, "only the gateway's own Azure calls"


def test_every_log_text_the_workbook_searches_is_logged_by_the_app() -> None:
    formats = _log_formats()
    searched = {text for query in _queries().values() for text in re.findall(r'message has "([^"]+)"', query)}
    assert searched
    for text in searched:
        assert any(text in fmt for fmt in formats), f"no log line of shared/ contains {text!r}"


def test_poison_messages_are_the_tries_host_json_allows() -> None:
    """The host moves a message to the poison queue after maxDequeueCount failed tries: the workbook's
    threshold is host.json's."""
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    tries = host["extensions"]["queues"]["maxDequeueCount"]
    assert f'toint(customDimensions["gateway.try"]) >= {tries}' in _queries()["poison-messages"]


def test_every_query_runs_on_application_insights_over_the_chosen_time_range() -> None:
    workbook = _workbook()
    assert workbook["version"] == "Notebook/1.0"
    assert workbook["fallbackResourceIds"] == ["__APPLICATION_INSIGHTS_ID__"]
    (parameters,) = [item for item in workbook["items"] if item["type"] == 9]
    assert [p["name"] for p in parameters["content"]["parameters"]] == ["TimeRange"]
    for item in workbook["items"]:
        if item["type"] == 3:
            content = item["content"]
            assert content["resourceType"] == "microsoft.insights/components", item["name"]
            assert content["timeContextFromParameter"] == "TimeRange", item["name"]
            assert content["version"] == "KqlItem/1.0"
    names = [item["name"] for item in workbook["items"]]
    assert len(names) == len(set(names)), "item names must be unique"


def test_the_bicep_deploys_the_workbook_on_the_gateways_application_insights() -> None:
    tree = parse_bicep(MODULES / "workbook.bicep")
    (workbook,) = resources_of_type(tree, "Microsoft.Insights/workbooks").values()
    workbook_body = body(workbook)
    assert workbook_body["kind"] == "shared"
    assert workbook_body["properties"]["sourceId"] == "applicationInsightsId"
    assert workbook_body["properties"]["serializedData"] == "workbookContent"
    text = (MODULES / "workbook.bicep").read_text(encoding="utf-8")
    assert (
        "loadTextContent('../workbook/platform.workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)"
        in text
    )
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    module = main[main.index("module workbook 'modules/workbook.bicep'") :]
    assert "applicationInsightsId: monitoring.outputs.id" in module[: module.index("\n}\n")]
