"""Telemetry: correlation ids, spans and metrics, and log records scrubbed of secrets."""
