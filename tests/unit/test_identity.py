"""One token per scope, renewed before expiry; identity failures say what to check."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared.azure.identity import TokenProvider, create_credential
from shared.config.settings import Settings
from shared.errors import IdentityUnavailable


class FakeCredential:
    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[str] = []
        self.claims: list[str | None] = []
        self.lifetime = lifetime
        self.fail = False

    def get_token(self, *scopes: str, claims: str | None = None, **_: Any) -> AccessToken:
        if self.fail:
            raise ClientAuthenticationError("ManagedIdentityCredential: no identity with that client id")
        self.calls.append(scopes[0])
        self.claims.append(claims)
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


def test_a_refused_token_is_replaced_by_a_new_one_not_a_cached_one() -> None:
    """msal's managed-identity client serves its cached token until it believes it expired; a claims
    request for a token issued from now on is what makes it ask the identity endpoint again."""
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity", claims_renewal=True)  # type: ignore[arg-type]
    refused = provider.token("s")
    before = time.time()
    provider.refused("s", refused)
    assert provider.token("s") == "t2"
    assert credential.claims[0] is None
    not_before = json.loads(credential.claims[1] or "")["access_token"]["nbf"]
    assert not_before["essential"] is True and int(not_before["value"]) >= int(before)
    assert provider.token("s") == "t2" and len(credential.calls) == 2  # and cached again


def test_requests_refused_with_the_same_token_renew_it_once() -> None:
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity", claims_renewal=True)  # type: ignore[arg-type]
    refused = provider.token("s")
    provider.refused("s", refused)
    renewed = provider.token("s")
    provider.refused("s", refused)  # a request that sent the old token reports it late
    assert provider.token("s") == renewed == "t2"
    assert len(credential.calls) == 2


def test_concurrent_refusals_cost_one_token_call() -> None:
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity", claims_renewal=True)  # type: ignore[arg-type]
    refused = provider.token("s")

    def retry(_: int) -> str:
        provider.refused("s", refused)
        return provider.token("s")

    with ThreadPoolExecutor(max_workers=16) as pool:
        tokens = set(pool.map(retry, range(64)))
    assert tokens == {"t2"}
    assert len(credential.calls) == 2


def test_a_resource_claims_challenge_is_passed_on_even_without_claims_renewal() -> None:
    """A developer's Azure CLI sign-in refuses unchallenged claims, but must see a resource's own."""
    credential = FakeCredential()
    provider = TokenProvider(credential, description="test identity")  # type: ignore[arg-type]
    provider.refused("s", provider.token("s"))
    provider.token("s")
    provider.refused("s", provider.token("s"), claims='{"access_token":{"xms_cc":{"values":["cp1"]}}}')
    provider.token("s")
    assert credential.claims == [None, None, '{"access_token":{"xms_cc":{"values":["cp1"]}}}']


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
    managed = create_credential(Settings({"AZURE_CLIENT_ID": "abc"}))
    assert type(managed.credential).__name__ == "ManagedIdentityCredential"
    assert "abc" in managed.description and managed.claims_renewal
    developer = create_credential(Settings({}))
    assert type(developer.credential).__name__ == "DefaultAzureCredential"
    assert "az login" in developer.description and not developer.claims_renewal
