"""The API against its own OpenAPI document (openapi.json, what APIM imports), through the local host:
requests that fit the document and requests that do not. Whatever comes in, no 5xx, every error the app
answers is a problem document, and no answer carries a token, a key or a stack trace."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack
from shared.context import AppContext, set_app_context
from tests.conftest import install
from tests.hardening.conftest import PROBLEM

schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=25, deterministic=True
)
LEAKS = re.compile(r"Traceback \(most recent call last\)|File \"/|eyJ[A-Za-z0-9_-]{8,}\.|Bearer [A-Za-z0-9]")


@pytest.fixture(scope="module")
def secrets(stack: OfflineStack, host: LocalHost) -> Iterator[list[str]]:
    """The host's keys, the identity header and every token the identity endpoint hands out."""
    found = [host.function_key, host.master_key, stack.emulator.identity_header]
    mint = stack.emulator.authority.mint

    def recording(resource: str) -> tuple[str, int]:
        token, expires = mint(resource)
        found.append(token)
        return token, expires

    stack.emulator.authority.mint = recording  # type: ignore[method-assign]
    yield found
    stack.emulator.authority.mint = mint  # type: ignore[method-assign]


def check_answer(response: Response, secrets: list[str]) -> None:
    body = response.content.decode("utf-8", errors="replace")
    headers = {name: ", ".join(values) for name, values in response.headers.items()}  # lower-cased names
    seen = body + "\n" + "\n".join(f"{name}: {value}" for name, value in headers.items())
    assert not LEAKS.search(seen), seen[:500]
    assert [secret for secret in secrets if secret in seen] == []
    assert response.status_code < 500, body[:500]
    if response.status_code < 400:
        return
    content_type = headers.get("content-type", "")
    if response.status_code == 401:  # the host's key check: nothing to read, like the Functions host
        assert body == ""
    elif content_type.startswith("text/plain"):  # the host's: no function has this route or method
        assert (response.status_code, body) in ((404, "Not Found"), (405, "Method Not Allowed"))
    else:
        assert content_type.startswith(PROBLEM), (response.status_code, content_type, body[:200])
        document = json.loads(body)
        assert {"type", "title", "status", "detail", "correlationId"} <= set(document)
        assert document["status"] == response.status_code
        assert headers["x-correlation-id"] == document["correlationId"]


@pytest.fixture(scope="module")
def served(stack: OfflineStack) -> Iterator[AppContext]:
    """One context for every example (hypothesis runs them all within one test)."""
    suffix = uuid.uuid4().hex[:10]
    yield install(stack, {"GATEWAY_RUNS_TABLE": f"fuzz{suffix}", "GATEWAY_ALERT_QUEUE": f"fuzz-{suffix}"})
    set_app_context(None)


@schema.parametrize()
def test_the_api_keeps_its_contract_whatever_is_sent(
    case: schemathesis.Case[Any], served: AppContext, host: LocalHost, secrets: list[str]
) -> None:
    response = case.call(base_url=host.url, headers={"x-functions-key": host.function_key}, timeout=30)
    check_answer(response, secrets)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance, negative_data_rejection]
    case.validate_response(response, checks=checks)
