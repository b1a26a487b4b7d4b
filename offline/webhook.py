"""An emulated webhook receiver (a Teams, Slack or generic endpoint) for the demo and the tests.

It listens on 127.0.0.1 over HTTPS with the offline stack's certificate, so the forwarder runs with
certificate verification on, as against the real services. It records every POST, checks the HMAC
signature when given the secret (and refuses a bad one with 401, as a real receiver should), and can
be told to fail the next requests, to show retries and the poison queue.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from offline.tls import TlsFiles
from shared.alerts.forwarding import verify

PATH = "/hooks/alerts"
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    signature_valid: bool | None  # None: no secret to check against

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: int | None


class WebhookReceiver:
    def __init__(self, tls: TlsFiles, *, secret: str | None = None, port: int = 0) -> None:
        self.secret = secret
        self._tls = tls
        self._port = port
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._failure: _Failure | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the webhook receiver is not running")
        return f"https://127.0.0.1:{self._server.server_address[1]}{PATH}"

    @property
    def received(self) -> list[Received]:
        """Every request, answered or refused, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        return [item for item in self.received if 200 <= item.status < 300]

    def fail_next(self, count: int, status: int = 503, retry_after: int | None = None) -> None:
        """Answers the next ``count`` requests with ``status`` (and ``Retry-After``) instead of 200."""
        with self._lock:
            self._failure = _Failure(count, status, retry_after)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The accepted requests once there are ``count`` of them; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(accepted := [r for r in self._received if 200 <= r.status < 300]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(accepted)} of {count} webhook posts arrived in {timeout:g}s")
                self._lock.wait(left)
            return accepted

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(413)
                    return
                body = self.rfile.read(length)
                status, retry_after, valid = receiver._answer(dict(self.headers), body)
                with receiver._lock:
                    receiver._received.append(Received(self.path, dict(self.headers), body, status, valid))
                    receiver._lock.notify_all()
                payload = b'{"ok":true}' if status == 200 else b'{"error":"refused"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the receiver's record is the log."""

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self._tls.cert), str(self._tls.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook", daemon=True)
        self._thread.start()
        return self

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, int | None, bool | None]:
        valid = None if self.secret is None else verify(self.secret, headers, body)
        if valid is False:
            return 401, None, valid
        with self._lock:
            failure = self._failure
            if failure is not None and failure.remaining > 0:
                failure.remaining -= 1
                return failure.status, failure.retry_after, valid
        return 200, None, valid

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
