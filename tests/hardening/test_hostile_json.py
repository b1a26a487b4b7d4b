"""Hostile JSON numbers and hostile characters in names: a 4xx problem before anything is recorded or
sent to Azure, never a 500 and never a value Azure would read differently.

Python's JSON reader takes ``NaN`` and ``Infinity`` (which are not JSON), turns ``1e400`` into
infinity, and raises a plain ValueError past 4300 digits; what it accepted would be echoed back as
invalid JSON and passed to Azure.
"""

from __future__ import annotations

import json
import math
from typing import Any

import azure.functions as func
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from offline.localhost import LocalHost
from offline.stack import OfflineStack
from shared.api.http import MAX_JSON_INTEGER, read_json
from shared.context import AppContext
from shared.errors import RequestError
from tests.hardening.conftest import problem

NUMBERS = [
    ("9" * 30_000, "30,000 digits"),
    ("-" + "1" * 5_000, "5,000 digits"),
    (str(MAX_JSON_INTEGER + 1), "2^53"),
    (str(-MAX_JSON_INTEGER - 1), "-2^53"),
    ("1e400", "beyond a double"),
    ("-1e400", "below a double"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("-Infinity", "-Infinity"),
]


def azure_writes(stack: OfflineStack) -> int:
    """Calls that would start or change something in Azure, Spark batches included."""
    counters = stack.emulator.counters
    return sum(v for k, v in counters.items() if k.endswith(("CreateRun", "CreatePipelineRun", "Job", "Cancel")))


def post(api: requests.Session, url: str, body: bytes, **headers: str) -> requests.Response:
    return api.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=30)


@pytest.mark.parametrize(("number", "what"), NUMBERS, ids=[what for _, what in NUMBERS])
def test_a_number_json_readers_do_not_keep_is_a_400_before_azure(
    app: AppContext,
    stack: OfflineStack,
    api: requests.Session,
    host: LocalHost,
    adf: str,
    synapse: str,
    number: str,
    what: str,
) -> None:
    before = azure_writes(stack)
    pipeline = f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs"
    batch = f"{host.api_url}/targets/{synapse}/sparkpools/small/batches"

    refused = [
        problem(post(api, pipeline, b'{"parameters": {"p": %s}}' % number.encode()), 400, "malformed-body"),
        problem(post(api, pipeline, b'{"parameters": {"p": [1, {"q": %s}]}}' % number.encode()), 400),
        problem(
            post(api, batch, b'{"name": "b", "file": "abfss://x/y.py", "numExecutors": %s}' % number.encode()), 400
        ),
    ]

    assert all("send it as a string" in d["detail"] or "not JSON" in d["detail"] for d in refused), refused
    assert all(len(d["detail"]) < 300 for d in refused), "the number is not echoed whole"
    assert azure_writes(stack) == before
    assert app.registry.list_runs(limit=10)[0] == []


def test_numbers_within_bounds_reach_azure_exactly_as_sent(
    app: AppContext, api: requests.Session, host: LocalHost, adf: str
) -> None:
    parameters = {"big": MAX_JSON_INTEGER, "small": -MAX_JSON_INTEGER, "ratio": 1.5, "huge": 1e308, "tiny": 5e-324}
    response = post(
        api, f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs", json.dumps({"parameters": parameters}).encode()
    )

    assert response.status_code == 202, response.text
    assert json.loads(response.text, parse_constant=pytest.fail)["parameters"] == parameters
    assert app.registry.get(response.json()["id"]).parameters == parameters


@pytest.mark.parametrize("length", ["1²", "١٢", "9" * 5_000, "12abc"])
def test_a_content_length_that_is_not_ascii_digits_is_never_a_500(length: str) -> None:
    """``"1²".isdigit()`` is True and ``int("1²")`` raises; 5,000 digits pass isdigit and overflow int()."""
    request = func.HttpRequest(
        "POST",
        "http://127.0.0.1/api/x",
        headers={"content-type": "application/json", "content-length": length},
        body=b"{}",
    )
    try:
        assert read_json(request, 1024) == {}
    except RequestError as refused:
        assert refused.status == 413


JSON_NUMBERS = st.integers() | st.floats() | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0"])
DOCUMENTS = st.recursive(
    JSON_NUMBERS | st.booleans() | st.none() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)


def _encode(value: Any) -> str:
    """JSON as a careless client writes it: Python's json.dumps, NaN and Infinity included."""
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity", "1e400", "-0"):
        return value
    if isinstance(value, list):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_encode(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


@settings(max_examples=300, deadline=None)
@given(document=DOCUMENTS)
def test_what_read_json_returns_is_json_any_reader_keeps(document: Any) -> None:
    """Accepted: strict JSON again, every integer within ±(2^53 - 1), every float finite. Refused: a 400."""
    request = func.HttpRequest(
        "POST", "http://127.0.0.1/api/x", headers={"content-type": "application/json"}, body=_encode(document).encode()
    )
    try:
        value = read_json(request, 1_000_000)
    except RequestError as refused:
        assert refused.status == 400
        return
    json.dumps(value, allow_nan=False)
    for number in _numbers(value):
        assert math.isfinite(number) and (isinstance(number, float) or abs(number) <= MAX_JSON_INTEGER)


# --- invisible characters in names, keys and headers ----------------------------------------------

INVISIBLE = ["\u202e", "\u0085", "\u2028", "\u2029", "\u200b", "\u2066", "\ufeff", "\x1b", "\u061c", "\ud800"]


@pytest.mark.parametrize("char", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_invisible_characters_in_spark_names_and_keys_are_refused_field_by_field(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, synapse: str, char: str
) -> None:
    before = azure_writes(stack)
    url = f"{host.api_url}/targets/{synapse}/sparkpools/small/batches"
    base: dict[str, Any] = {"name": "nightly", "file": "abfss://jobs@lake.dfs.core.windows.net/job.py"}
    for field, change in [
        ("name", {"name": f"night{char}ly"}),
        ("className", {"className": f"com.contoso{char}.Job"}),
        ("conf", {"conf": {f"spark.app{char}.name": "x"}}),
        ("tags", {"tags": {f"owner{char}": "erp"}}),
    ]:
        document = problem(api.post(url, json={**base, **change}, timeout=30), 422)
        assert [error["field"] for error in document["errors"]] == [field], document
    document = problem(
        api.post(
            f"{host.api_url}/targets/{synapse}/pipelines/refresh_lake/runs",
            json={"parameters": {f"region{char}": "eu"}},
            timeout=30,
        ),
        422,
    )
    assert document["errors"][0]["field"] == "parameters"
    assert azure_writes(stack) == before
    assert app.registry.list_runs(limit=10)[0] == []


@pytest.mark.parametrize("char", ["\u202e", "\u0085", "\u2028", "\u200b"], ids=["RLO", "NEL", "LS", "ZWSP"])
def test_an_idempotency_key_with_an_invisible_character_is_refused(
    app: AppContext, stack: OfflineStack, api: requests.Session, host: LocalHost, adf: str, char: str
) -> None:
    before = azure_writes(stack)
    response = api.post(
        f"{host.api_url}/targets/{adf}/pipelines/daily_load/runs",
        json={},
        headers={"Idempotency-Key": f"order-42{char}".encode()},
        timeout=30,
    )
    assert problem(response, 422)["errors"][0]["field"] == "Idempotency-Key"
    assert azure_writes(stack) == before
