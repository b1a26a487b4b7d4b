"""Logging setup: every record carries the correlation id and is scrubbed of secrets as it is made.

A log record factory rather than handler filters, because handlers come and go (the Functions worker's,
the OpenTelemetry handler Application Insights adds later, a test's) and a filter on the root logger
never sees records of child loggers: a record made anywhere, by any module including the Azure SDKs and
msal, is scrubbed before any handler sees it.

Patterns catch secrets by their shape; a secret without one (a Teams or Slack webhook URL's path, which
*is* its key) is registered by whoever holds it and redacted verbatim wherever it appears.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any

from shared.telemetry.tracing import correlation_id

# Bearer tokens, JWTs, function and subscription keys, SAS signatures, wherever they appear in a message.
_SECRETS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|(\b(?:code|sig|subscription-key)=)[^&\s'\",]+"  # in query strings
    r"|(\b(?:x-functions-key|ocp-apim-subscription-key|x-identity-header|access_token|refresh_token|client_secret)"
    r"['\"]?\s*[=:]\s*['\"]?)[^&\s'\",}]+"  # headers, JSON, key=value
)


# Registered secrets, longest first so a value containing another is redacted whole. Replaced as a
# tuple on each registration, so redaction reads it without a lock.
_known: tuple[str, ...] = ()
_known_lock = threading.Lock()
# Shorter values are not registered: they would blank ordinary words in every line and guard nothing.
MIN_SECRET_LENGTH = 8


def register_secret(value: str) -> None:
    """Redacts ``value`` from every log record made from now on, in this process."""
    global _known
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _known_lock:
        if value not in _known:
            _known = tuple(sorted({*_known, value}, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, "***")
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + "***", text)


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return  # arguments that do not fit the format: the handler reports it
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        cleaned = redact(text)
        if cleaned != text:
            record.exc_info, record.exc_text = None, cleaned  # formatters print exc_text as it is


_configured = False


def configure_logging() -> None:
    """Installs the record factory once per process and keeps the SDKs' request logging quiet."""
    global _configured
    if _configured:
        return
    _configured = True
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.correlation_id = correlation_id() or "-"
        _scrub(record)
        return record

    logging.setLogRecordFactory(scrubbed_record)
    # The SDKs log every request at INFO; keep them to warnings.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("msal").setLevel(logging.WARNING)
