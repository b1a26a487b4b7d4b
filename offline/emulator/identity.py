"""The managed-identity endpoint (App Service protocol) and the bearer-token checks of every API.

Tokens are JWT-shaped and HS256-signed with a per-instance key, so only this emulator's tokens pass
its own checks, while Azurite (which reads claims but ignores signatures) accepts them for Storage.
Audience and expiry are checked like Azure does, against the emulated clock: a token for ARM is
refused by Synapse and the reverse, and advancing the clock past ``exp`` makes ARM answer
``ExpiredAuthenticationToken``. The exact Synapse data-plane wording is not published; the codes
and messages used for it here are plausible, not verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from .clock import Clock, arm_timestamp
from .config import IdentitySpec
from .server import ApiError, Counters, Request, Response, Route

API_VERSION = "2019-08-01"
SKEW_S = 5.0  # Azure tolerates a little clock skew; more than a few seconds would hide expiry bugs

ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
SYNAPSE_AUDIENCES = ("https://dev.azuresynapse.net", "https://dev.azuresynapse.net/")
FABRIC_AUDIENCES = ("https://api.fabric.microsoft.com", "https://api.fabric.microsoft.com/")
# Azure ML run history: the swagger's scope is ml.azure.com; older clients and samples send an ARM token
# (aml-runhistory-notes.md), so both are accepted.
AML_AUDIENCES = ("https://ml.azure.com", "https://ml.azure.com/", *ARM_AUDIENCES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Rejection:
    """Why a bearer token was refused, in terms both the ARM and data-plane wordings can use."""

    reason: str  # missing | malformed | signature | audience | expired | not_yet_valid
    audience: str = ""
    not_before: float = 0.0
    expires: float = 0.0
    now: float = 0.0


class TokenAuthority:
    """Mints and verifies the emulator's tokens."""

    def __init__(self, clock: Clock, tenant_id: str, identity: IdentitySpec, lifetime_s: int) -> None:
        self.clock = clock
        self.tenant_id = tenant_id
        self.identity = identity
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)
        self._header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "offline-emulator"}).encode())

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def mint(self, resource: str) -> tuple[str, int]:
        """A token for ``resource`` (used verbatim as ``aud``) and its expiry in epoch seconds."""
        now = int(self.clock.now())
        expires = now + self.lifetime_s
        # Azurite checks nbf against the real clock; once tests move emulated time forward, a token
        # issued "now" would not be valid there yet, so it is dated from the earlier of the two clocks.
        issued = min(now, int(time.time()))
        claims = {
            "aud": resource,
            "iss": self.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "aio": secrets.token_urlsafe(16),
            "appid": self.identity.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": self.identity.principal_id,
            "rh": secrets.token_urlsafe(12),
            "sub": self.identity.principal_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            "xms_mirid": self.identity.resource_id,
        }
        signing_input = f"{self._header}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}", expires

    def verify(self, authorization: str | None, audiences: tuple[str, ...]) -> Rejection | None:
        """``None`` when the header carries a valid token for one of ``audiences``."""
        if not authorization:
            return Rejection("missing")
        scheme, _, token = authorization.partition(" ")
        parts = token.strip().split(".")
        if scheme.lower() != "bearer" or len(parts) != 3:
            return Rejection("malformed")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            claims: Any = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return Rejection("malformed")
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            return Rejection("signature")
        now = self.clock.now()
        audience = str(claims.get("aud", ""))
        if audience not in audiences:
            return Rejection("audience", audience=audience)
        expires, not_before = float(claims.get("exp", 0)), float(claims.get("nbf", 0))
        if now > expires + SKEW_S:
            return Rejection("expired", expires=expires, now=now)
        if not_before > now + SKEW_S:
            return Rejection("not_yet_valid", not_before=not_before, now=now)
        return None

    def challenge(self) -> str:
        return f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", error="invalid_token"'


def arm_rejection(rejection: Rejection) -> tuple[str, str]:
    """ARM's code and message for a refused token."""
    if rejection.reason == "missing":
        return "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
    if rejection.reason == "malformed":
        return (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )
    if rejection.reason == "signature":
        return "InvalidAuthenticationToken", "The access token is invalid."
    if rejection.reason == "audience":
        allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
        return (
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{rejection.audience}'. "
            f"It should exactly match with one of the allowed audiences {allowed}.",
        )
    if rejection.reason == "expired":
        return (
            "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{arm_timestamp(rejection.expires)}' is earlier than current "
            f"UTC time '{arm_timestamp(rejection.now)}'.",
        )
    return (
        "InvalidAuthenticationToken",
        f"The access token validity start UTC time '{arm_timestamp(rejection.not_before)}' is later than "
        f"current UTC time '{arm_timestamp(rejection.now)}'.",
    )


