"""The gateway's one identity, and the tokens it gets for each audience.

One credential per process (so azure-identity's cache works) and one cached token per scope, renewed
a few minutes before expiry or after azure-identity's suggested refresh time. azure-identity is
imported only when the first token is needed, which keeps it off the cold-start path.

A token Azure refuses before we expected (revoked, clocks apart, or a claims challenge) must be
replaced by a *new* one, not by the same token from azure-identity's cache: msal's managed-identity
client serves its cached token until it believes it expired and fetches anew only when given a claims
challenge, so the renewal after a refusal passes one (the resource's own challenge when it sent one).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from shared.config.settings import Settings
from shared.errors import IdentityUnavailable, first_line

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

_LOGGER = logging.getLogger(__name__)

# Renew this long before expiry, like azure-core's BearerTokenCredentialPolicy.
REFRESH_MARGIN_SECONDS = 300


class TokenSource(Protocol):
    """What the upstream clients need: a bearer token for a scope, and a way to report a refused one."""

    def token(self, scope: str) -> str: ...

    def refused(self, scope: str, token: str, claims: str | None = None) -> None: ...


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_on: float
    refresh_on: float


class TokenProvider:
    """Thread-safe per-scope token cache over an azure-core ``TokenCredential``.

    ``claims_renewal``: the credential fetches a new token when given claims (managed identity). A
    developer's sign-in through DefaultAzureCredential refuses claims it was not challenged with, so
    without it only a resource's own claims challenge is passed on.
    """

    def __init__(self, credential: TokenCredential, *, description: str, claims_renewal: bool = False) -> None:
        self._credential = credential
        self._description = description
        self._claims_renewal = claims_renewal
        self._lock = threading.Lock()
        self._tokens: dict[str, _Cached] = {}
        self._renewing: dict[str, str | None] = {}  # scope -> claims for the next fetch

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenProvider:
        """The provider of the identity the settings name; the composition root keeps one per process."""
        identity = create_credential(settings)
        return cls(identity.credential, description=identity.description, claims_renewal=identity.claims_renewal)

    @property
    def credential(self) -> TokenCredential:
        """The credential for SDK clients (Storage): its failures name the identity, like ours."""
        return _ExplainingCredential(self._credential, self._description)

    def token(self, scope: str) -> str:
        cached = self._tokens.get(scope)
        if cached is not None and time.time() < cached.refresh_on:
            return cached.token
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is None or time.time() >= cached.refresh_on:
                cached = self._fetch(scope, fallback=cached)
                self._tokens[scope] = cached
            return cached.token

    def refused(self, scope: str, token: str, claims: str | None = None) -> None:
        """Azure refused ``token``: the next call for ``scope`` gets a new one from the identity endpoint.

        Requests that raced with the same refused token renew it once: whoever reports it after it
        was replaced changes nothing. ``claims`` is the resource's claims challenge, if it sent one.
        """
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is not None and cached.token != token:
                return
            self._tokens.pop(scope, None)
            if claims is None and self._claims_renewal:
                claims = issued_after_now()
            self._renewing[scope] = claims

    def _fetch(self, scope: str, fallback: _Cached | None) -> _Cached:
        claims = self._renewing.get(scope)
        try:
            credential = _ExplainingCredential(self._credential, self._description)
            info = credential.get_token(scope, claims=claims) if claims else credential.get_token(scope)
        except IdentityUnavailable:
            if fallback is not None and time.time() < fallback.expires_on - 30:
                _LOGGER.warning("Token refresh for %s failed; using the cached token until it expires", scope)
                return fallback
            raise
        if scope in self._renewing:
            del self._renewing[scope]
            _LOGGER.info("Renewed the token for %s after Azure refused it", scope)
        margin = min(REFRESH_MARGIN_SECONDS, max(0.0, (info.expires_on - time.time()) / 2))
        return _Cached(info.token, float(info.expires_on), info.expires_on - margin)


def issued_after_now() -> str:
    """A claims request for a token issued from now on: the form Azure's own challenges take when
    tokens were revoked (continuous access evaluation)."""
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}})


class _ExplainingCredential:
    """Turns a credential's failure into ``IdentityUnavailable`` naming the identity and the scope."""

    def __init__(self, credential: TokenCredential, description: str) -> None:
        self._credential = credential
        self._description = description

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.exceptions import AzureError

        try:
            return self._credential.get_token(*scopes, **kwargs)
        except (AzureError, ValueError) as exc:
            scope = " ".join(scopes)
            raise IdentityUnavailable(
                f"{self._description} could not get a token for {scope}: {first_line(exc)}",
                extensions={"scope": scope},
            ) from exc


class Identity(NamedTuple):
    credential: TokenCredential
    description: str  # names the identity and what to check when it fails
    claims_renewal: bool  # see TokenProvider


def create_credential(settings: Settings) -> Identity:
    """The credential the settings call for, with a description operators can act on."""
    client_id = settings.client_id
    if client_id:
        from azure.identity import ManagedIdentityCredential

        description = (
            f"Managed identity {client_id} (check that this user-assigned identity is "
            "attached to the function app and AZURE_CLIENT_ID is its client id)"
        )
        return Identity(ManagedIdentityCredential(client_id=client_id), description, claims_renewal=True)
    from azure.identity import DefaultAzureCredential

    description = (
        "DefaultAzureCredential (AZURE_CLIENT_ID is unset; sign in with 'az login' or "
        "set AZURE_CLIENT_ID to the app's user-assigned identity)"
    )
    return Identity(
        DefaultAzureCredential(exclude_interactive_browser_credential=True), description, claims_renewal=False
    )
