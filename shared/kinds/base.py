"""The contract every kind of target implements, and the shapes its answers take.

The service, the poller, the alerts and the views ask a ``RunKind`` what to do and never branch on the
kind themselves: adding a kind is a module that subclasses ``RunKind`` and one line in
``shared.kinds.registry`` (see docs/adding-a-target-kind.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from shared.config.targets import AccessRule, TargetEntry, allowed
from shared.kinds.checks import Check

if TYPE_CHECKING:
    from shared.api.requests import RerunRequest
    from shared.azure.transport import UpstreamClient
    from shared.config.retry import RetryPolicy
    from shared.config.settings import Settings
    from shared.runs.model import Run

# Clocks differ and Azure writes the times we query by: widen query windows by this much.
WINDOW_SKEW = timedelta(minutes=5)

TargetT = TypeVar("TargetT", bound=TargetEntry)
RequestT = TypeVar("RequestT", bound=BaseModel)
C = TypeVar("C")


class RunNames(Protocol):
    """What names a run's resource: a recorded run, or a live row a cap counts."""

    @property
    def pipeline(self) -> str: ...

    @property
    def spark_pool(self) -> str | None: ...


class Azure(Protocol):
    """What a kind needs to reach Azure: settings, the shared transport, and a per-process client cache."""

    @property
    def settings(self) -> Settings: ...

    @property
    def upstream(self) -> UpstreamClient: ...

    def client(self, key: tuple[str, ...], build: Callable[[], C]) -> C: ...


@dataclass(frozen=True)
class Submitted:
    """Azure's answer to a create, in the record's terms."""

    upstream_run_id: str
    request_id: str | None
    status: str
    upstream_status: str
    app_id: str | None = None


@dataclass(frozen=True)
class Submission:
    """A start the kind has checked and is ready to send: what the record keeps, and the create call."""

    name: str  # the pipeline name, or the batch name for Spark
    parameters: dict[str, Any]
    submit: Callable[[], Submitted]
    options: dict[str, Any] = field(default_factory=dict)
    pool: str | None = None
    correlation_parameter: str | None = None  # the parameter that carries the run id to Azure
    # The upstream run a start recovers (referencePipelineRunId): the service checks it is the caller's.
    recovers: str | None = None


@dataclass(frozen=True)
class Observed:
    """One upstream run or batch as Azure reports it, in our terms."""

    upstream_run_id: str
    name: str
    status: str
    upstream_status: str
    message: str
    run_start: datetime | None
    run_end: datetime | None
    duration_ms: int | None
    submitted: datetime | None
    parameters: Mapping[str, str] | None = None
    app_id: str | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class FailedActivity:
    """A failed step of a run (an ADF or Synapse activity), as the alert shows it."""

    name: str
    type: str
    error_code: str
    failure_type: str
    message: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class FailureSignature:
    """What a retry policy's ``on`` matches of one failure: its type and its code."""

    failure_type: str
    error_code: str


@dataclass(frozen=True)
class FailureDetails:
    """What an alert says beyond the run record: failed activities, or Livy's errors and driver log."""

    activities: Sequence[FailedActivity] = ()
    errors: Sequence[str] = ()
    log_tail: Sequence[str] = ()
    log_name: str | None = None  # which log the tail is from, when not a Spark driver's ("std_log.txt of step x")
    app_id: str | None = None
    spark_ui: str | None = None
    # The type and code of each error in ``errors`` where the service gives them (Livy's source, errorCode).
    causes: Sequence[FailureSignature] = ()

    @property
    def reason(self) -> str:
        """The first error an engineer should read."""
        if self.activities:
            return self.activities[0].message
        return self.errors[0] if self.errors else ""


@dataclass
class Observation:
    runs: dict[str, Observed] = field(default_factory=dict)
    # How far Azure's clock runs ahead of ours: the times in ``runs`` are Azure's.
    clock_offset: timedelta = timedelta(0)


class Match(IntEnum):
    """How surely an upstream run is the one a lost create answer started."""

    NO = 0
    POSSIBLE = 1  # same pipeline and parameters: one such candidate is taken, several make the run Unknown
    PROVEN = 2  # it carries the gateway's run id (a correlation parameter, a Livy tag)


class Source(Protocol):
    """How the poller observes one group of runs: in bulk, singly, and for a lost create answer."""

    def observe(self, runs: Sequence[Run], now: datetime) -> Observation: ...

    def get(self, upstream_run_id: str) -> Observed | None: ...

    def matches(self, run: Run, candidate: Observed) -> Match:
        """Whether ``candidate`` is the run ``run``'s lost create answer started: ``PROVEN`` by an id the
        gateway gave it, ``POSSIBLE`` when only its name and parameters agree, else ``NO``."""
        ...

    def failure_details(self, run: Run, now: datetime) -> FailureDetails: ...


