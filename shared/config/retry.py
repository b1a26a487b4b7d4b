"""The automatic retry policy of a catalog entry: how often a failed run is rerun, how long the gateway
waits before each rerun, and which failures are worth it.

A policy sits on any access rule (a pipeline entry, a Spark pool, whatever a kind lets callers start)
or, as the default for all of them, on the target. ``attempts`` counts every run of the chain, the
first included: ``3`` is the run and at most two automatic reruns. Which failures match ``on`` is the
kind's business (``RunKind.retryable``): for pipelines, the failed activities' ``failureType`` and
``errorCode``; for Spark batches, Livy's error ``source`` and ``errorCode``.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

MAX_ATTEMPTS = 10
MAX_DELAY_SECONDS = 24 * 3600


class _Policy(BaseModel):
    # The catalog's conventions (shared.config.targets.CatalogModel), which imports this module.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RetryOn(_Policy):
    """The failures a policy retries: a failure matches when its type or its code is listed (types and
    codes compare case-insensitively). A run is retried only when every failure it reports matches."""

    failure_types: tuple[str, ...] = ()
    error_codes: tuple[str, ...] = ()

    @field_validator("failure_types", "error_codes")
    @classmethod
    def _names(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not value.strip() or len(value) > 128 or not value.isprintable():
                raise ValueError("each entry is a failure type or error code: 1 to 128 printable characters")
        return values

    @model_validator(mode="after")
    def _something(self) -> RetryOn:
        if not self.failure_types and not self.error_codes:
            raise ValueError("name at least one of failureTypes or errorCodes (leave 'on' out to retry any failure)")
        return self

    def matches(self, failure_type: str, error_code: str) -> bool:
        types = {t.casefold() for t in self.failure_types}
        codes = {c.casefold() for c in self.error_codes}
        return (bool(failure_type) and failure_type.casefold() in types) or (
            bool(error_code) and error_code.casefold() in codes
        )


class RetryPolicy(_Policy):
    """``attempts`` runs at most; before rerun n+1, wait ``delaySeconds * backoff^(n-1)``, at most
    ``maxDelaySeconds``. ``notify`` also queues an info-level ``retrying`` alert for each rerun."""

    attempts: int = Field(ge=1, le=MAX_ATTEMPTS)
    delay_seconds: int = Field(default=60, ge=0, le=MAX_DELAY_SECONDS)
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    max_delay_seconds: int = Field(default=3600, ge=0, le=MAX_DELAY_SECONDS)
    on: RetryOn | None = None
    notify: bool = False

    @field_validator("max_delay_seconds")
    @classmethod
    def _bounded(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("delay_seconds", 0):
            raise ValueError("must be at least delaySeconds")
        return value

    def delay(self, failed_attempt: int) -> timedelta:
        """How long to wait after attempt ``failed_attempt`` (1 for the first run) failed."""
        seconds = self.delay_seconds * self.backoff ** max(0, failed_attempt - 1)
        return timedelta(seconds=min(float(self.max_delay_seconds), seconds))
