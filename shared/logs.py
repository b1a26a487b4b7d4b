"""Logging setup: correlation ids on every line, and secrets scrubbed before anything is written.

The Functions host collects the root logger; adding filters to it here covers every module,
including the Azure SDKs, whose HTTP logging could otherwise print headers or SAS signatures.
"""

from __future__ import annotations

import logging
import re

from shared.telemetry import CorrelationFilter

# Bearer tokens, JWTs, function keys and SAS signatures, wherever they appear in a message.
_SECRETS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|((?:code|sig|x-functions-key|ocp-apim-subscription-key|x-identity-header)[=:]\s*['\"]?)[^&\s'\",]+"
)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_configured = False


def configure_logging() -> None:
    """Installs the filters once per process on the root logger and its handlers."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    for item in (CorrelationFilter(), RedactingFilter()):
        root.addFilter(item)
        for handler in root.handlers:
            handler.addFilter(item)
    # The SDKs log every request at INFO; keep them to warnings.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("msal").setLevel(logging.WARNING)
