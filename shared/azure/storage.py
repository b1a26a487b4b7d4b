"""What the Storage SDK clients (the registry's table, the queues) share: options, errors, limits.

azure-core's defaults retry a refused connection for many seconds; a caller waiting on a start request
is better served by a quick 503 with the poller repairing state later, so retries are fewer and shorter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigurationError, GatewayError, IdentityUnavailable, StorageUnavailable, first_line

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient

    from shared.config.settings import Settings

_LOGGER = logging.getLogger(__name__)

CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_connect": 2,
    "retry_backoff_factor": 0.3,
    "retry_backoff_max": 3,
    "connection_timeout": 5,
    "read_timeout": 30,
}


# Table string properties hold at most 32K UTF-16 characters; longer text is split across several.
PROPERTY_CHUNK = 30_000


def split_property(text: str) -> list[str]:
    """``text`` in pieces that each fit a Table string property."""
    return [text[i : i + PROPERTY_CHUNK] for i in range(0, len(text), PROPERTY_CHUNK)]


def table_client(settings: Settings, credential: TokenCredential) -> TableClient:
    """The gateway's table: identity-based when the endpoint is set, else from a connection string."""
    from azure.data.tables import TableClient

    if settings.table_service_uri:
        return TableClient(
            endpoint=settings.table_service_uri, table_name=settings.runs_table, credential=credential, **CLIENT_OPTIONS
        )
    if settings.storage_connection_string:
        return TableClient.from_connection_string(
            settings.storage_connection_string, table_name=settings.runs_table, **CLIENT_OPTIONS
        )
    raise ConfigurationError(
        "No run registry: set GATEWAY_STORAGE__tableServiceUri (identity-based) or GATEWAY_STORAGE (connection string)."
    )


class ConcurrentUpdate(Exception):
    """The record changed since it was read; re-read and decide again."""


class AlreadyExists(Exception):
    """An insert found the row already there."""


@contextmanager
def storage_errors(action: str, what: str, role: str, *, moved_is_conflict: bool = False) -> Iterator[None]:
    """Turns the Storage SDK's errors into the gateway's: ETag and insert conflicts into signals the
    caller acts on, everything else into the right 503 (``storage_failure``).

    ``moved_is_conflict``: for conditional writes, a row that is gone (404) was moved or removed by
    another writer since it was read: a lost race like a 412, not an outage.
    """
    from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError

    try:
        yield
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ResourceModifiedError) or status == 412 or (moved_is_conflict and status == 404):
            raise ConcurrentUpdate(action) from exc
        if isinstance(exc, ResourceExistsError) or status == 409:
            raise AlreadyExists(action) from exc
        _LOGGER.warning("Storage failed to %s: %s", action, type(exc).__name__)
        raise storage_failure(exc, what, role) from exc


def storage_failure(exc: Exception, what: str, role: str) -> GatewayError:
    """The gateway error for a Storage SDK failure that is not a conflict.

    A credential that cannot get a token, Storage refusing the identity, and Storage being down call
    for different fixes, so each says which.
    """
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return IdentityUnavailable(
            f"The gateway's identity could not get a Storage token for {what}: {first_line(exc)}"
        )
    if isinstance(exc, HttpResponseError) and status in (401, 403):
        return StorageUnavailable(
            f"Storage refused the gateway's identity for {what} ({status}); it needs {role} on the storage account."
        )
    return StorageUnavailable(f"{what[0].upper()}{what[1:]} is unavailable; try again shortly.")
