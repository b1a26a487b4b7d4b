"""Options shared by the Storage SDK clients (registry table, queues).

azure-core's defaults retry a refused connection for many seconds; a caller waiting on a start request
is better served by a quick 503 with the poller repairing state later, so retries are fewer and shorter.
"""

from __future__ import annotations

from typing import Any

CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_connect": 2,
    "retry_backoff_factor": 0.3,
    "retry_backoff_max": 3,
    "connection_timeout": 5,
    "read_timeout": 30,
}
