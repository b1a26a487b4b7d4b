"""The target catalog: which factories and workspaces exist, and what callers may start there.

Operators keep one JSON document (app setting ``GATEWAY_CATALOG`` or the file named by
``GATEWAY_CATALOG_FILE``). It is validated whole when first used, and a mistake is reported with
the path of the bad field, because a catalog that half-works fails at 3 a.m. instead of at deploy.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field, ValidationError, model_validator

from shared.config.settings import Settings
from shared.config.targets import CatalogModel, RateLimits, TargetEntry
from shared.errors import ConfigurationError, TargetNotFound
from shared.kinds.registry import TARGET_KINDS, TARGET_MODELS

if TYPE_CHECKING:
    AnyTarget = TargetEntry
else:  # one discriminated union of the registered kinds' entry models
    AnyTarget = Annotated[Union[TARGET_MODELS], Field(discriminator="kind")]  # noqa: UP007


class Catalog(CatalogModel):
    targets: tuple[AnyTarget, ...]
    alert_on_cancelled: bool = False
    # APIM products that see and steer every product's runs and every target (the platform team's
    # tools); every other product sees only the runs it started and the targets its rules name.
    operator_products: tuple[str, ...] = ()
    # Caps per APIM product ("*": every product without its own entry, and callers without one).
    product_limits: dict[str, RateLimits] = {}

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for target in self.targets:
            if target.name in seen:
                raise ValueError(f"target name {target.name!r} is used twice")
            seen.add(target.name)
        return self

    def get(self, name: str) -> TargetEntry:
        for target in self.targets:
            if target.name == name:
                return target
        raise TargetNotFound(f"There is no target named {name!r}. GET /api/targets lists them.")

    def limits_for(self, product: str | None) -> RateLimits | None:
        return self.product_limits.get(product or "") or self.product_limits.get("*")

    def is_operator(self, product: str | None) -> bool:
        """Whether ``product`` is one of ``operatorProducts``; calls without a product never are."""
        return product is not None and product in self.operator_products

    def alerts_on_cancel(self, target: TargetEntry) -> bool:
        if target.alert_on_cancelled is not None:
            return target.alert_on_cancelled
        return self.alert_on_cancelled


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
        elif part not in TARGET_KINDS:  # discriminator tags add no information
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
