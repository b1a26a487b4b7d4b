"""Forwarding failure alerts to a webhook (Teams, Slack or generic JSON), at least once.

A transient failure (no connection, timeout, 408, 429, 5xx) is retried a few times within the
invocation with exponential backoff, honouring ``Retry-After``; then the invocation fails and the
Functions host retries the message after ``visibilityTimeout``, up to ``maxDequeueCount`` times
(host.json), before moving it to ``<queue>-poison``, where ``pipeline-gateway alerts`` shows it.

Each alert delivered is recorded in the alert history, which is also how a repeat of the same alert
id (the poller's rare resend) is recognised and not posted twice. A crash between the post and the
record can still repeat one post; generic receivers get the alert id in a header to drop it.

Webhook URLs of Teams and Slack carry their secret in the path (and Workflows URLs in the query), so
records and messages name only the scheme, host and port, and the path, query and any password are
registered with the log scrubber (``shared/telemetry/logs.py``): urllib3's DEBUG line, which prints the
request path, shows ``***`` instead. Redirects are never followed: a 3xx would re-post the signed alert
to wherever the answer points (plain HTTP, an internal address), so it is a refusal, not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from shared.alerts.formats import FORMATS
from shared.alerts.model import Alert
from shared.runs.model import utcnow
from shared.telemetry.logs import register_secret

if TYPE_CHECKING:
    import requests

    from shared.alerts.history import AlertHistory
    from shared.config.settings import Settings

_LOGGER = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
ALERT_ID_HEADER = "X-Gateway-Alert-Id"
SIGNATURE_TOLERANCE_SECONDS = 300

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
MAX_WAIT_SECONDS = 30.0  # a longer Retry-After is left to the host's redelivery
TIMEOUT = (5.0, 15.0)  # connect, read
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` HMAC of ``{timestamp}.{body}``: the timestamp is signed so a capture cannot be replayed later."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver checks: a valid signature over a timestamp no older than five minutes."""
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= SIGNATURE_TOLERANCE_SECONDS and hmac.compare_digest(given, signature(secret, timestamp, body))


class DeliveryFailed(Exception):
    """The webhook did not take the alert; the message goes back to the queue (or on to poison)."""


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int


_session_lock = threading.Lock()
_session: requests.Session | None = None


def _shared_session() -> requests.Session:
    """One pooled session per process, so warm invocations reuse the TLS connection."""
    global _session
    with _session_lock:
        if _session is None:
            import requests

            _session = requests.Session()
            _session.headers["User-Agent"] = "pipeline-gateway-forwarder/1"
        return _session


class Webhook:
    def __init__(
        self,
        url: str,
        message_format: str,
        secret: str | None = None,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
    ) -> None:
        self._url = url
        self._format = message_format
        self._secret = secret
        parts = urlsplit(url)
        for part in (parts.path, parts.query, parts.password or ""):
            register_secret(part)
        self._session = session
        self._sleep = sleep
        self._attempts = attempts
        self._backoff = backoff_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> Webhook:
        return cls(settings.forward_url, settings.forward_format, settings.forward_secret)

    @property
    def destination(self) -> str:
        """Format and origin: enough to say where alerts go, never the secret path or credentials."""
        return f"{self._format} {origin(self._url)}"

    def post(self, alert: Alert) -> Delivery:
        import requests

        body = json.dumps(FORMATS[self._format](alert), separators=(",", ":")).encode()
        session = self._session or _shared_session()
        problem = ""
        for attempt in range(1, self._attempts + 1):
            headers = self._headers(alert, body)
            wait = self._backoff * 2 ** (attempt - 1)
            try:
                response = session.post(self._url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__} from {self.destination}"
            else:
                if 200 <= response.status_code < 300:
                    return Delivery(response.status_code, attempt)
                problem = f"{self.destination} answered {response.status_code}"
                if 300 <= response.status_code < 400:
                    to = origin(urljoin(self._url, response.headers.get("Location") or "")) or "nowhere"
                    raise DeliveryFailed(
                        f"{problem}, a redirect to {to}; not followed and not retried (the alert would go "
                        "elsewhere): set GATEWAY_FORWARD_URL to the webhook's own address"
                    )
                if response.status_code not in RETRYABLE:
                    raise DeliveryFailed(f"{problem}; not retried (a request the webhook refuses)")
                wait = max(wait, _retry_after(response.headers.get("Retry-After")))
            if attempt < self._attempts:
                if wait > MAX_WAIT_SECONDS:
                    break
                _LOGGER.warning("Forwarding %s: %s; retrying in %.1fs", alert.alertId, problem, wait)
                self._sleep(wait)
        raise DeliveryFailed(f"{problem}; the message will be retried")

    def _headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", ALERT_ID_HEADER: alert.alertId}
        if self._secret and self._format == "json":
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        return headers


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: never its ``user:password@``, path or query; "" when it has no host."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = parts.port
    except ValueError:
        port = None  # not a port: left out rather than echoed
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: the doubling backoff will do


def forward(history: AlertHistory, alert: Alert, webhook: Webhook) -> bool:
    """Posts the alert unless its id was forwarded before; records it. False for a repeat."""
    alert_id = alert.alertId
    earlier = history.get(alert_id)
    if earlier is not None and earlier.forwarded_at is not None:
        _LOGGER.info("Alert %s was forwarded at %s; dropping the repeat", alert_id, earlier.forwarded_at)
        return False
    delivery = webhook.post(alert)
    _LOGGER.info(
        "Forwarded alert %s to %s (%d, try %d)", alert_id, webhook.destination, delivery.status, delivery.attempts
    )
    history.record_forwarded(alert, to=webhook.destination, at=utcnow())
    return True
