"""The alert forwarder: a queue trigger on the failure queue that posts each alert to a webhook.

It exists only when ``GATEWAY_FORWARD_URL`` is set, read once at indexing like the HTTP auth level:
a queue trigger that is registered takes the messages whatever its code then decides, so "off" must
mean "not registered". The trade-off is that turning forwarding on or off is an app-setting change,
which restarts the app in Azure anyway. Off, the alerts stay on the queue for on-call to read there;
on, they are consumed and ``pipeline-gateway alerts`` reads the forwarded history in the registry.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.config.settings import Settings
from shared.telemetry import tracing as telemetry

_LOGGER = logging.getLogger(__name__)


def blueprint(settings: Settings) -> func.Blueprint:
    """The forwarder's blueprint for these settings: empty when forwarding is off."""
    bp = func.Blueprint()  # type: ignore[no-untyped-call]
    if not settings.forwarding:
        return bp

    @bp.function_name("forward_alert")
    @bp.queue_trigger(arg_name="msg", queue_name="%GATEWAY_ALERT_QUEUE%", connection="GATEWAY_STORAGE")
    def forward_alert(msg: func.QueueMessage) -> None:
        from shared.alerts.forwarding import Webhook, forward
        from shared.alerts.model import read_alert
        from shared.context import app_context

        telemetry.begin()
        try:
            alert = read_alert(json.loads(msg.get_body()))
        except ValueError:
            alert = None
        if alert is None:
            # Never dropped: after the host's retries it waits on the poison queue, where the CLI shows it.
            telemetry.forward_failed("", msg.dequeue_count or 0)
            raise ValueError(f"Message {msg.id} on the alert queue is not an alert")
        alert_id = alert.alertId
        context = app_context()
        try:
            forward(context.alert_history, alert, Webhook.from_settings(context.settings))
        except Exception as exc:
            _LOGGER.error("Alert %s not forwarded (try %s of the message): %s", alert_id, msg.dequeue_count, exc)
            telemetry.forward_failed(alert.target, msg.dequeue_count or 0)
            raise

    return bp


bp = blueprint(Settings())
