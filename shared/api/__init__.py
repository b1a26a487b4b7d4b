"""The HTTP edge: handlers, problem responses, request bodies, views and the OpenAPI document."""
