"""HTTP functions over real HTTP: routing, function keys, the request and response as the host makes them.

Where the host and the Python worker shape what the app sees, this follows them: header names reach the
app lower-cased, repeated headers and query parameters joined with commas; on the way out, a missing
Content-Type is derived from ``mimetype``/``charset``, ``Set-Cookie`` may repeat, any other header
repeated keeps its last value (the worker turns response headers into a dict), and a handler's exception
becomes a bare 500.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

from offline.localhost.config import HostConfig
from offline.localhost.invoke import Invoker
from offline.localhost.metadata import HttpFunction
from offline.localhost.routes import Match, Router, split_path

logger = logging.getLogger("offline.localhost")

KEY_HEADER = "x-functions-key"
KEY_PARAM = "code"
_NOT_PASSED_ON = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True)
class Keys:
    """The host's keys: ``master`` opens everything, ``default`` (the host key) and a function's own key
    open ``function``-level functions."""

    master: str
    default: str
    functions: Mapping[str, str]

    def accept(self, function: HttpFunction, key: str | None) -> bool:
        if function.auth_level == "anonymous":
            return True
        if not key:
            return False
        accepted = [self.master]
        if function.auth_level == "function":
            accepted += [self.default, self.functions.get(function.name, "")]
        return any(candidate and hmac.compare_digest(key, candidate) for candidate in accepted)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False


def _text(status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    return Reply(status, [("Content-Type", "text/plain; charset=utf-8"), *headers], text.encode())


def _joined(pairs: Sequence[tuple[str, str]], separator: str) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]}{separator}{value}" if name in joined else value
    return joined


class HttpDispatcher:
    """Turns one HTTP request into a function call and its result into a reply."""

    def __init__(self, functions: Sequence[HttpFunction], config: HostConfig, keys: Keys, invoke: Invoker):
        self._router = Router((function.route, function) for function in functions)
        self._prefix = [segment.lower() for segment in split_path(config.route_prefix)]
        self._keys = keys
        self._invoke = invoke

    def dispatch(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, origin: str) -> Reply:
        path, _, query = target.partition("?")
        segments = split_path(path)
        if [s.lower() for s in segments[: len(self._prefix)]] != self._prefix:
            return _text(404, "Not Found")
        matches = self._router.matches(segments[len(self._prefix) :])
        if not matches:
            return _text(404, "Not Found")
        chosen = next((m for m in matches if method in m.target.methods), None)
        if chosen is None:
            allowed = sorted(set().union(*(m.target.methods for m in matches)))
            return _text(405, "Method Not Allowed", [("Allow", ", ".join(allowed))])
        params = _joined(parse_qsl(query, keep_blank_values=True), ",")
        request_headers = _joined([(name.lower(), value) for name, value in headers], ", ")
        key = request_headers.get(KEY_HEADER) or params.get(KEY_PARAM)
        if not self._keys.accept(chosen.target, key):
            return Reply(401)
        request = func.HttpRequest(method, origin + target, headers=request_headers, params=params,
                                   route_params=chosen.values, body=body)  # fmt: skip
        return self._call(chosen, request)

    def _call(self, chosen: Match[HttpFunction], request: func.HttpRequest) -> Reply:
        function = chosen.target
        try:
            result = self._invoke(function.handler, function.param, request)
            return _reply(func.HttpResponse(result) if isinstance(result, str) else result)
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed)", function.name)
            return Reply(500)


def _reply(response: object) -> Reply:
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"an HTTP function must return HttpResponse or str, not {type(response).__name__}")
    last: dict[str, tuple[str, str]] = {}
    cookies: list[tuple[str, str]] = []
    for name, value in response.headers.items():
        lowered = name.lower()
        if lowered == "set-cookie":
            cookies.append((name, value))
        elif lowered not in _NOT_PASSED_ON:
            last[lowered] = (name, value)
    if "content-type" not in last:
        charset = f"; charset={response.charset}" if response.mimetype.startswith("text/") else ""
        last["content-type"] = ("Content-Type", f"{response.mimetype}{charset}")
    return Reply(response.status_code, [*last.values(), *cookies], response.get_body())


class LocalHttpServer(ThreadingHTTPServer):
    """Threaded, HTTP/1.1 keep-alive; ``close_connections`` ends kept-alive connections on stop, which
    ``shutdown()`` alone leaves open.

    The listen backlog is a real server's, not socketserver's 5: with dozens of callers connecting at once
    (a load test, clients reconnecting after a restart) a backlog of 5 overflows and the kernel resets
    connections the host would have served a moment later.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], dispatcher: HttpDispatcher, max_body_bytes: int, verbose: bool):
        self.dispatcher = dispatcher
        self.max_body_bytes = max_body_bytes
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)
        self.authority = f"{address[0]}:{self.server_port}"

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is no news: keep it out of the console."""
        logger.debug("error serving %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PipelineGatewayLocalHost"
    timeout = 130  # seconds an idle kept-alive connection stays open, as Kestrel's default
    disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms delayed-ACK stalls
    server: LocalHttpServer

    def _serve(self) -> None:
        body = self._read_body()
        if isinstance(body, Reply):
            self._send(body)
            return
        origin = f"http://{self.headers.get('Host') or self.server.authority}"
        reply = self.server.dispatcher.dispatch(self.command, self.path, self.headers.items(), body, origin)
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, PROPFIND, ...) is routed too: the host answers 404 or 405, not 501."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes | Reply:
        limit = self.server.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit():
            return Reply(400, close=True)
        if int(length) > limit:
            return _too_large(limit)
        return self.rfile.read(int(length))

    def _read_chunked(self, limit: int) -> bytes | Reply:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                return Reply(400, close=True)
            if size == 0:
                while self.rfile.readline(8192).strip():
                    pass  # trailers carry nothing the app sees
                return b"".join(chunks)
            total += size
            if total > limit:
                return _too_large(limit)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            logger.info("%s %s", self.address_string(), format % args)


def _too_large(limit: int) -> Reply:
    """413 and close: the unread body cannot be skipped on a kept-alive connection."""
    reply = _text(413, f"Request body larger than {limit} bytes")
    reply.close = True
    return reply
