"""Hostile input: whatever a caller sends, the gateway answers with a clear 4xx and never lets it reach
Azure's URLs, its storage keys or its memory unbounded.

Properties (hypothesis) hold for every request model and every naming rule; the HTTP cases go through
the local host, as a caller's request would.
"""

from __future__ import annotations

import json
import time
from urllib.parse import unquote, urlsplit

import azure.functions as func
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from offline.localhost import LocalHost
from offline.stack import OfflineStack
from shared.api import requests as models
from shared.api.http import read_json
from shared.config import names
from shared.context import AppContext
from shared.errors import RequestError, ValidationFailed
from shared.text import invisible
from tests.hardening.conftest import PROBLEM, problem

REQUEST_MODELS = [
    model
    for model in vars(models).values()
    if isinstance(model, type) and issubclass(model, BaseModel) and model.__name__.endswith("Request")
]
NAME_RULES = [rule for rule in vars(names).values() if isinstance(rule, names.NameRule)]
# Invisible characters: C0 and C1 controls (ESC, NEL), bidi overrides and isolates, zero-width ones, the BOM,
# the line and paragraph separators.
INVISIBLE = ["\x1b", "\x85", "\u202e", "\u2066", "\u200b", "\ufeff", "\u2028", "\u2029", "\u061c"]
HOSTILE = st.text(alphabet=st.sampled_from([*"/\\?#%.:@&+*<>'\" \t\n\r\x00\x7f", *"aZ09_-", "é", *INVISIBLE]))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_every_request_model_is_covered() -> None:
    assert {m.__name__ for m in REQUEST_MODELS} >= {"StartRunRequest", "SparkBatchRequest", "RerunRequest"}
    assert len(NAME_RULES) >= 8


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_body_is_accepted_or_refused_field_by_field(model: type[BaseModel], data: st.DataObject) -> None:
    """Bodies built from the model's own field names with arbitrary JSON values: every outcome is a
    model, or a 422 naming each bad field; an accepted body survives a round trip unchanged."""
    fields = sorted(model.model_fields)
    body = data.draw(
        st.one_of(JSON, st.dictionaries(st.sampled_from([*fields, "unknown"]), JSON | HOSTILE, max_size=len(fields)))
    )
    try:
        parsed = models.parse_body(model, body)
    except ValidationFailed as refused:
        assert refused.status == 422 and refused.errors
        assert all(isinstance(e["field"], str) and e["field"] and e["message"] for e in refused.errors)
        json.dumps(refused.problem())  # a problem document that serializes
        return
    again = models.parse_body(model, json.loads(json.dumps(parsed.model_dump(exclude_none=True))))
    assert again == parsed
    assert [name for name in _names_and_keys(parsed) if invisible(name)] == []


def _names_and_keys(body: BaseModel) -> list[str]:
    """What a body names: the batch and class name, parameter names, conf and tags keys, the activity."""
    found = [
        value
        for name in ("name", "className", "startActivityName")
        if isinstance(value := getattr(body, name, None), str)
    ]
    for name in ("parameters", "conf", "tags"):
        found.extend(getattr(body, name, None) or {})
    return found


@pytest.mark.parametrize("rule", NAME_RULES, ids=lambda r: r.what)
@settings(max_examples=300, deadline=None)
@given(value=HOSTILE | st.text())
def test_a_valid_name_is_exactly_one_path_segment_of_azures_host(rule: names.NameRule, value: str) -> None:
    """Upstream URLs are built by formatting names into paths: a name the rule accepts can change
    neither the host nor the path around it, whatever the HTTP client does with it."""
    if rule.problem(value) is not None:
        return
    url = requests.Request("POST", f"https://management.azure.com/factories/f/pipelines/{value}/createRun").prepare()
    parts = urlsplit(url.url or "")
    assert parts.netloc == "management.azure.com" and not parts.query and not parts.fragment
    segments = parts.path.split("/")
    assert len(segments) == 6 and segments[-1] == "createRun"
    assert unquote(segments[4]) == value and value not in (".", "..")


@pytest.mark.parametrize("rule", NAME_RULES, ids=lambda r: r.what)
@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(alphabet="aZ09_", min_size=1, max_size=5), char=st.sampled_from(INVISIBLE), rest=HOSTILE | st.text()
)
def test_no_rule_accepts_an_invisible_character_anywhere(
    rule: names.NameRule, prefix: str, char: str, rest: str
) -> None:
    """A spec's character class may allow them after the first character (ADF's pipeline names do):
    the rule refuses them anyway, and says which one it found."""
    refusal = rule.problem(prefix + char + rest)
    assert refusal is not None
    if len(prefix + char + rest) <= rule.max_length:
        assert f"U+{ord(char):04X} found" in refusal


