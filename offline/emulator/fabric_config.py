"""What the emulated Microsoft Fabric tenant holds: workspaces and their data pipelines.

Fabric names everything by GUID (``/v1/workspaces/{workspaceId}/items/{itemId}``) and shows
display names only as data, so each spec carries both: the id the API takes and the name a client
resolves it from (``Items_ListItems``). Kept apart from ``config.py`` so Fabric's rules (GUID ids,
display names that may repeat across workspaces, Fabric's error wording) stay with Fabric; the
dataclasses plug into ``EmulatorConfig`` and its JSON format like the others::

    "fabric_workspaces": [
      {"id": "<uuid>", "name": "contoso-fabric", "capacity_id": "<uuid>",
       "pipelines": [
         {"id": "<uuid>", "name": "load_sales", "outcome": "Failed", "queue_s": 1, "duration_s": 3,
          "dedupe": false, "activities": [{"name": "CopySales", "type": "Copy"}],
          "failure": {"activity": "CopySales", "error_code": "RequestExecutionFailed", "message": "..."}}]}]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FabricOutcome = Literal["Succeeded", "Failed"]
FABRIC_OUTCOMES: tuple[str, ...] = ("Succeeded", "Failed")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MAX_DISPLAY_NAME = 256  # Fabric's limit on item and workspace display names


def _guid(value: str, what: str) -> str:
    if not isinstance(value, str) or not _GUID.match(value):
        raise ValueError(f"{what} {value!r} is not a GUID; Fabric identifies workspaces and items by GUID")
    return value.lower()


def _display_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DISPLAY_NAME:
        raise ValueError(f"{what} {value!r} must be a non-empty display name of at most {MAX_DISPLAY_NAME} characters")


@dataclass(frozen=True)
class FabricActivitySpec:
    """One activity of a Fabric pipeline, as the activity-run query reports it."""

    name: str
    type: str = "Copy"


@dataclass(frozen=True)
class FabricFailureSpec:
    """Where a failing Fabric pipeline fails and the ``failureReason`` its job instance reports."""

    activity: str
    error_code: str = "RequestExecutionFailed"
    message: str = "Operation on target failed."


@dataclass(frozen=True)
class FabricPipelineSpec:
    """A data pipeline item and how its job instances go.

    ``NotStarted`` for ``queue_s``, ``InProgress`` while the activities run one after another
    (``duration_s`` shared equally), then ``Completed`` or ``Failed`` at ``failure.activity``.
    ``dedupe`` makes the scheduler skip a run requested while another instance of the pipeline is
    still active (status ``Deduped``), the behaviour the spec's ItemJobStatus describes; off, runs
    overlap, as Fabric pipelines do by default.
    """

    id: str
    name: str
    outcome: FabricOutcome = "Succeeded"
    queue_s: float = 1.0
    duration_s: float = 3.0
    activities: Sequence[FabricActivitySpec] = ()
    failure: FabricFailureSpec | None = None
    dedupe: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _guid(self.id, "pipeline id"))
        _display_name(self.name, "pipeline name")
        if self.outcome not in FABRIC_OUTCOMES:
            raise ValueError(f"pipeline {self.name!r}: outcome must be one of {FABRIC_OUTCOMES}")
        if self.queue_s < 0 or self.duration_s < 0:
            raise ValueError(f"pipeline {self.name!r}: durations cannot be negative")
        activities = tuple(self.activities) or (FabricActivitySpec(self.failure.activity if self.failure else "Run"),)
        if len({a.name for a in activities}) != len(activities):
            raise ValueError(f"pipeline {self.name!r}: activity names must be unique")
        failure = self.failure
        if self.outcome == "Failed" and failure is None:
            failure = FabricFailureSpec(activities[-1].name)
        if failure is not None and failure.activity not in {a.name for a in activities}:
            raise ValueError(f"pipeline {self.name!r}: failing activity {failure.activity!r} is not declared")
        object.__setattr__(self, "activities", activities)
        object.__setattr__(self, "failure", failure if self.outcome == "Failed" else None)


@dataclass(frozen=True)
class FabricWorkspaceSpec:
    """A Fabric workspace on a capacity, holding data pipelines.

    ``retry_after_s`` is the ``Retry-After`` the run and cancel answers give. Fabric's examples say
    60; the default is 1 so the emulator's few-second runs are polled promptly by clients that obey
    it (which the spec tells them to). Set 60 to rehearse Fabric's pacing.
    """

    id: str
    name: str
    capacity_id: str = "0f084df7-c13d-451b-af5f-ed0c466403b2"
    pipelines: Sequence[FabricPipelineSpec] = ()
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _guid(self.id, "workspace id"))
        object.__setattr__(self, "capacity_id", _guid(self.capacity_id, "capacity id"))
        _display_name(self.name, "workspace name")
        if isinstance(self.retry_after_s, bool) or not isinstance(self.retry_after_s, int) or self.retry_after_s < 0:
            raise ValueError(f"workspace {self.name!r}: retry_after_s must be a non-negative integer")
        pipelines = tuple(self.pipelines)
        # Fabric refuses two items of one type with the same display name in a workspace.
        if len({p.name.lower() for p in pipelines}) != len(pipelines):
            raise ValueError(f"workspace {self.name!r}: pipeline display names must be unique")
        if len({p.id for p in pipelines}) != len(pipelines):
            raise ValueError(f"workspace {self.name!r}: pipeline ids must be unique")
        object.__setattr__(self, "pipelines", pipelines)


SAMPLE_FABRIC_WORKSPACE = FabricWorkspaceSpec(
    id="5b7c1a2e-3d4f-4e6a-9b8c-7d6e5f4a3b21",
    name="contoso-fabric",
    pipelines=(
        FabricPipelineSpec(
            id="8f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e10",
            name="load_sales_fabric",
            activities=(FabricActivitySpec("CopySalesToLakehouse", "Copy"), FabricActivitySpec("RunMerge", "Script")),
        ),
        FabricPipelineSpec(
            id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            name="refresh_warehouse",
            outcome="Failed",
            activities=(
                FabricActivitySpec("LoadStaging", "Copy"),
                FabricActivitySpec("RefreshModel", "TridentNotebook"),
            ),
            failure=FabricFailureSpec(
                "RefreshModel",
                "RequestExecutionFailed",
                "Operation on target RefreshModel failed: Notebook execution failed at Notebook service with "
                "http status code - '200', please check the Run logs on Notebook, additional details - 'Error "
                "name - AnalysisException, Error value - [TABLE_OR_VIEW_NOT_FOUND] The table or view "
                "`staging`.`orders` cannot be found.'",
            ),
        ),
    ),
)


def fabric_summary(workspaces: Sequence[FabricWorkspaceSpec]) -> list[dict[str, object]]:
    """The ``fabric.workspaces`` entries of the info file."""
    return [
        {
            "id": w.id,
            "name": w.name,
            "pipelines": [{"id": p.id, "name": p.name, "outcome": p.outcome} for p in w.pipelines],
        }
        for w in workspaces
    ]
