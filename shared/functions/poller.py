"""The poller's functions: a singleton timer, and optionally a queue trigger per target.

With ``GATEWAY_POLL_FANOUT=true`` the timer only enqueues one message per target and Azure Functions
scales the queue trigger out; otherwise the timer polls every target itself. Both run the same
``Poller.poll_target``.
"""

from __future__ import annotations

import json
import logging
import time

import azure.functions as func

from shared.context import app_context
from shared.errors import GatewayError
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("poll_runs")
@bp.timer_trigger(arg_name="timer", schedule="%GATEWAY_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def poll_runs(timer: func.TimerRequest) -> None:
    from shared.poller.poller import Poller

    telemetry.begin()
    context = app_context()
    if context.settings.poll_fanout:
        for target in context.catalog.targets:
            context.poll_queue.send({"target": target.name})
        _LOGGER.info("Queued poll work for %d targets", len(context.catalog.targets))
        with telemetry.operation_span("sweep"):
            Poller(context).sweep()  # retention is not per target: the timer does it
        return
    with telemetry.operation_span("poll_runs"):
        report = Poller(context).tick()
    telemetry.poll_finished(report.seconds, fanned_out=False)
    _LOGGER.info(
        "Poll tick: %d targets in %.1fs%s",
        len(report.targets),
        report.seconds,
        " (out of time)" if report.out_of_time else "",
    )


@bp.function_name("poll_target")
@bp.queue_trigger(arg_name="msg", queue_name="%GATEWAY_POLL_QUEUE%", connection="GATEWAY_STORAGE")
def poll_target(msg: func.QueueMessage) -> None:
    from shared.poller.poller import Poller

    telemetry.begin()
    try:
        target = json.loads(msg.get_body().decode("utf-8"))["target"]
    except (ValueError, KeyError, TypeError):
        _LOGGER.error("Dropping a malformed poll message %s", msg.id)
        return
    started = time.monotonic()
    try:
        with telemetry.operation_span("poll_target"):
            report = Poller(app_context()).poll_target(str(target))
    except GatewayError as exc:
        _LOGGER.error("Poll message for %r dropped: %s", target, exc.detail)
        return
    telemetry.poll_finished(time.monotonic() - started, fanned_out=True)
    if report.error:
        raise RuntimeError(f"Polling {target} failed; the message will be retried")
