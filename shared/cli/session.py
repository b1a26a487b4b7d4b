"""Where the CLI's configuration comes from, and who is at the keyboard.

Configuration is the app's: the Functions host turns ``local.settings.json``'s ``Values`` into the
environment, so the CLI does the same with ``--settings`` (over the environment), then applies
explicit flags over both. The identity follows the app's rules (``AZURE_CLIENT_ID`` set: that
managed identity; unset: ``DefaultAzureCredential``, i.e. the developer's ``az login``).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.config.settings import SETTINGS, Settings
from shared.context import AppContext
from shared.errors import ConfigurationError, GatewayError

STORAGE_SCOPE = "https://storage.azure.com/.default"
# Claims that name a person, most specific first; an application is named by its id.
_HUMAN_CLAIMS = ("upn", "unique_name", "preferred_username", "email", "name")


def settings_file_values(path: Path) -> dict[str, str]:
    """The non-blank ``Values`` of a ``local.settings.json`` (blank ones mean "unset" there too)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Settings file {path} cannot be read: {exc}") from None
    values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigurationError(f"Settings file {path} has no 'Values' object (the local.settings.json format).")
    return {str(name): str(value) for name, value in values.items() if str(value).strip()}


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` pairs, each naming a setting the app declares: a typo is a ValueError, not a no-op."""
    known = {setting.name for setting in SETTINGS}
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            raise ValueError(f"{pair!r}: expected NAME=VALUE with NAME one of the app settings (README, Configuration)")
        overrides[name] = value
    return overrides


def apply_configuration(file_values: Mapping[str, str], overrides: Mapping[str, str]) -> Settings:
    """Sets this process's environment like the host would, then reads the settings from it.

    The environment, not only ``Settings``, because azure-identity and requests read some values
    (``IDENTITY_ENDPOINT``, ``REQUESTS_CA_BUNDLE``) from there. An empty override unsets a value,
    e.g. ``--client-id ''`` to use your Azure CLI login instead of a managed identity.
    """
    os.environ.update(file_values)
    for name, value in overrides.items():
        if value.strip():
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    return Settings()


class Session:
    """One CLI invocation's view of the app: its context, built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context: AppContext | None = None

    @property
    def context(self) -> AppContext:
        if self._context is None:
            self._context = AppContext(self.settings)
        return self._context

    def operator(self) -> str:
        """Who acts, for the audit trail: the signed-in person, else the OS user and the identity's id."""
        local = f"{getpass.getuser()}@{socket.gethostname()}"
        try:
            claims = _claims(self.context.tokens.token(STORAGE_SCOPE))
        except GatewayError:
            return local
        for name in _HUMAN_CLAIMS:
            if claims.get(name):
                return str(claims[name])
        principal = claims.get("appid") or claims.get("oid")
        return f"{local} (identity {principal})" if principal else local


def _claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: only to name who acts, never to decide anything."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
