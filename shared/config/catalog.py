"""The target catalog: which factories and workspaces exist, and what callers may start there.

Operators keep one JSON document (app setting ``GATEWAY_CATALOG`` or the file named by
``GATEWAY_CATALOG_FILE``). It is validated whole when first used, and a mistake is reported with
the path of the bad field, because a catalog that half-works fails at 3 a.m. instead of at deploy.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.config import names
from shared.config.settings import Settings
from shared.errors import ConfigurationError, NotAllowed, TargetNotFound

GLOB_CHARACTERS = frozenset("*?[")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _check_name(rule: names.NameRule, value: str) -> str:
    problem = rule.problem(value)
    if problem:
        raise ValueError(problem)
    return value


class AccessRule(_Model):
    """One allowed pipeline or Spark pool: an exact name or a glob, optionally limited to products."""

    match: str = Field(min_length=1, max_length=260)
    max_duration_minutes: int | None = Field(default=None, gt=0)
    products: tuple[str, ...] | None = None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match)

    def allows_product(self, product: str | None) -> bool:
        return self.products is None or (product is not None and product in self.products)


def _rules(value: Any) -> Any:
    """Lets operators write a bare name instead of ``{"match": name}``."""
    if isinstance(value, list):
        return [{"match": item} if isinstance(item, str) else item for item in value]
    return value


class _Target(_Model):
    name: str
    pipelines: tuple[AccessRule, ...] = ()
    alert_on_cancelled: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(names.TARGET, value)

    @field_validator("pipelines", mode="before")
    @classmethod
    def _pipelines(cls, value: Any) -> Any:
        return _rules(value)

    @field_validator("pipelines")
    @classmethod
    def _pipeline_names(cls, rules: tuple[AccessRule, ...]) -> tuple[AccessRule, ...]:
        for rule in rules:
            if not GLOB_CHARACTERS & set(rule.match):
                _check_name(names.PIPELINE, rule.match)
        return rules

    def pipeline_rule(self, pipeline: str, product: str | None) -> AccessRule:
        """The rule that lets ``product`` start ``pipeline``; raises NotAllowed when none does."""
        return _allowed(self.pipelines, pipeline, product, f"Pipeline {pipeline!r}", self.name)


class DataFactoryTarget(_Target):
    kind: Literal["datafactory"]
    subscription_id: str
    resource_group: str
    factory_name: str

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, value: str) -> str:
        return _check_name(names.SUBSCRIPTION_ID, value)

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, value: str) -> str:
        return _check_name(names.RESOURCE_GROUP, value)

    @field_validator("factory_name")
    @classmethod
    def _factory(cls, value: str) -> str:
        if len(value) < 3:
            raise ValueError("Factory name must be at least 3 characters.")
        return _check_name(names.FACTORY, value)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.DataFactory/factories/{self.factory_name}"
        )


class SynapseTarget(_Target):
    kind: Literal["synapse"]
    workspace_name: str
    endpoint: str
    subscription_id: str | None = None
    resource_group: str | None = None
    spark_pools: tuple[AccessRule, ...] = ()

    @field_validator("workspace_name")
    @classmethod
    def _workspace(cls, value: str) -> str:
        return _check_name(names.WORKSPACE, value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("https://") or any(c in value for c in "?#@ "):
            raise ValueError("endpoint must be an https:// URL such as https://<workspace>.dev.azuresynapse.net")
        return value.rstrip("/")

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(names.SUBSCRIPTION_ID, value)

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(names.RESOURCE_GROUP, value)

    @field_validator("spark_pools", mode="before")
    @classmethod
    def _pools(cls, value: Any) -> Any:
        return _rules(value)

    @property
    def resource_id(self) -> str | None:
        if not (self.subscription_id and self.resource_group):
            return None
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Synapse/workspaces/{self.workspace_name}"
        )

    def spark_pool_rule(self, pool: str, product: str | None) -> AccessRule:
        return _allowed(self.spark_pools, pool, product, f"Spark pool {pool!r}", self.name)


Target = Annotated[DataFactoryTarget | SynapseTarget, Field(discriminator="kind")]


class Catalog(_Model):
    targets: tuple[Target, ...]
    alert_on_cancelled: bool = False

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for target in self.targets:
            if target.name in seen:
                raise ValueError(f"target name {target.name!r} is used twice")
            seen.add(target.name)
        return self

    def get(self, name: str) -> DataFactoryTarget | SynapseTarget:
        for target in self.targets:
            if target.name == name:
                return target
        raise TargetNotFound(f"There is no target named {name!r}. GET /api/targets lists them.")

    def alerts_on_cancel(self, target: DataFactoryTarget | SynapseTarget) -> bool:
        if target.alert_on_cancelled is not None:
            return target.alert_on_cancelled
        return self.alert_on_cancelled


def _allowed(rules: tuple[AccessRule, ...], name: str, product: str | None, what: str, target: str) -> AccessRule:
    for rule in rules:
        if rule.matches(name):
            if rule.allows_product(product):
                return rule
            raise NotAllowed(f"{what} on target {target!r} is not available to your API product.")
    raise NotAllowed(f"{what} is not in the catalog of target {target!r}; ask the platform team to add it.")


def parse_catalog(text: str, source: str) -> Catalog:
    """Parses and validates a catalog document; errors name the source and the bad field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"{source} is invalid: {problems}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("datafactory", "synapse"):  # discriminator tags add no information
            path += f".{part}" if path else str(part)
    return path or "(document)"


_cache_lock = threading.Lock()
_cache: dict[str, Catalog] = {}


def load_catalog(settings: Settings) -> Catalog:
    """The catalog named by the settings, parsed once per distinct document."""
    text = settings.get("GATEWAY_CATALOG")
    source = "App setting GATEWAY_CATALOG"
    if text is None:
        path = settings.get("GATEWAY_CATALOG_FILE")
        if path is None:
            raise ConfigurationError("No catalog: set GATEWAY_CATALOG (JSON) or GATEWAY_CATALOG_FILE.")
        source = f"Catalog file {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{source} cannot be read: {exc.strerror}") from None
    with _cache_lock:
        catalog = _cache.get(text)
        if catalog is None:
            catalog = parse_catalog(text, source)
            _cache[text] = catalog
        return catalog
