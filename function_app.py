"""Pipeline Gateway's Azure Functions app (Python v2 programming model).

Thin on purpose: the logic lives in ``shared``; this file builds the app and registers blueprints.
"""

import azure.functions as func

from shared.context import app_context
from shared.functions import forwarder, http, poller
from shared.telemetry.logs import configure_logging
from shared.telemetry.tracing import configure_telemetry

configure_logging()
# Application Insights, only when its connection string is set, with the app's own identity.
configure_telemetry(app_context().settings, lambda: app_context().tokens)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http.bp)  # the HTTP API
app.register_functions(poller.bp)  # the poller's timer and per-target queue trigger
app.register_functions(forwarder.bp)  # the alert forwarder, only when GATEWAY_FORWARD_URL is set
