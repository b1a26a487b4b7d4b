"""Request bodies and URL names are validated before anything is recorded or sent to Azure."""

from __future__ import annotations

from typing import Any

import azure.functions as func
import pytest

from shared.api.http import read_json
from shared.api.requests import StartRunRequest, parse_body, validate_name
from shared.config import names
from shared.errors import BodyTooLarge, InvalidName, MalformedBody, UnsupportedMediaType, ValidationFailed


def request(body: bytes, content_type: str | None = "application/json", **headers: str) -> func.HttpRequest:
    all_headers = dict(headers)
    if content_type:
        all_headers["content-type"] = content_type
    return func.HttpRequest("POST", "http://localhost/api/x", headers=all_headers, body=body)


@pytest.mark.parametrize("name", ["daily_load", "Load Sales 2024", "_private", "x" * 260, "Daily_ünïcode"])
def test_valid_pipeline_names(name: str) -> None:
    assert validate_name(names.PIPELINE, name, "pipeline") == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc",
        "a/b",
        "a?b",
        "a#b",
        "a%2Fb",
        "a.b",
        "a:b",
        "a\\b",
        "a&b",
        "a+b",
        "a<b",
        "a*b",
        "x" * 261,
        "-leading",
        "line\nbreak",
        "tab\there",
    ],
)
def test_pipeline_names_that_would_change_the_url_are_refused(name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        validate_name(names.PIPELINE, name, "pipeline")
    assert caught.value.status == 422
    assert caught.value.errors[0]["field"] == "pipeline"


@pytest.mark.parametrize("name", ["evil.com", "a/b", "UPPER", "-x", "x-", "a" * 41])
def test_target_names_follow_our_rule(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(names.TARGET, name, "target")


def test_start_request_accepts_parameters_and_recovery_options() -> None:
    body = parse_body(
        StartRunRequest,
        {
            "parameters": {"date": "2026-11-22", "regions": ["eu", "us"], "limit": 5},
            "referencePipelineRunId": "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b",
            "isRecovery": True,
            "startFromFailure": True,
        },
    )
    options = body.options()
    assert options.reference_run_id == "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
    assert options.start_from_failure is True and options.is_recovery is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parameters": []}, "parameters"),
        ({"parameters": {f"p{i}": i for i in range(51)}}, "parameters"),
        ({"parameters": {"": 1}}, "parameters"),
        ({"isRecovery": "yes", "referencePipelineRunId": "abc"}, "isRecovery"),
        ({"isRecovery": True}, "(body)"),
        ({"startFromFailure": True, "startActivityName": "A", "referencePipelineRunId": "abc"}, "(body)"),
        ({"referencePipelineRunId": "../../x"}, "referencePipelineRunId"),
        ({"startActivityName": "a/b", "referencePipelineRunId": "abc"}, "startActivityName"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_start_request_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_body(StartRunRequest, body)
    assert caught.value.status == 422
    assert field in [error["field"] for error in caught.value.errors]


def test_deeply_nested_parameters_are_refused() -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"n": nested}
    with pytest.raises(ValidationFailed, match="nest deeper"):
        parse_body(StartRunRequest, {"parameters": {"p": nested}})


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationFailed, match="JSON object"):
        parse_body(StartRunRequest, [1, 2])


def test_read_json_limits_size_type_and_syntax() -> None:
    assert read_json(request(b'{"a": 1}'), 100) == {"a": 1}
    assert read_json(request(b"", content_type=None), 100) == {}
    assert read_json(request(b'{"a": 1}', "application/merge-patch+json"), 100) == {"a": 1}
    with pytest.raises(BodyTooLarge):
        read_json(request(b"{}" + b" " * 200), 100)
    with pytest.raises(BodyTooLarge):
        read_json(request(b"{}", **{"content-length": "10000"}), 100)
    with pytest.raises(UnsupportedMediaType):
        read_json(request(b"a=1", "application/x-www-form-urlencoded"), 100)
    with pytest.raises(MalformedBody, match="line 1"):
        read_json(request(b'{"a": '), 100)
    with pytest.raises(MalformedBody, match="UTF-8"):
        read_json(request(b'{"a": "\xff"}'), 100)


def test_read_json_refuses_pathological_nesting_cheaply() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedBody):
        read_json(request(deep), 1_000_000)