class RunKind(ABC, Generic[TargetT, RequestT]):
    """One kind of work the gateway starts: ADF pipeline runs, Synapse pipeline runs, Spark batches.

    A kind works on one kind of catalog entry (``target_kind``) and answers one route family: a start
    on ``/targets/{t}/{family}/{name}/...`` goes to the kind whose family and target kind match.
    """

    name: ClassVar[str]  # the run's kind as recorded and shown ("datafactory")
    target_kind: ClassVar[str]  # the catalog entry kind it works on (its ``target_model``'s ``kind``)
    label: ClassVar[str]  # how alert summaries name it ("ADF")
    studio: ClassVar[str]  # the monitoring UI its links open ("ADF Studio")
    family: ClassVar[str]  # the route family that starts it ("pipelines")
    rules_field: ClassVar[str]  # the catalog's and the target view's list of what may be started
    resource_noun: ClassVar[str]  # what those rules name, in messages ("Pipeline")
    step_noun: ClassVar[str] = "activity"  # what an alert calls the part of a run that failed
    target_model: ClassVar[type[TargetEntry]]
    request_model: ClassVar[type[BaseModel]]

    @abstractmethod
    def rules(self, target: TargetT) -> tuple[AccessRule, ...]:
        """The catalog rules that say who may start what on ``target``."""

    @abstractmethod
    def resource(self, run: RunNames) -> str:
        """What the rules match for a recorded run: its pipeline, or its Spark pool."""

    def rule(self, target: TargetT, resource: str, product: str | None) -> AccessRule:
        """The rule that lets ``product`` use ``resource``; raises NotAllowed when none does."""
        return allowed(self.rules(target), resource, product, f"{self.resource_noun} {resource!r}", target.name)

    def rule_facts(self, rule: AccessRule) -> dict[str, Any]:
        """What a caller sees of a rule beyond its name and duration (a job template's inputs)."""
        return {}

    @abstractmethod
    def fingerprint(self, target: TargetT, resource: str, request: RequestT) -> dict[str, Any]:
        """What makes two start requests under one Idempotency-Key the same request."""

    @abstractmethod
    def prepare(
        self, azure: Azure, target: TargetT, resource: str, request: RequestT, *, run_id: str, rule: AccessRule
    ) -> Submission:
        """Checks a start request and returns what to record and how to submit it; ``run_id`` is the
        record's, for the kind to carry to Azure where it can (so a lost answer is found by it)."""

    @abstractmethod
    def prepare_rerun(
        self, azure: Azure, target: TargetT, run: Run, request: RerunRequest, *, run_id: str
    ) -> Submission:
        """A new run (``run_id``) of what ``run`` ran, recovering from where the kind can; refuses what it
        cannot."""

    def failure_signatures(self, details: FailureDetails) -> list[FailureSignature]:
        """Each failure a failed run reports, as a retry policy's ``on`` matches it: by default the failed
        activities' ``failureType`` and ``errorCode``, else the errors' own (``causes``)."""
        if details.activities:
            return [FailureSignature(a.failure_type, a.error_code) for a in details.activities]
        return list(details.causes)

    def retryable(self, details: FailureDetails, policy: RetryPolicy) -> bool:
        """Whether ``policy`` reruns a run that failed so: any failure without ``on``; with it, only when
        the run reports failures and every one matches (one user error fails the rerun too)."""
        if policy.on is None:
            return True
        signatures = self.failure_signatures(details)
        return bool(signatures) and all(policy.on.matches(s.failure_type, s.error_code) for s in signatures)

    def retry_request(self, run: Run, details: FailureDetails) -> RerunRequest:
        """What an automatic rerun of the failed ``run`` asks ``prepare_rerun`` for: by default the same
        request again, whole; kinds that can resume from the failure say so."""
        from shared.api.requests import RerunRequest

        return RerunRequest()

    @abstractmethod
    def cancel(self, azure: Azure, target: TargetT, run: Run, *, recursive: bool) -> None:
        """Asks Azure to cancel the run; raises UpstreamRejected when Azure says it cannot."""

    @abstractmethod
    def source_key(self, run: Run) -> str:
        """Runs with the same key are observed together by one ``Source``."""

    @abstractmethod
    def source(self, azure: Azure, target: TargetT, key: str) -> Source:
        """The poller's view of one group of runs."""

    def ownership_key(self, run: Run, upstream_run_id: str) -> str:
        """Names an Azure run uniquely within its target, for the registry's index of owned runs."""
        return f"{self.name}.{self.source_key(run)}.{upstream_run_id}"

    @abstractmethod
    def describe(self, run: Run) -> str:
        """The run as an alert's first line names it ("ADF sales/copy_sales run 1a2b3c4d…")."""

    @abstractmethod
    def links(self, target: TargetT, run: Run, *, app_id: str | None, settings: Settings) -> dict[str, str]:
        """Deep links to the run in its monitoring UI (``studio``), when the run is far enough along."""

    def checks(self, azure: Azure, target: TargetT) -> list[Check]:
        """Read-only diagnostics of the identity's access to what this kind uses on ``target``."""
        return []
