"""Azure Functions bindings only: the HTTP routes, the poller's timer and queue triggers, the alert forwarder."""
