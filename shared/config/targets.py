"""What every catalog entry has: a name, access rules limited to products, alert preferences.

Each kind of target (``shared.kinds``) extends ``TargetEntry`` with the fields that locate it in Azure;
the catalog (``shared.config.catalog``) collects the kinds' entry models into one discriminated union.
"""

from __future__ import annotations

import fnmatch
from abc import abstractmethod
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from shared.config import names
from shared.config.retry import RetryPolicy
from shared.errors import NotAllowed

GLOB_CHARACTERS = frozenset("*?[")


class CatalogModel(BaseModel):
    """Catalog JSON is camelCase, strict about unknown fields, and immutable once loaded."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def check_name(rule: names.NameRule, value: str) -> str:
    problem = rule.problem(value)
    if problem:
        raise ValueError(problem)
    return value


def optional_name(rule: names.NameRule, value: str | None) -> str | None:
    return None if value is None else check_name(rule, value)


class RateLimits(CatalogModel):
    """Caps on paid compute: runs in flight at once, and starts per minute (absent: no cap)."""

    max_runs_in_flight: int | None = Field(default=None, gt=0)
    starts_per_minute: int | None = Field(default=None, gt=0)


class AccessRule(RateLimits):
    """One allowed pipeline or Spark pool: an exact name or a glob, optionally limited to products, and
    optionally capped (``maxRunsInFlight``, ``startsPerMinute``, counted for this entry across products).

    Names match case-insensitively, as ADF and Synapse treat pipeline and pool names: a rule for
    ``copy_sales`` also governs ``copy_SALES``, which Azure would run as ``copy_sales``.

    ``retry`` reruns a failed run automatically (``shared.config.retry``), over the target's default.
    """

    match: str = Field(min_length=1, max_length=260)
    max_duration_minutes: int | None = Field(default=None, gt=0)
    products: tuple[str, ...] | None = None
    retry: RetryPolicy | None = None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name.casefold(), self.match.casefold())

    def canonical(self, name: str) -> str:
        """The name as Azure knows it: an exact rule's spelling (the operator's), else the caller's."""
        return self.match if self.is_exact else name

    def allows_product(self, product: str | None) -> bool:
        return self.products is None or (product is not None and product in self.products)

    @property
    def is_exact(self) -> bool:
        return not GLOB_CHARACTERS & set(self.match)


class PipelineRule(AccessRule):
    """An allowed pipeline, and optionally the parameter that carries the gateway's run id.

    With ``correlationParameter`` the gateway sets that parameter to its run id on every start, so a
    run whose create answer was lost is recognised by it exactly; the pipeline must declare it (the
    target's diagnostics check says when it does not).
    """

    correlation_parameter: str | None = Field(default=None, min_length=1, max_length=260)

    @field_validator("correlation_parameter")
    @classmethod
    def _parameter(cls, value: str | None) -> str | None:
        if value is not None and not value.isidentifier():
            raise ValueError("a pipeline parameter name: letters, digits and underscores, not starting with a digit")
        return value


def as_rules(value: Any) -> Any:
    """Lets operators write a bare name instead of ``{"match": name}``."""
    if isinstance(value, list):
        return [{"match": item} if isinstance(item, str) else item for item in value]
    return value


class TargetEntry(CatalogModel):
    """A factory, workspace or other place runs start; ``kind`` says which adapter serves it."""

    kind: str
    name: str
    pipelines: tuple[PipelineRule, ...] = ()
    alert_on_cancelled: bool | None = None
    retry: RetryPolicy | None = None  # the default of every rule on the target that sets none

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(names.TARGET, value)

    @field_validator("pipelines", mode="before")
    @classmethod
    def _pipelines(cls, value: Any) -> Any:
        return as_rules(value)

    @field_validator("pipelines")
    @classmethod
    def _pipeline_names(cls, rules: tuple[PipelineRule, ...]) -> tuple[PipelineRule, ...]:
        for rule in rules:
            if rule.is_exact:
                check_name(names.PIPELINE, rule.match)
        return rules

    def retry_for(self, rule: AccessRule) -> RetryPolicy | None:
        """The retry policy of runs started under ``rule``: its own, else the target's."""
        return rule.retry if rule.retry is not None else self.retry

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the target is, in an on-call engineer's words (``factory f (rg)``)."""

    @property
    @abstractmethod
    def resource_id(self) -> str | None:
        """The ARM resource id, when the catalog gives enough to build it."""

    @abstractmethod
    def described(self) -> dict[str, str]:
        """The kind's own fields a caller may see (``factoryName``...); never subscription ids."""


class ArmTargetEntry(TargetEntry):
    """An entry whose Azure resource the catalog locates by subscription and resource group, both
    required: the gateway addresses it through ARM by them."""

    subscription_id: str
    resource_group: str

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, value: str) -> str:
        return check_name(names.SUBSCRIPTION_ID, value)

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, value: str) -> str:
        return check_name(names.RESOURCE_GROUP, value)


R = TypeVar("R", bound=AccessRule)


def allowed(rules: tuple[R, ...], name: str, product: str | None, what: str, target: str) -> R:
    """The rule that lets ``product`` use ``name``; raises NotAllowed when none does."""
    for rule in rules:
        if rule.matches(name):
            if rule.allows_product(product):
                return rule
            raise NotAllowed(f"{what} on target {target!r} is not available to your API product.")
    raise NotAllowed(f"{what} is not in the catalog of target {target!r}; ask the platform team to add it.")
