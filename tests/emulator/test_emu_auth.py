"""Bearer checks like Azure's: audience per API, signature, expiry against the emulated clock."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.synapse.artifacts import ArtifactsClient

from offline.emulator import Emulator

from .conftest import ARM, SYNAPSE, RawClient, factory_path


def test_synapse_refuses_an_arm_token(raw: RawClient, workspace: dict[str, Any]) -> None:
    path = f"/synapse/{workspace['name']}/pipelineruns/x?api-version=2020-12-01"
    reply = raw("GET", path.replace(raw.emulator.base_url, ""), auth=ARM)
    assert reply.status == 401
    assert reply.body["error"]["code"] == "InvalidAuthenticationTokenAudience"
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('Bearer authorization_uri="https://login.microsoftonline.com/')
    assert 'error="invalid_token"' in challenge and "error_description=" in challenge


def test_arm_refuses_a_synapse_token_naming_allowed_audiences(raw: RawClient, factory: dict[str, Any]) -> None:
    reply = raw("GET", factory_path(factory), auth=SYNAPSE)
    assert reply.status == 401
    error = reply.body["error"]
    assert error["code"] == "InvalidAuthenticationTokenAudience"
    assert "'https://management.azure.com/'" in error["message"] and SYNAPSE in error["message"]


@pytest.mark.parametrize(
    "audience",
    [
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
    ],
)
def test_arm_accepts_its_audiences(raw: RawClient, factory: dict[str, Any], audience: str) -> None:
    assert raw("GET", factory_path(factory), auth=audience).status == 200


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "AuthenticationFailed"), ("Basic abc", "AuthenticationFailed"), ("Bearer a.b.c", "AuthenticationFailed")],
)
def test_missing_or_bad_token(raw: RawClient, factory: dict[str, Any], authorization: str | None, code: str) -> None:
    reply = raw("GET", factory_path(factory), auth=authorization)
    assert reply.status == 401
    assert reply.body["error"]["code"] == code
    assert "www-authenticate" in reply.headers


def test_forged_signature_is_refused(raw: RawClient, factory: dict[str, Any]) -> None:
    header, payload, signature = raw.token(ARM).split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    reply = raw("GET", factory_path(factory), auth=f"Bearer {forged}")
    assert reply.status == 401


def test_sdk_with_wrong_audience_gets_401(
    credential: ManagedIdentityCredential, workspace: dict[str, Any], info: dict[str, Any]
) -> None:
    client = ArtifactsClient(
        credential, workspace["endpoint"], credential_scopes=[f"{ARM}/.default"], connection_verify=info["ca_bundle"]
    )
    with pytest.raises(ClientAuthenticationError) as raised:
        client.pipeline_run.get_pipeline_run("anything")
    assert raised.value.status_code == 401


def test_expired_token_is_refused_by_arm(tls_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(tls_dir=tls_dir) as emulator:
        info = emulator.info
        monkeypatch.setenv("IDENTITY_ENDPOINT", info["identity_endpoint"])
        monkeypatch.setenv("IDENTITY_HEADER", info["identity_header"])
        credential = ManagedIdentityCredential(client_id=info["client_id"], connection_verify=info["ca_bundle"])
        factory = info["factories"][0]
        client = DataFactoryManagementClient(
            credential, factory["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
        )
        assert client.factories.get(factory["resource_group"], factory["name"]).name == factory["name"]
        emulator.clock.advance(24 * 3600 + 60)
        with pytest.raises(HttpResponseError) as raised:
            client.factories.get(factory["resource_group"], factory["name"])
        assert raised.value.status_code == 401
        assert raised.value.error is not None and raised.value.error.code == "ExpiredAuthenticationToken"
        assert "is earlier than current UTC time" in str(raised.value.error.message)
        # A fresh token minted at the emulated now is accepted again.
        fresh = ManagedIdentityCredential(client_id=info["client_id"], connection_verify=info["ca_bundle"])
        client = DataFactoryManagementClient(
            fresh, factory["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
        )
        assert client.factories.get(factory["resource_group"], factory["name"]) is not None
