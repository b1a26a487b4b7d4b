"""Options shared by the Storage SDK clients (registry table, queues).

azure-core's defaults retry a refused connection for many seconds; a caller waiting on a start request
is better served by a quick 503 with the poller repairing state later, so retries are fewer and shorter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.errors import GatewayError, IdentityUnavailable, StorageUnavailable

_LOGGER = logging.getLogger(__name__)

CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_connect": 2,
    "retry_backoff_factor": 0.3,
    "retry_backoff_max": 3,
    "connection_timeout": 5,
    "read_timeout": 30,
}


class ConcurrentUpdate(Exception):
    """The record changed since it was read; re-read and decide again."""


class AlreadyExists(Exception):
    """An insert found the row already there."""


@contextmanager
def storage_errors(action: str, what: str, role: str) -> Iterator[None]:
    """Turns the Storage SDK's errors into the gateway's: ETag and insert conflicts into signals the
    caller acts on, everything else into the right 503 (``storage_failure``)."""
    from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError

    try:
        yield
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ResourceModifiedError) or status == 412:
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
            f"The gateway's identity could not get a Storage token for {what}: {_first_line(exc)}"
        )
    if isinstance(exc, HttpResponseError) and status in (401, 403):
        return StorageUnavailable(
            f"Storage refused the gateway's identity for {what} ({status}); it needs {role} on the storage account."
        )
    return StorageUnavailable(f"{what[0].upper()}{what[1:]} is unavailable; try again shortly.")


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
