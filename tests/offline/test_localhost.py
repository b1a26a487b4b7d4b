"""The local Functions host, serving a small app over real HTTP, with timers and queue triggers."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from offline.azurite import Azurite
from offline.localhost import HostConfigError, LocalHost
from offline.tls import TlsFiles

MASTER_KEY = "master-key-for-tests"
HOST_KEY = "host-key-for-tests"
START_RUN_KEY = "start-run-key-for-tests"
ENVIRON = {"TICK_SCHEDULE": "0 */5 * * * *", "ALERT_QUEUE": "unused"}


class Events:
    """What the test app's functions saw, shared with the test thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, list[object]] = {}

    def record(self, name: str, value: object) -> None:
        with self.lock:
            self.calls.setdefault(name, []).append(value)

    def of(self, name: str) -> list[object]:
        with self.lock:
            return list(self.calls.get(name, []))


def build_app(events: Events) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    anonymous = func.AuthLevel.ANONYMOUS

    def echo(req: func.HttpRequest, **extra: object) -> func.HttpResponse:
        document = {"route": dict(req.route_params), "params": dict(req.params), **extra}
        return func.HttpResponse(json.dumps(document), mimetype="application/json")

    @app.route(route="runs/{id:int}", methods=["GET"], auth_level=anonymous)
    def get_run(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, function="get_run")

    @app.route(route="runs/latest", methods=["GET"], auth_level=anonymous)
    def latest_run(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, function="latest_run")

    @app.route(route="targets/{target}/pipelines/{pipeline:alpha}/runs", methods=["POST"])
    def start_run(req: func.HttpRequest) -> func.HttpResponse:
        body = req.get_json()
        return func.HttpResponse(
            json.dumps({"route": dict(req.route_params), "body": body}),
            status_code=202,
            headers={"Location": f"/api/runs/{body['n']}"},
            mimetype="application/json",
        )

    @app.route(route="items/{name?}", auth_level=anonymous)
    def item(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    @app.route(auth_level=anonymous)
    def ping(req: func.HttpRequest) -> str:
        return "pong"

    @app.function_name("renamed")
    @app.route(auth_level=anonymous)
    def python_name(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("by its function name")

    @app.route(route="boom", auth_level=anonymous)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("the secret cause")

    @app.route(route="async/{word}", auth_level=anonymous)
    async def async_echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"async {req.route_params['word']}")

    @app.route(route="admin/reset", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def reset(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="headers", methods=["GET", "POST"], auth_level=anonymous)
    def headers(req: func.HttpRequest) -> func.HttpResponse:
        events.record("headers", dict(req.headers))
        response = func.HttpResponse(b"\x00\x01", mimetype="application/octet-stream")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        response.headers.add("X-Twice", "first")
        response.headers.add("X-Twice", "second")
        response.headers["X-Request-Url"] = req.url
        return response

    @app.route(route="body", methods=["POST"], auth_level=anonymous)
    def body(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"{len(req.get_body())} bytes", charset="latin-1")

    @app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        events.record("tick", timer)

    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
    def on_startup(timer: func.TimerRequest) -> None:
        events.record("on_startup", timer)

    @app.queue_trigger(arg_name="msg", queue_name="%ALERT_QUEUE%", connection="GATEWAY_STORAGE")
    def on_alert(msg: func.QueueMessage) -> None:
        events.record("on_alert", msg)
        if msg.get_body() == b"fail":
            raise ValueError("cannot handle this alert")

    return app


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def host(events: Events) -> Iterator[LocalHost]:
    local = LocalHost(
        build_app(events),
        master_key=MASTER_KEY,
        function_key=HOST_KEY,
        function_keys={"start_run": START_RUN_KEY},
        max_body_bytes=1024,
        environ=ENVIRON,
    )
    with local:
        yield local


# -- routing -------------------------------------------------------------------------------------


def test_route_parameters_and_query_reach_the_handler(host: LocalHost) -> None:
    response = requests.get(f"{host.api_url}/runs/42?view=full&tag=a&tag=b", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"route": {"id": "42"}, "params": {"view": "full", "tag": "a,b"}, "function": "get_run"}


def test_a_literal_segment_wins_over_a_parameter(host: LocalHost) -> None:
    assert requests.get(f"{host.api_url}/runs/latest", timeout=5).json()["function"] == "latest_run"


@pytest.mark.parametrize(
    "path",
    ["/api/runs/abc", "/api/runs/99999999999", "/api/nothing", "/runs/42", "/api/targets/t/pipelines/p1/runs"],
)
def test_no_matching_route_is_a_plain_text_404(host: LocalHost, path: str) -> None:
    response = requests.request("POST" if "targets" in path else "GET", host.url + path, timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")


def test_a_route_without_the_method_is_a_405_naming_the_allowed_ones(host: LocalHost) -> None:
    response = requests.delete(f"{host.api_url}/runs/42", timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_an_optional_parameter_may_be_left_out(host: LocalHost) -> None:
    assert requests.get(f"{host.api_url}/items/box", timeout=5).json()["route"] == {"name": "box"}
    assert requests.get(f"{host.api_url}/items", timeout=5).json()["route"] == {}


def test_without_a_route_the_function_name_is_the_route(host: LocalHost) -> None:
    ping = requests.get(f"{host.api_url}/ping", timeout=5)
    renamed = requests.get(f"{host.api_url}/RENAMED/", timeout=5)

    assert (ping.status_code, ping.text, ping.headers["Content-Type"]) == (200, "pong", "text/plain; charset=utf-8")
    assert renamed.text == "by its function name"
    assert requests.get(f"{host.api_url}/python_name", timeout=5).status_code == 404


def test_host_json_sets_the_route_prefix(events: Events, tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))

    with LocalHost(build_app(events), host_json=tmp_path / "host.json", environ=ENVIRON) as local:
        assert local.api_url == local.url
        assert requests.get(f"{local.url}/ping", timeout=5).text == "pong"
        assert requests.get(f"{local.url}/api/ping", timeout=5).status_code == 404


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "where", "status"),
    [
        (None, None, 401),
        ("wrong", "header", 401),
        (START_RUN_KEY, "header", 202),
        (START_RUN_KEY, "query", 202),
        (HOST_KEY, "header", 202),
        (MASTER_KEY, "query", 202),
    ],
)
def test_function_level_needs_its_key_the_host_key_or_the_master_key(
    host: LocalHost, key: str | None, where: str | None, status: int
) -> None:
    headers = {"x-functions-key": key} if key and where == "header" else {}
    params = {"code": key} if key and where == "query" else {}

    response = requests.post(
        f"{host.api_url}/targets/adf-prod/pipelines/nightly/runs",
        json={"n": 7},
        headers=headers,
        params=params,
        timeout=5,
    )

    assert response.status_code == status
    if status == 401:
        assert response.content == b""
    else:
        assert response.json() == {"route": {"target": "adf-prod", "pipeline": "nightly"}, "body": {"n": 7}}
        assert response.headers["Location"] == "/api/runs/7"


@pytest.mark.parametrize(("key", "status"), [(START_RUN_KEY, 401), (HOST_KEY, 401), (MASTER_KEY, 204)])
def test_admin_level_needs_the_master_key(host: LocalHost, key: str, status: int) -> None:
    response = requests.post(f"{host.api_url}/admin/reset", headers={"x-functions-key": key}, timeout=5)

    assert response.status_code == status
    assert response.content == b""


def test_keys_not_given_are_generated_and_exposed(events: Events) -> None:
    with LocalHost(build_app(events), environ=ENVIRON) as local:
        keys = {local.master_key, local.function_key, local.function_keys["start_run"]}
        url = f"{local.api_url}/targets/t/pipelines/p/runs"

        assert len(keys) == 3 and all(len(key) >= 32 for key in keys)
        assert requests.post(url, json={"n": 1}, timeout=5).status_code == 401
        assert requests.post(url, json={"n": 1}, params={"code": local.function_key}, timeout=5).status_code == 202


# -- handlers, requests and responses ------------------------------------------------------------


def test_a_failing_handler_is_a_bare_500_and_a_log_line(host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="offline.localhost"):
        response = requests.get(f"{host.api_url}/boom", timeout=5)

    assert response.status_code == 500
    assert response.content == b""
    assert "the secret cause" not in response.text
    assert any("Functions.boom" in record.getMessage() and record.exc_info for record in caplog.records)


def test_an_async_handler_runs_on_the_event_loop(host: LocalHost) -> None:
    assert requests.get(f"{host.api_url}/async/hello", timeout=5).text == "async hello"


def test_headers_round_trip(host: LocalHost, events: Events) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    connection.putrequest("GET", "/api/headers?x=1")
    connection.putheader("X-Custom", "one")
    connection.putheader("X-Custom", "two")
    connection.putheader("Authorization", "Bearer abc")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()

    seen = events.of("headers")[0]
    assert isinstance(seen, dict)
    assert seen["x-custom"] == "one, two"
    assert seen["authorization"] == "Bearer abc"
    assert body == b"\x00\x01"
    assert response.getheader("Content-Type") == "application/octet-stream"
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers.get_all("X-Twice") == ["second"]  # the worker keeps one value per header
    assert response.getheader("X-Request-Url") == f"http://127.0.0.1:{host.port}/api/headers?x=1"
    assert response.getheader("Content-Length") == "2"


def test_keep_alive_serves_several_requests_on_one_connection(host: LocalHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    bodies = []
    for word in ("one", "two", "three"):
        connection.request("GET", f"/api/async/{word}")
        response = connection.getresponse()
        assert response.getheader("Content-Length") is not None
        bodies.append(response.read())
    socket_used = connection.sock
    connection.close()

    assert bodies == [b"async one", b"async two", b"async three"]
    assert socket_used is not None


def test_a_body_over_the_limit_is_a_413(host: LocalHost) -> None:
    small = requests.post(f"{host.api_url}/body", data=b"x" * 1024, timeout=5)
    large = requests.post(f"{host.api_url}/body", data=b"x" * 1025, timeout=5)
    chunked = requests.post(f"{host.api_url}/body", data=iter([b"ab", b"cde"]), timeout=5)
    chunked_large = requests.post(f"{host.api_url}/body", data=iter([b"x" * 1000] * 2), timeout=5)

    assert (small.status_code, small.text) == (200, "1024 bytes")
    assert small.headers["Content-Type"] == "text/plain; charset=latin-1"
    assert large.status_code == 413
    assert (chunked.status_code, chunked.text) == (200, "5 bytes")
    assert chunked_large.status_code == 413


def test_a_head_request_gets_headers_only(host: LocalHost) -> None:
    response = requests.head(f"{host.api_url}/ping", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Length"] == "4"
    assert response.content == b""


def test_stop_closes_the_port_and_kept_alive_connections(events: Events) -> None:
    local = LocalHost(build_app(events), environ=ENVIRON)
    local.start()
    url = f"{local.api_url}/ping"
    with requests.Session() as session:
        assert session.get(url, timeout=5).text == "pong"

        local.stop()

        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=5)
    local.stop()  # twice is harmless


def test_the_host_leaves_the_apps_one_indexing_to_others(events: Events) -> None:
    """``get_functions()`` works once per app; the host must neither use that up nor need it."""
    app = build_app(events)
    with LocalHost(app, environ=ENVIRON) as local:
        assert requests.get(f"{local.api_url}/ping", timeout=5).text == "pong"

    assert len(app.get_functions()) == 14

    with LocalHost(app, environ=ENVIRON) as local:
        assert requests.get(f"{local.api_url}/ping", timeout=5).text == "pong"


def test_bindings_the_host_cannot_serve_are_refused_up_front() -> None:
    app = func.FunctionApp()

    @app.route(route="alert", auth_level=func.AuthLevel.ANONYMOUS)
    @app.queue_output(arg_name="out", queue_name="alerts", connection="GATEWAY_STORAGE")
    def alert(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse()

    with pytest.raises(HostConfigError, match="queue binding 'out'"):
        LocalHost(app)


# -- timers --------------------------------------------------------------------------------------


def test_timers_fire_every_override_interval(events: Events) -> None:
    with LocalHost(build_app(events), run_timers=True, timer_interval_override=0.1, environ=ENVIRON):
        wait_for(lambda: len(events.of("tick")) >= 3)

    ticks = events.of("tick")
    assert all(isinstance(t, func.TimerRequest) and not t.past_due for t in ticks)
    first, second = ticks[0], ticks[1]
    assert isinstance(first, func.timer.TimerRequest) and isinstance(second, func.timer.TimerRequest)
    assert set(first.schedule_status) == {"Last", "Next", "LastUpdated"}
    assert second.schedule_status["Last"] == first.schedule_status["LastUpdated"]


def test_run_on_startup_fires_once_at_start(events: Events) -> None:
    with LocalHost(build_app(events), run_timers=True, environ=ENVIRON):
        wait_for(lambda: len(events.of("on_startup")) == 1)
        time.sleep(0.2)

    assert len(events.of("on_startup")) == 1


def test_timers_do_not_run_unless_asked(events: Events) -> None:
    with LocalHost(build_app(events), environ={}):  # no schedule setting needed either
        time.sleep(0.2)

    assert events.of("on_startup") == []


def test_a_missing_schedule_setting_fails_start(events: Events) -> None:
    local = LocalHost(build_app(events), run_timers=True, environ={})

    with pytest.raises(HostConfigError, match="TICK_SCHEDULE"):
        local.start()
    local.stop()


def test_a_schedule_that_is_not_ncrontab_fails_start(events: Events) -> None:
    local = LocalHost(build_app(events), run_timers=True, environ={"TICK_SCHEDULE": "*/5 * * * *"})

    with pytest.raises(HostConfigError, match="six-field NCRONTAB"):
        local.start()


# -- queue triggers (with Azurite) ---------------------------------------------------------------


@pytest.fixture
def alert_queue(
    shared_azurite: Azurite, tls_files: TlsFiles, storage_credential: object, unique_name: Callable[[str], str]
) -> QueueClient:
    """A fresh queue, written with base64 encoding as app code sending to a queue trigger does."""
    client = QueueClient(
        account_url=shared_azurite.queue_endpoint,
        queue_name=unique_name("alerts"),
        credential=storage_credential,  # type: ignore[arg-type]
        connection_verify=str(tls_files.ca_bundle),
        message_encode_policy=TextBase64EncodePolicy(),
    )
    client.create_queue()
    return client


@pytest.fixture
def queue_host(
    events: Events, alert_queue: QueueClient, queue_client_for: Callable[[str], QueueClient], tmp_path: Path
) -> Iterator[LocalHost]:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"maxDequeueCount": 2}}}))
    connections: list[str] = []

    def factory(queue_name: str, connection: str) -> QueueClient:
        connections.append(connection)
        return queue_client_for(queue_name)

    environ = {**ENVIRON, "ALERT_QUEUE": alert_queue.queue_name}
    with LocalHost(
        build_app(events),
        queue_client_factory=factory,
        queue_poll_interval=0.05,
        host_json=tmp_path / "host.json",
        environ=environ,
    ) as local:
        yield local
    assert set(connections) == {"GATEWAY_STORAGE"}


