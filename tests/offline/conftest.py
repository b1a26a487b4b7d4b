"""Fixtures of the offline-stack tests: Azurite, a test-only storage credential, and ``make run``.

Azurite serves certificates of the worker's CA (``tls_files`` in tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.storage.queue import QueueClient

from offline.azurite import Azurite
from offline.tls import TlsFiles
from tests.offline.sandbox import Sandbox

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


class UnsignedTokenCredential:
    """A ``TokenCredential`` minting unsigned (``alg: none``) JWTs, which Azurite accepts.

    Azurite checks audience, issuer and lifetime but not signatures, so this stands in for the managed
    identity the app uses in Azure. ``audience`` forces the ``aud`` claim (to prove a wrong one is
    refused); by default it is derived from the requested scope like Entra ID does.
    """

    def __init__(self, audience: str | None = None, lifetime: int = 3600) -> None:
        self.audience = audience
        self.lifetime = lifetime
        self.requests: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.requests.append(scopes)
        now = int(time.time())
        claims = {
            "aud": self.audience or scopes[0].removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{TENANT_ID}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "oid": str(uuid.uuid4()),
            "tid": TENANT_ID,
        }
        token = f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}."
        return AccessToken(token, now + self.lifetime)


@pytest.fixture(scope="session")
def shared_azurite(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Azurite]:
    """One Azurite per test worker for tests that only add data (each under names of its own)."""
    with Azurite(tmp_path_factory.mktemp("azurite"), tls_files) as azurite:
        yield azurite


@pytest.fixture
def own_azurite(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Azurite]:
    """An Azurite of the test's own, for tests that stop or restart it."""
    with Azurite(tmp_path / "azurite", tls_files) as azurite:
        yield azurite


@pytest.fixture
def credential_for() -> Callable[..., UnsignedTokenCredential]:
    return UnsignedTokenCredential


@pytest.fixture
def storage_credential() -> UnsignedTokenCredential:
    return UnsignedTokenCredential()


@pytest.fixture
def queue_client_for(
    shared_azurite: Azurite, tls_files: TlsFiles, storage_credential: UnsignedTokenCredential
) -> Callable[[str], QueueClient]:
    """Queue clients on the shared Azurite, without message encoding: tests choose what they send."""

    def make(queue_name: str) -> QueueClient:
        return QueueClient(
            account_url=shared_azurite.queue_endpoint,
            queue_name=queue_name,
            credential=storage_credential,
            connection_verify=str(tls_files.ca_bundle),
        )

    return make


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Queue and table names of their own per test, so tests can share one Azurite."""

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One ``make run``-style stack per worker for the tests that use it as a user would (README, examples)."""
    started = Sandbox(tmp_path_factory.mktemp("sandbox")).start()
    try:
        yield started
    finally:
        started.stop()