def data_plane_rejection(rejection: Rejection, audiences: tuple[str, ...] = SYNAPSE_AUDIENCES) -> tuple[str, str]:
    """Data-plane (Synapse, Azure ML) code and message for a refused token (plausible wording, unverified)."""
    if rejection.reason == "missing":
        return "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
    if rejection.reason == "malformed":
        return "AuthenticationFailed", "Authentication failed. The bearer token is not in a valid format."
    if rejection.reason == "signature":
        return "InvalidAuthenticationToken", "Token Authentication failed - IDX10511: Signature validation failed."
    if rejection.reason == "audience":
        return (
            "InvalidAuthenticationTokenAudience",
            f"Token Authentication failed - IDX10214: Audience validation failed. Audiences: "
            f"'{rejection.audience}'. Did not match: validationParameters.ValidAudiences: "
            f"'{', '.join(audiences)}'.",
        )
    if rejection.reason == "expired":
        return (
            "ExpiredAuthenticationToken",
            f"Token Authentication failed - IDX10223: Lifetime validation failed. The token is expired. "
            f"ValidTo: '{arm_timestamp(rejection.expires)}', Current time: '{arm_timestamp(rejection.now)}'.",
        )
    return (
        "InvalidAuthenticationToken",
        f"Token Authentication failed - IDX10222: Lifetime validation failed. The token is not yet valid. "
        f"ValidFrom: '{arm_timestamp(rejection.not_before)}', Current time: '{arm_timestamp(rejection.now)}'.",
    )


def fabric_rejection(rejection: Rejection) -> tuple[str, str]:
    """Fabric's code and message for a refused token: ``TokenExpired`` when it expired, otherwise
    the spec's ``Unauthorized`` (\"Missing or invalid authentication\"); wording plausible, unverified."""
    if rejection.reason == "expired":
        return "TokenExpired", "Access token has expired, resubmit with a new access token"
    if rejection.reason == "audience":
        return (
            "Unauthorized",
            f"The access token was issued for '{rejection.audience}', not for '{FABRIC_AUDIENCES[0]}'.",
        )
    if rejection.reason == "missing":
        return "Unauthorized", "Missing authentication: the 'Authorization' header is missing."
    return "Unauthorized", "Invalid authentication: the access token is not valid."


class BearerCheck:
    """The authorizer the dispatcher runs before every ARM, Synapse, Livy and Azure ML data-plane handler.

    Log downloads (family ``anonymous``) carry their own SAS signature instead, checked by their handler.
    """

    def __init__(self, authority: TokenAuthority) -> None:
        self.authority = authority

    def __call__(self, route: Route, request: Request) -> None:
        audiences: tuple[str, ...]
        if route.family == "arm":
            audiences, describe = ARM_AUDIENCES, arm_rejection
        elif route.family in ("synapse", "livy"):
            audiences, describe = SYNAPSE_AUDIENCES, data_plane_rejection
        elif route.family == "fabric":
            audiences, describe = FABRIC_AUDIENCES, fabric_rejection
        elif route.family == "aml":
            audiences, describe = AML_AUDIENCES, partial(data_plane_rejection, audiences=AML_AUDIENCES)
        else:
            return
        rejection = self.authority.verify(request.headers.get("authorization"), audiences)
        if rejection is None:
            return
        code, message = describe(rejection)
        challenge = f'{self.authority.challenge()}, error_description="{message.replace(chr(34), chr(39))}"'
        raise ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


class IdentityEndpoint:
    """``GET /msi/token``: the App Service managed-identity protocol, api-version 2019-08-01.

    The emulated app has only its user-assigned identity, so a request that names no identity is
    refused like App Service does for an app without a system-assigned identity.
    """

    def __init__(self, authority: TokenAuthority, identity_header: str, counters: Counters) -> None:
        self.authority = authority
        self.identity_header = identity_header
        self.counters = counters

    def get_token(self, request: Request) -> Response:
        supplied = request.headers.get("x-identity-header", "")
        if not hmac.compare_digest(supplied.encode(), self.identity_header.encode()):
            raise ApiError(
                401, "Unauthorized", "The request is not authorized: X-IDENTITY-HEADER is missing or invalid."
            )
        version = request.query.get("api-version")
        if version != API_VERSION:
            raise ApiError(400, "BadRequest", f"The api-version '{version or ''}' is not supported. Use {API_VERSION}.")
        resource = request.query.get("resource", "")
        if not resource:
            raise ApiError(400, "BadRequest", "Required query parameter 'resource' is missing.")
        identity = self.authority.identity
        selectors = {
            "client_id": identity.client_id.lower(),
            "principal_id": identity.principal_id.lower(),
            "object_id": identity.principal_id.lower(),
            "mi_res_id": identity.resource_id.lower(),
        }
        given = {name: request.query[name] for name in selectors if request.query.get(name)}
        if len(given) != 1 or any(selectors[name] != value.lower() for name, value in given.items()):
            raise ApiError(400, "BadRequest", "Unable to load the proper Managed Identity.")
        self.counters.incr(f"ManagedIdentity_GetToken:{resource}")
        token, expires = self.authority.mint(resource)
        return Response(
            200,
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
                "not_before": str(int(min(time.time(), self.authority.clock.now()))),
            },
        )


def new_identity_header() -> str:
    return uuid.uuid4().hex
