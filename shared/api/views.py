"""How runs and targets look to callers: typed views (JSON, camelCase), shared by the API and the CLI,
from which openapi.json's response schemas are derived."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.alerts.model import RunRef
from shared.config.catalog import Catalog
from shared.config.settings import Settings
from shared.config.targets import TargetEntry
from shared.errors import TargetNotFound
from shared.kinds.base import RunKind
from shared.kinds.checks import Check
from shared.kinds.registry import RUN_KINDS, TARGET_KINDS, kind_named, kinds_of
from shared.runs.model import Run, RunStatus, iso_time

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
ENDINGS = [status for status in RunStatus.ALL if status in RunStatus.TERMINAL]  # in a stable order


class View(BaseModel):
    # extra="forbid": a kind whose target lists something new must add it to TargetView.
    model_config = ConfigDict(frozen=True, extra="forbid")

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def json_view(self) -> dict[str, Any]:
        """The view as JSON; optional members that do not apply are left out rather than null, in the
        views it holds too."""
        omitted = {name for name in self.OMITTED_WHEN_NONE if getattr(self, name) is None}
        view = self.model_dump(mode="json", exclude=omitted)
        for name in view:
            view[name] = _nested(getattr(self, name), view[name])
        return view


def _nested(value: Any, dumped: Any) -> Any:
    """``dumped`` with each view in ``value`` (itself, or in a list or dict) as its own ``json_view``."""
    if isinstance(value, View):
        return value.json_view()
    if isinstance(value, list):
        return [_nested(item, dumped_item) for item, dumped_item in zip(value, dumped, strict=True)]
    if isinstance(value, dict):
        return {key: _nested(item, dumped[key]) for key, item in value.items()}
    return dumped


class RunView(View):
    """A run as callers see it."""

    id: str
    target: str
    kind: Annotated[str, Field(json_schema_extra={"enum": list(RUN_KINDS)})]
    pipeline: str = Field(description="The pipeline name, or the batch name of a Spark batch.")
    sparkPool: str | None = None
    status: Annotated[str, Field(json_schema_extra={"enum": list(RunStatus.ALL)})]
    upstreamStatus: str | None
    upstreamRunId: str | None
    message: str
    parameters: dict[str, Any]
    options: dict[str, Any]
    createdAt: Timestamp
    updatedAt: Timestamp | None
    runStart: Timestamp | None
    runEnd: Timestamp | None
    durationMs: int | None
    appId: str | None
    cancelRequestedAt: Timestamp | None
    rerunOf: str | None
    rerunBy: str | None
    correlationId: str | None
    links: dict[str, str] = Field(
        description="`self` (absolute when the public URL or the app's own host is known, else a path) and `studio`."
    )
    chain: list[RunRef] | None = Field(
        default=None, description="The rerun chain through this run, oldest first (GET of one run only)."
    )
    attempt: int = Field(description="Which run of its automatic retry chain this is (1: the first).")
    maxAttempts: int = Field(description="How many runs its retry policy allows the chain (1: no retries).")
    nextRetryAt: Timestamp | None = Field(description="When the poller reruns this failed run, while a retry is due.")
    finalStatus: Annotated[str, Field(json_schema_extra={"enum": ENDINGS})] | None = Field(
        default=None,
        description="How the rerun chain ended: its last run's status, once no retry is pending (GET of one run only).",
    )

    OMITTED_WHEN_NONE = ("sparkPool", "chain", "finalStatus")


class RunPage(View):
    value: list[RunView]
    continuation: str | None
    nextLink: str | None = None

    OMITTED_WHEN_NONE = ("nextLink",)


class InputView(View):
    """An input of a job template that callers may set: without a default, they must."""

    type: str
    default: str | int | float | bool | None = None
    allowedPrefixes: list[str] | None = None

    OMITTED_WHEN_NONE = ("allowedPrefixes",)


class RuleView(View):
    match: str
    maxDurationMinutes: int | None
    jobType: str | None = None
    inputs: dict[str, InputView] | None = None

    OMITTED_WHEN_NONE = ("jobType", "inputs")


class TargetView(View):
    """A target as a caller may see it: only what its product may start; no subscription ids."""

    name: str
    kind: Annotated[str, Field(json_schema_extra={"enum": sorted(TARGET_KINDS)})]
    pipelines: list[RuleView]
    factoryName: str | None = None
    workspaceName: str | None = None
    sparkPools: list[RuleView] | None = None
    jobs: list[RuleView] | None = None

    OMITTED_WHEN_NONE = ("factoryName", "workspaceName", "sparkPools", "jobs")


def run_view(run: Run, *, catalog: Catalog, settings: Settings, base_url: str | None) -> RunView:
    """``base_url``: where callers reach the API (a URL, or a path); without it the view has no ``self`` link."""
    links: dict[str, str] = {"self": f"{base_url}/runs/{run.id}"} if base_url else {}
    try:
        target = catalog.get(run.target)
    except TargetNotFound:
        target = None  # removed from the catalog since: the record still shows
    if target is not None:
        links.update(kind_named(run.kind).links(target, run, app_id=run.app_id, settings=settings))
    return RunView(
        id=run.id,
        target=run.target,
        kind=run.kind,
        pipeline=run.pipeline,
        sparkPool=run.spark_pool,
        status=run.status,
        upstreamStatus=run.upstream_status,
        upstreamRunId=run.upstream_run_id,
        message=run.message,
        parameters=run.parameters,
        options=run.options,
        createdAt=iso_time(run.created_at) or "",
        updatedAt=iso_time(run.updated_at),
        runStart=iso_time(run.run_start),
        runEnd=iso_time(run.run_end),
        durationMs=run.duration_ms,
        appId=run.app_id,
        cancelRequestedAt=iso_time(run.cancel_requested_at),
        rerunOf=run.rerun_of,
        rerunBy=run.rerun_by,
        correlationId=run.correlation_id,
        links=links,
        attempt=run.attempt,
        maxAttempts=run.max_attempts,
        nextRetryAt=iso_time(run.next_retry_at) if run.retry_pending else None,
    )


def chain_view(chain: list[Run]) -> list[RunRef]:
    return [RunRef.of(r) for r in chain]


def with_chain(view: RunView, chain: list[Run]) -> RunView:
    """The view of one run with its rerun chain and, once the chain has ended, how (``finalStatus``)."""
    last = chain[-1] if chain else None
    final = last.status if last is not None and last.terminal and not last.may_retry else None
    return view.model_copy(update={"chain": chain_view(chain), "finalStatus": final})


def _rules(kind: RunKind[Any, Any], target: TargetEntry, product: str | None, operator: bool) -> list[RuleView]:
    return [
        RuleView.model_validate(
            {"match": rule.match, "maxDurationMinutes": rule.max_duration_minutes, **kind.rule_facts(rule)}
        )
        for rule in kind.rules(target)
        if operator or rule.allows_product(product)
    ]


def target_view(target: TargetEntry, product: str | None, *, operator: bool = False) -> TargetView:
    """What each kind working on the target lets ``product`` start (an operator: all of it), under the
    kind's list name."""
    lists = {kind.rules_field: _rules(kind, target, product, operator) for kind in kinds_of(target)}
    return TargetView.model_validate(
        {"name": target.name, "kind": target.kind, "pipelines": [], **target.described(), **lists}
    )


def visible(target: TargetEntry, product: str | None, *, operator: bool = False) -> bool:
    """Whether ``product`` may see the target at all: an operator may, others where a rule lets them
    start something. To anyone else the target does not exist."""
    return operator or any(rule.allows_product(product) for kind in kinds_of(target) for rule in kind.rules(target))


class TargetDiagnostics(View):
    """A target as the caller may see it, and whether the gateway's identity reaches it."""

    target: TargetView
    healthy: bool = Field(description="No check is an error (warnings need a person but do not break the app).")
    summary: str = Field(
        description='One line: "all 7 checks ok", or "2 errors, 1 warning: " and the names of those checks.'
    )
    checks: list[Check]
    checkedAt: Timestamp = Field(
        description="When the checks ran: results are reused for a minute (the `Age` header says how old)."
    )

    def json_view(self) -> dict[str, Any]:
        return {
            "target": self.target.json_view(),
            "healthy": self.healthy,
            "summary": self.summary,
            "checks": [check.model_dump(mode="json", exclude_none=True) for check in self.checks],
            "checkedAt": self.checkedAt,
        }