def request(body: bytes) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://127.0.0.1/api/x", headers={"content-type": "application/json"}, body=body)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=2048) | JSON.map(lambda value: json.dumps(value).encode()))
def test_any_bytes_are_json_or_a_clear_refusal(body: bytes) -> None:
    """Anything else raised here would be a 500."""
    try:
        read_json(request(body), 1024)
    except RequestError as refused:
        assert refused.status in (400, 413)


# --- through the local host ---------------------------------------------------------------------


def writes(stack: OfflineStack) -> int:
    """Calls that would start or change something in Azure."""
    counters = stack.emulator.counters
    return sum(v for k, v in counters.items() if k.endswith(("CreateRun", "CreatePipelineRun", "Cancel")))


def refused_without_effect(response: requests.Response) -> None:
    """A 4xx: the app's problem document, or the host's plain 404 when no route matches at all."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.headers.get("Content-Type", "").startswith(PROBLEM):
        problem(response, response.status_code)
    else:
        assert response.status_code in (404, 405) and response.text in ("Not Found", "Method Not Allowed")


INJECTIONS = [
    "..%2F..%2Fsubscriptions",
    "a%2F..%2F..%2Fx",
    "%2e%2e",
    "..",
    "x%00y",
    "x%0d%0aHost:%20evil.example",
    "evil.example",
    "a@evil.example",
    "a%3Fapi-version=1",
    "a%23fragment",
    "..%5C..%5Cwindows",
    "%252F",
    "x" * 300,
    "%E2%80%AEevil",
    "daily%E2%80%AEload",  # a bidi override after the first character
    "daily%C2%85load",  # NEL, a C1 control
    "daily%E2%80%A8load",  # the line separator
    "daily%E2%80%8Bload",  # a zero-width space
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_injections_in_target_pipeline_and_pool_are_refused_before_azure(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str, synapse: str, value: str
) -> None:
    before = writes(stack)
    for path in (
        f"targets/{value}/pipelines/daily_load/runs",
        f"targets/{adf}/pipelines/{value}/runs",
        f"targets/{synapse}/sparkpools/{value}/batches",
        f"targets/{value}/sparkpools/small/batches",
    ):
        body = {"name": "b", "file": "abfss://x/y.py"} if "sparkpools" in path else {}
        refused_without_effect(api.post(f"{host.api_url}/{path}", json=body, timeout=30))
    refused_without_effect(api.get(f"{host.api_url}/targets/{value}", timeout=30))
    assert writes(stack) == before
    assert app.registry.list_runs(limit=10)[0] == []


@pytest.mark.parametrize(
    "run_id",
    ["..%2F..%2Fetc", "x'%20or%20PartitionKey%20ne%20'", "contoso-adf.%00", "contoso-adf.*", "%27", "a" * 200],
)
def test_injections_in_run_ids_are_unknown_runs(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, run_id: str
) -> None:
    before = writes(stack)
    refused_without_effect(api.get(f"{host.api_url}/runs/{run_id}", timeout=30))
    refused_without_effect(api.post(f"{host.api_url}/runs/{run_id}/cancel", json={}, timeout=30))
    refused_without_effect(api.post(f"{host.api_url}/runs/{run_id}/rerun", json={}, timeout=30))
    assert writes(stack) == before


def test_an_oversized_body_is_refused_by_its_declared_length_before_it_is_parsed(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str
) -> None:
    url = f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs"
    huge = b'{"parameters": {"p": "' + b"x" * 8_000_000 + b'"}}'
    started = time.monotonic()
    problem(api.post(url, data=huge, headers={"Content-Type": "application/json"}, timeout=30), 413, "body-too-large")
    chunked = api.post(url, data=iter([huge[:40_000], huge[40_000:80_000]]), timeout=30)  # no length declared
    problem(chunked, 413, "body-too-large")
    assert time.monotonic() - started < 5
    assert app.registry.list_runs(limit=10)[0] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 30_000 + b"]" * 2_000, 400),  # nests until the parser gives up, within the size limit
        (b'{"parameters": {"p": ' + b'{"a":' * 2_000 + b"1" + b"}" * 2_000 + b"}}", 400),
        (b'{"parameters": {"p": ' + b"[" * 20 + b"]" * 20 + b"}}", 422),  # valid JSON, too deep for Azure
        (json.dumps({"parameters": {f"k{i}": i for i in range(2_000)}}).encode(), 422),
        (b'{"parameters": {"a": 1, "a": 2}, "isRecovery": "yes"}', 422),
        (b"\xff\xfe{}", 400),
    ],
)
def test_pathological_bodies_are_refused_cheaply(
    app: AppContext, api: requests.Session, host: LocalHost, adf: str, body: bytes, status: int
) -> None:
    started = time.monotonic()
    response = api.post(
        f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    problem(response, status)
    assert time.monotonic() - started < 1
    assert app.registry.list_runs(limit=10)[0] == []
