"""The REST calls ADF and Synapse pipelines share; each service module supplies its URLs and roles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from shared.azure.transport import TargetClient
from shared.kinds.pipelines import (
    ActivityRun,
    CreatedRun,
    PipelineRun,
    RunQuery,
    StartOptions,
    created_run,
    iso,
    page,
    parse_activity_run,
    parse_pipeline_run,
)

# Following continuation tokens stops here: a runaway token loop must not eat the request budget.
MAX_PAGES = 1000


class PipelineClient(TargetClient):
    """Pipeline runs of one ADF factory or Synapse workspace over their shared REST contract."""

    api_version: str
    supports_start_from_failure: bool
    read_role: str
    run_role: str

    def _activity_runs_path(self, pipeline: str, run_id: str) -> str:
        raise NotImplementedError

    def create_run(self, pipeline: str, parameters: Mapping[str, Any], options: StartOptions) -> CreatedRun:
        params: dict[str, str] = {}
        if options.reference_run_id:
            params["referencePipelineRunId"] = options.reference_run_id
        if options.is_recovery is not None:
            params["isRecovery"] = str(options.is_recovery).lower()
        if options.start_activity_name:
            params["startActivityName"] = options.start_activity_name
        if options.start_from_failure is not None and self.supports_start_from_failure:
            params["startFromFailure"] = str(options.start_from_failure).lower()
        body, request_id = self._call(
            "createRun",
            "POST",
            f"/pipelines/{pipeline}/createRun",
            role=self.run_role,
            creates=True,
            params=params,
            body=dict(parameters),
        )
        return created_run(body, request_id, "createRun")

    def get_run(self, run_id: str) -> PipelineRun:
        body, _ = self._call("getPipelineRun", "GET", f"/pipelineruns/{run_id}", role=self.read_role)
        return parse_pipeline_run(body, "getPipelineRun")

    def query_runs(self, query: RunQuery) -> Iterator[PipelineRun]:
        request = query.body()
        for _ in range(MAX_PAGES):
            body, _ = self._call("queryPipelineRuns", "POST", "/queryPipelineRuns", role=self.read_role, body=request)
            items, token = page(body, "queryPipelineRuns")
            for item in items:
                yield parse_pipeline_run(item, "queryPipelineRuns")
            if token is None:
                return
            request = {**request, "continuationToken": token}

    def query_activity_runs(self, pipeline: str, run_id: str, after: datetime, before: datetime) -> list[ActivityRun]:
        request: dict[str, Any] = {"lastUpdatedAfter": iso(after), "lastUpdatedBefore": iso(before)}
        activities: list[ActivityRun] = []
        for _ in range(MAX_PAGES):
            body, _ = self._call(
                "queryActivityRuns",
                "POST",
                self._activity_runs_path(pipeline, run_id),
                role=self.read_role,
                body=request,
            )
            items, token = page(body, "queryActivityRuns")
            activities.extend(parse_activity_run(item) for item in items)
            if token is None:
                break
            request = {**request, "continuationToken": token}
        return activities

    def cancel_run(self, run_id: str, *, recursive: bool) -> None:
        self._call(
            "cancelPipelineRun",
            "POST",
            f"/pipelineruns/{run_id}/cancel",
            role=self.run_role,
            params={"isRecursive": "true"} if recursive else None,
        )
