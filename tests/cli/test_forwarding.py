"""Alert forwarding end to end: the queue trigger, the webhook, retries, the poison queue, and the CLI.

The forwarder runs on the local Functions host (its queue-trigger semantics: leases, dequeue counts,
``<queue>-poison``) with a host.json that retries at once, and posts over HTTPS to the emulated
receiver with certificate verification on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from offline.localhost import LocalHost
from offline.stack import OfflineStack
from offline.webhook import WebhookReceiver
from shared.alerts.forwarding import ALERT_ID_HEADER, DeliveryFailed, Webhook, forward
from shared.alerts.model import Alert
from shared.azure.queues import JsonQueue
from shared.config.settings import Settings
from shared.context import AppContext, app_context
from shared.functions import forwarder as forwarding_functions
from shared.functions.index import registered_functions
from tests.cli.conftest import Cli
from tests.conftest import install_context

HOST_JSON = {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 2, "visibilityTimeout": "00:00:00"}}}


@pytest.fixture
def receiver(stack: OfflineStack) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(stack.tls) as started:
        yield started


@contextmanager
def forwarder(stack: OfflineStack, names: dict[str, str], tmp_path: Path, **settings: str) -> Iterator[AppContext]:
    """The app's forwarding function on a local host, with forwarding settings of the test's own."""
    context = install_context(stack, names, settings=settings)
    app = func.FunctionApp()
    app.register_functions(forwarding_functions.blueprint(context.settings))
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps(HOST_JSON))

    def queue_client(queue: str, connection: str) -> QueueClient:
        return QueueClient(
            account_url=os.environ[f"{connection}__queueServiceUri"],
            queue_name=queue,
            credential=app_context().tokens.credential,
        )

    host = LocalHost(
        app,
        host_json=host_json,
        environ={**os.environ, **names},
        queue_client_factory=queue_client,
        queue_poll_interval=0.1,
    )
    host.start()
    try:
        yield context
    finally:
        host.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_forwarding_off_registers_nothing_so_the_queue_stays_for_on_call() -> None:
    off = func.FunctionApp()
    off.register_functions(forwarding_functions.blueprint(Settings({})))
    on = func.FunctionApp()
    on.register_functions(forwarding_functions.blueprint(Settings({"GATEWAY_FORWARD_URL": "https://hooks.example/x"})))

    assert registered_functions(off) == ()
    (function,) = registered_functions(on)
    (binding,) = json.loads(function.get_function_json())["bindings"]
    assert function.get_function_name() == "forward_alert"
    assert (binding["type"], binding["queueName"], binding["connection"]) == (
        "queueTrigger",
        "%GATEWAY_ALERT_QUEUE%",
        "GATEWAY_STORAGE",
    )


def test_a_failure_reaches_teams_as_a_card_and_the_cli_reads_it_from_the_history(
    cli: Cli,
    stack: OfflineStack,
    names: dict[str, str],
    tmp_path: Path,
    receiver: WebhookReceiver,
    fail_and_alert: Callable[..., list[str]],
    adf: str,
) -> None:
    settings = {"GATEWAY_FORWARD_URL": receiver.url, "GATEWAY_FORWARD_FORMAT": "teams"}
    with forwarder(stack, names, tmp_path, **settings) as context:
        failed = fail_and_alert((adf, "copy_sales"))[0]
        (post,) = receiver.wait_for(1)
        wait_until(lambda: context.alert_history.get(f"{failed}:failed") is not None)

    card = post.json()["attachments"][0]["content"]
    assert card["body"][0]["text"] == f"Run failed: {adf}/copy_sales"
    assert card["actions"][0]["title"] == "Open in ADF Studio"
    assert post.headers[ALERT_ID_HEADER] == f"{failed}:failed"
    assert context.alerts.count() == 0, "the forwarder consumed the queue"
    record = context.alert_history.get(f"{failed}:failed")
    assert record is not None and record.forwarded_to == f"teams {receiver.url.split('/hooks')[0]}"

    listed = cli("alerts", env=settings)
    row = next(line for line in listed.stdout.splitlines() if failed in line)
    assert listed.returncode == 0 and "forwarded" in row and "copy_sales" in row
    assert "forwarded-alerts history (forwarding is on)" in listed.stderr


def test_a_refused_alert_ends_on_the_poison_queue_where_the_cli_shows_it_until_acknowledged(
    cli: Cli,
    stack: OfflineStack,
    names: dict[str, str],
    tmp_path: Path,
    receiver: WebhookReceiver,
    fail_and_alert: Callable[..., list[str]],
    adf: str,
) -> None:
    receiver.secret = "right"
    settings = {
        "GATEWAY_FORWARD_URL": receiver.url,
        "GATEWAY_FORWARD_FORMAT": "json",
        "GATEWAY_FORWARD_SECRET": "wrong",
    }
    with forwarder(stack, names, tmp_path, **settings) as context:
        poison = JsonQueue.connect(
            queue_name=f"{context.settings.alert_queue}-poison",
            endpoint=context.settings.queue_service_uri,
            connection_string=None,
            credential=context.tokens.credential,
        )
        failed = fail_and_alert((adf, "copy_sales"))[0]
        wait_until(lambda: poison.count() == 1)

    assert [item.status for item in receiver.received] == [401, 401], "one try per dequeue: 401 is not retried"
    assert receiver.received[0].signature_valid is False
    listed = cli("alerts", env=settings)
    row = next(line for line in listed.stdout.splitlines() if failed in line)
    assert "undelivered" in row

    acked = cli("ack", failed, env=settings)
    assert acked.returncode == 0 and f"1 from {poison.name}" in acked.stdout
    assert poison.count() == 0


def test_transient_failures_are_retried_with_backoff_and_retry_after(
    stack: OfflineStack,
    receiver: WebhookReceiver,
    context: AppContext,
    fail_and_alert: Callable[..., list[str]],
    adf: str,
) -> None:
    fail_and_alert((adf, "copy_sales"))
    alert = Alert.model_validate(context.alerts.peek()[0])
    slept: list[float] = []
    receiver.secret = "right"
    webhook = Webhook(receiver.url, "json", "right", sleep=slept.append)

    receiver.fail_next(2, status=503)
    first = webhook.post(alert)
    receiver.fail_next(1, status=429, retry_after=3)
    second = webhook.post(alert)
    receiver.fail_next(3, status=502)
    with pytest.raises(DeliveryFailed, match="answered 502; the message will be retried"):
        webhook.post(alert)

    assert (first.attempts, second.attempts) == (3, 2)
    assert slept == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert all(item.signature_valid for item in receiver.received), "every try is signed afresh"
    assert receiver.accepted[0].json() == context.alerts.peek()[0], "the generic format is the alert as on the queue"


def test_a_repeat_of_a_forwarded_alert_is_not_posted_again(
    receiver: WebhookReceiver, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    fail_and_alert((adf, "copy_sales"))
    alert = Alert.model_validate(context.alerts.peek()[0])
    webhook = Webhook(receiver.url, "slack")

    assert forward(context.alert_history, alert, webhook) is True
    repeat = alert.model_copy(update={"raisedAt": "2026-11-22T09:00:00Z"})
    assert forward(context.alert_history, repeat, webhook) is False
    assert len(receiver.received) == 1
