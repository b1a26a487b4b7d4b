"""One token per scope, renewed before expiry; identity failures say what to check."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared.errors import IdentityUnavailable
from shared.identity import TokenProvider, create_credential
from shared.settings import Settings


class FakeCredential:
    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[str] = []
        self.lifetime = lifetime
        self.fail = False

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        if self.fail:
            raise ClientAuthenticationError("ManagedIdentityCredential: no identity with that client id")
        self.calls.append(scopes[0])
        return AccessToken(f"t{len(self.calls)}", int(time.time() + self.lifetime))


def test_one_call_per_scope_while_the_token_is_fresh() -> None:
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity")  # type: ignore[arg-type]
    for _ in range(100):
        provider.token("https://management.azure.com/.default")
        provider.token("https://dev.azuresynapse.net/.default")
    assert sorted(credential.calls) == [
        "https://dev.azuresynapse.net/.default",
        "https://management.azure.com/.default",
    ]


def test_token_is_renewed_halfway_through_a_short_life() -> None:
    credential = FakeCredential(lifetime=2)
    provider = TokenProvider(credential, description="test identity")  # type: ignore[arg-type]
    assert provider.token("s") == provider.token("s") == "t1"
    time.sleep(1.1)
    assert provider.token("s") == "t2"


def test_invalidate_forces_a_new_token() -> None:
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity")  # type: ignore[arg-type]
    provider.token("s")
    provider.invalidate("s")
    assert provider.token("s") == "t2"


def test_failure_names_the_identity_and_scope_without_secrets() -> None:
    credential = FakeCredential()
    credential.fail = True
    provider = TokenProvider(credential, description="Managed identity 1234")  # type: ignore[arg-type]
    with pytest.raises(IdentityUnavailable) as caught:
        provider.token("https://management.azure.com/.default")
    assert caught.value.status == 503
    assert "Managed identity 1234" in caught.value.detail
    assert "https://management.azure.com/.default" in caught.value.detail


def test_user_assigned_identity_when_client_id_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    credential, description = create_credential(Settings({"AZURE_CLIENT_ID": "abc"}))
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert "abc" in description
    credential, description = create_credential(Settings({}))
    assert type(credential).__name__ == "DefaultAzureCredential"
    assert "az login" in description
