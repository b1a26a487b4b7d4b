"""Failure alerts: the typed message, how it is built and rendered, its history, and forwarding to a webhook."""
