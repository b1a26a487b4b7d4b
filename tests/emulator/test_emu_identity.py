"""The managed-identity endpoint, driven by the real azure-identity/msal stack."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from offline.emulator import Emulator

from .conftest import ARM, SYNAPSE, RawClient


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def token_path(info: dict[str, Any], resource: str, client_id: str | None = None, api: str = "2019-08-01") -> str:
    path = f"/msi/token?api-version={api}&resource={quote(resource, safe='')}"
    return path + (f"&client_id={client_id}" if client_id else "")


def test_token_response_and_claims(raw: RawClient, info: dict[str, Any], emu: Emulator) -> None:
    reply = raw(
        "GET",
        token_path(info, "https://storage.azure.com", info["client_id"]),
        auth=None,
        headers={"X-IDENTITY-HEADER": info["identity_header"]},
    )
    assert reply.status == 200
    body = reply.body
    assert body["resource"] == "https://storage.azure.com"
    assert body["token_type"] == "Bearer"
    assert body["client_id"] == info["client_id"]
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    token = claims(body["access_token"])
    assert token["aud"] == "https://storage.azure.com"
    assert token["iss"] == f"https://sts.windows.net/{info['tenant_id']}/"
    assert token["tid"] == info["tenant_id"]
    assert token["appid"] == info["client_id"]
    assert token["oid"] == token["sub"] == info["principal_id"]
    assert token["xms_mirid"] == info["identity_resource_id"]
    assert "/Microsoft.ManagedIdentity/userAssignedIdentities/" in token["xms_mirid"]
    assert token["nbf"] == token["iat"] <= emu.clock.now()
    assert token["exp"] == int(body["expires_on"])
    assert abs(token["exp"] - emu.clock.now() - 24 * 3600) < 5  # lifetime runs on the emulated clock
    assert body["access_token"].count(".") == 2


@pytest.mark.parametrize("header", [None, "wrong"])
def test_identity_header_is_required(raw: RawClient, info: dict[str, Any], header: str | None) -> None:
    headers = {"X-IDENTITY-HEADER": header} if header else {}
    reply = raw("GET", token_path(info, ARM, info["client_id"]), auth=None, headers=headers)
    assert reply.status == 401
    assert reply.body["statusCode"] == 401 and "X-IDENTITY-HEADER" in reply.body["message"]


@pytest.mark.parametrize(
    ("client_id", "api", "message"),
    [
        ("11111111-1111-1111-1111-111111111111", "2019-08-01", "Unable to load the proper Managed Identity."),
        (None, "2019-08-01", "Unable to load the proper Managed Identity."),
        ("CLIENT", "2017-09-01", "api-version"),
    ],
)
def test_identity_refusals(raw: RawClient, info: dict[str, Any], client_id: str | None, api: str, message: str) -> None:
    wanted = info["client_id"] if client_id == "CLIENT" else client_id
    reply = raw(
        "GET", token_path(info, ARM, wanted, api), auth=None, headers={"X-IDENTITY-HEADER": info["identity_header"]}
    )
    assert reply.status == 400
    assert reply.body["statusCode"] == 400
    assert message in reply.body["message"]


def test_azure_identity_caches_and_counts_per_resource(credential: ManagedIdentityCredential, emu: Emulator) -> None:
    emu.reset_counters()
    tokens = {credential.get_token(f"{ARM}/.default").token for _ in range(3)}
    assert len(tokens) == 1
    assert claims(tokens.pop())["aud"] == ARM
    credential.get_token(f"{SYNAPSE}/.default")
    counters = emu.counters
    assert counters["ManagedIdentity_GetToken"] == 2
    assert counters[f"ManagedIdentity_GetToken:{ARM}"] == 1
    assert counters[f"ManagedIdentity_GetToken:{SYNAPSE}"] == 1


def test_azure_identity_surfaces_a_refusal(info: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", info["identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    credential = ManagedIdentityCredential(client_id=info["client_id"], connection_verify=info["ca_bundle"])
    with pytest.raises(ClientAuthenticationError):
        credential.get_token(f"{ARM}/.default")


def test_token_lifetime_is_configurable(tls_dir: Any) -> None:
    from dataclasses import replace

    from offline.emulator import EmulatorConfig

    with Emulator(replace(EmulatorConfig.default(), token_lifetime_s=600), tls_dir=tls_dir) as short:
        token, expires = short.authority.mint(ARM)
        assert expires - claims(token)["iat"] == 600
