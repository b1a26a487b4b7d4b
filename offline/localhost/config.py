"""What the local host reads besides the app: ``host.json`` and app settings.

Only the options that change what the app sees are honoured; the rest of ``host.json`` (logging, the
extension bundle, ...) means nothing without the real host and is ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SETTING = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


class HostConfigError(ValueError):
    """host.json, an app setting or a function's metadata is something the host would refuse."""


def parse_timespan(text: str) -> float | None:
    """Seconds in a .NET ``TimeSpan`` (``[d.]hh:mm:ss[.fffffff]``), as host.json and timers write them."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds, fraction = match.groups()
    whole = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


def resolve_settings(value: str, environ: Mapping[str, str]) -> str:
    """Replaces ``%NAME%`` with the app setting ``NAME``, failing like the host on a missing one."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise HostConfigError(f"'%{name}%' does not resolve to a value: app setting {name} is not set")
        return environ[name]

    return _SETTING.sub(setting, value)


@dataclass(frozen=True)
class HostConfig:
    """The host.json options the local host honours, with the Functions host's defaults."""

    route_prefix: str = "api"
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    batch_size: int = 16
    message_encoding: str = "base64"

    @classmethod
    def load(cls, path: Path | None) -> HostConfig:
        if path is None:
            return cls()
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise HostConfigError(f"cannot read {path}: {error}") from error
        extensions: dict[str, Any] = document.get("extensions") or {}
        http: dict[str, Any] = extensions.get("http") or {}
        queues: dict[str, Any] = extensions.get("queues") or {}
        defaults = cls()
        config = cls(
            route_prefix=str(http.get("routePrefix", defaults.route_prefix)).strip("/"),
            max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
            visibility_timeout=_timespan_option(queues, "visibilityTimeout", defaults.visibility_timeout),
            batch_size=int(queues.get("batchSize", defaults.batch_size)),
            message_encoding=str(queues.get("messageEncoding", defaults.message_encoding)).lower(),
        )
        if config.message_encoding not in ("base64", "none"):
            raise HostConfigError(f"{path}: messageEncoding must be 'base64' or 'none'")
        if config.max_dequeue_count < 1 or not 1 <= config.batch_size <= 32:
            raise HostConfigError(f"{path}: maxDequeueCount must be >= 1 and batchSize 1..32")
        return config


def _timespan_option(options: Mapping[str, Any], name: str, default: float) -> float:
    if name not in options:
        return default
    seconds = parse_timespan(str(options[name]))
    if seconds is None:
        raise HostConfigError(f"host.json: {name} must be a TimeSpan like 00:00:30, not {options[name]!r}")
    return seconds
