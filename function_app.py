"""Pipeline Gateway's Azure Functions app (Python v2 programming model).

Thin on purpose: the logic lives in ``shared``; this file builds the app and registers blueprints.
"""

import azure.functions as func

from shared import api, forwarding_functions, poller_functions
from shared.logs import configure_logging
from shared.telemetry import configure_telemetry

configure_logging()
configure_telemetry()  # Application Insights, only when its connection string is set

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(api.bp)
app.register_functions(poller_functions.bp)
app.register_functions(forwarding_functions.bp)