def test_a_queue_message_is_decoded_handled_and_deleted(
    queue_host: LocalHost, alert_queue: QueueClient, events: Events
) -> None:
    alert_queue.send_message(json.dumps({"run": "r-1", "status": "Failed"}))

    wait_for(lambda: len(events.of("on_alert")) == 1)
    message = events.of("on_alert")[0]

    assert isinstance(message, func.QueueMessage)
    assert message.get_json() == {"run": "r-1", "status": "Failed"}
    assert message.dequeue_count == 1
    assert message.id and message.pop_receipt and message.insertion_time
    wait_for(lambda: alert_queue.get_queue_properties().approximate_message_count == 0)


def test_a_failing_message_moves_to_the_poison_queue_after_max_dequeue_count(
    queue_host: LocalHost, alert_queue: QueueClient, events: Events, queue_client_for: Callable[[str], QueueClient]
) -> None:
    poison = queue_client_for(f"{alert_queue.queue_name}-poison")
    alert_queue.send_message("fail")

    wait_for(lambda: _exists(poison) and len(poison.peek_messages()) == 1)

    attempts = [m for m in events.of("on_alert") if isinstance(m, func.QueueMessage)]
    assert [m.dequeue_count for m in attempts] == [1, 2]
    assert [m.content for m in poison.peek_messages()] == [base64.b64encode(b"fail").decode()]
    assert alert_queue.get_queue_properties().approximate_message_count == 0


def test_a_message_that_is_not_base64_ends_in_the_poison_queue(
    queue_host: LocalHost, alert_queue: QueueClient, events: Events, queue_client_for: Callable[[str], QueueClient]
) -> None:
    queue_client_for(alert_queue.queue_name).send_message("not base64!")
    poison = queue_client_for(f"{alert_queue.queue_name}-poison")

    wait_for(lambda: _exists(poison) and len(poison.peek_messages()) == 1)

    assert events.of("on_alert") == []
    assert [m.content for m in poison.peek_messages()] == ["not base64!"]


def _exists(queue: QueueClient) -> bool:
    try:
        queue.get_queue_properties()
    except ResourceNotFoundError:
        return False
    return True
