"""Azure's conventions: api-version, headers, validation errors, name rules, keep-alive."""

from __future__ import annotations

from typing import Any

import pytest

from offline.emulator import Emulator

from .conftest import RawClient, factory_path, iso_window


def test_api_version_is_required_and_checked(raw: RawClient, factory: dict[str, Any]) -> None:
    missing = raw("GET", factory_path(factory, api_version=None))
    assert missing.status == 400 and missing.body["error"]["code"] == "MissingApiVersionParameter"
    assert (
        missing.body["error"]["message"]
        == "The api-version query parameter (?api-version=) is required for all requests."
    )
    wrong = raw("GET", factory_path(factory, api_version="2017-09-01-preview"))
    assert wrong.status == 400 and wrong.body["error"]["code"] == "InvalidApiVersionParameter"
    assert "'2018-06-01'" in wrong.body["error"]["message"]


def test_standard_headers_and_rate_limits(raw: RawClient, factory: dict[str, Any]) -> None:
    first = raw("GET", factory_path(factory), headers={"x-ms-correlation-request-id": "corr-1"})
    second = raw("GET", factory_path(factory))
    assert first.headers["x-ms-correlation-request-id"] == "corr-1"
    assert first.headers["x-ms-request-id"] != second.headers["x-ms-request-id"]
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert "date" in first.headers and int(first.headers["content-length"]) == len(first.raw)
    assert int(second.headers["x-ms-ratelimit-remaining-subscription-reads"]) < int(
        first.headers["x-ms-ratelimit-remaining-subscription-reads"]
    )
    created = raw(
        "POST", factory_path(factory, "/pipelines/daily_load/createRun"), headers={"x-ms-client-request-id": "cli-9"}
    )
    assert created.headers["x-ms-ratelimit-remaining-subscription-writes"].isdigit()
    assert created.headers["x-ms-correlation-request-id"] == "cli-9"


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"lastUpdatedBefore": "2030-01-01T00:00:00Z"}, "lastUpdatedAfter"),
        ({"lastUpdatedAfter": "yesterday", "lastUpdatedBefore": "2030-01-01T00:00:00Z"}, "lastUpdatedAfter"),
        ({"filters": [{"operand": "Nope", "operator": "Equals", "values": ["x"]}]}, "operand"),
        ({"filters": [{"operand": "PipelineName", "operator": "Like", "values": ["x"]}]}, "operator"),
        ({"filters": [{"operand": "ActivityName", "operator": "Equals", "values": ["x"]}]}, "filters"),
        ({"filters": [{"operand": "PipelineName", "operator": "Equals", "values": ["a", "b"]}]}, "filters"),
        ({"orderBy": [{"orderBy": "RunStart", "order": "UP"}]}, "order"),
        ({"orderBy": [{"orderBy": "ActivityName", "order": "ASC"}]}, "orderBy"),
        ({"continuationToken": "not-ours"}, "continuationToken"),
    ],
)
def test_query_validation(
    raw: RawClient, factory: dict[str, Any], emu: Emulator, body: dict[str, Any], target: str
) -> None:
    full = {**iso_window(emu), **body}
    if "lastUpdatedBefore" in body and "lastUpdatedAfter" not in body:
        full.pop("lastUpdatedAfter")
    reply = raw("POST", factory_path(factory, "/queryPipelineRuns"), full)
    assert reply.status == 400
    assert reply.body["error"]["code"] and reply.body["error"]["message"]
    assert reply.body["error"]["target"] == target


def test_malformed_json_and_bad_parameters(raw: RawClient, factory: dict[str, Any]) -> None:
    bad = raw("POST", factory_path(factory, "/queryPipelineRuns"), raw_body=b"{not json")
    assert bad.status == 400 and bad.body["error"]["code"] == "InvalidRequestContent"
    listed = raw("POST", factory_path(factory, "/pipelines/daily_load/createRun"), [1, 2])
    assert listed.status == 400
    flag = raw("POST", factory_path(factory, "/pipelines/daily_load/createRun") + "&isRecovery=maybe", {})
    assert flag.status == 400


@pytest.mark.parametrize(
    "path",
    [
        "/subscriptions/not-a-guid/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/contoso-adf",
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg%2Fx/providers/Microsoft.DataFactory/factories/contoso-adf",
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/bad--name",
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/contoso-adf/pipelines/..%2F..%2Fx/createRun",
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/contoso-adf/pipelines/a%3Fb/createRun",
    ],
)
def test_name_rules_reject_injection(raw: RawClient, path: str) -> None:
    method = "POST" if path.endswith("createRun") else "GET"
    reply = raw(method, f"{path}?api-version=2018-06-01", {} if method == "POST" else None)
    assert reply.status == 400, reply.body


def test_unknown_path_and_method(raw: RawClient, factory: dict[str, Any]) -> None:
    assert raw("GET", "/nothing/here").status == 404
    assert raw("DELETE", factory_path(factory)).status == 405


def test_arm_paths_are_case_insensitive(raw: RawClient, factory: dict[str, Any]) -> None:
    path = (
        factory_path(factory)
        .replace("/resourceGroups/", "/resourcegroups/")
        .replace("Microsoft.DataFactory", "microsoft.datafactory")
    )
    assert raw("GET", path.replace(factory["name"], factory["name"].upper())).status == 200


def test_keep_alive_serves_many_requests_on_one_connection(raw: RawClient, factory: dict[str, Any]) -> None:
    connection = raw.connection()
    try:
        statuses = [raw("GET", factory_path(factory), connection=connection).status for _ in range(5)]
        statuses.append(raw("GET", factory_path(factory, "/pipelineruns/none"), connection=connection).status)
        statuses.append(raw("GET", factory_path(factory), connection=connection).status)
    finally:
        connection.close()
    assert statuses == [200] * 5 + [404, 200]
