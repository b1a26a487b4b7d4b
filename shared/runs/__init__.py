"""The run record, its registry in Azure Tables, idempotency, and the service that starts, cancels and reruns runs."""
