"""A small local Functions host: serves a v2-programming-model ``FunctionApp`` over real HTTP on loopback,
with its timer and queue triggers, routed by the app's own metadata.

The Functions host (Core Tools) cannot be installed here; with it installed, ``func start`` runs the same
app instead.
"""

from __future__ import annotations

from offline.localhost.config import HostConfig, HostConfigError
from offline.localhost.host import LocalHost
from offline.localhost.triggers import QueueClientFactory, QueueClientLike

__all__ = ["HostConfig", "HostConfigError", "LocalHost", "QueueClientFactory", "QueueClientLike"]
