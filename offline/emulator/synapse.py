"""Synapse data-plane pipeline API (2020-12-01), served under ``/synapse/{workspace}``: the pipeline
definition (Pipeline_GetPipeline) and the pipeline-run operations.

A real workspace has its own host (``{workspace}.dev.azuresynapse.net``); the SDK takes that host as
its ``endpoint``, so a path prefix on the shared port works unchanged. Differences from ADF follow
the spec: createRun answers 202, there is no ``startFromFailure``, the activity-run query names the
pipeline, and runs carry no ``runDimensions``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .arm import check_name
from .config import PIPELINE_NAME, PipelineSpec, WorkspaceSpec
from .definitions import pipeline_resource
from .queries import parse_query
from .server import ApiError, Request, Response, Router
from .store import RunStore, to_parameter_strings

API_VERSIONS = ("2020-12-01", "2019-06-01-preview")
PREFIX = "/synapse/{workspace}"
# The type the artifacts spec's Pipelines_Get example gives.
PIPELINE_TYPE = "Microsoft.Synapse/workspaces/pipelines"
PIPELINE_HINT = "It must start with a letter, number or underscore and cannot contain <>*#.%&:\\+?/ characters."


def workspace_scope(workspace: WorkspaceSpec) -> str:
    return f"synapse:{workspace.name}".lower()


def find_workspace(workspaces: dict[str, WorkspaceSpec], name: str) -> WorkspaceSpec:
    """The workspace a data-plane path names (approximation: Azure would fail DNS for an unknown one)."""
    workspace = workspaces.get(name.lower())
    if workspace is None:
        raise ApiError(404, "WorkspaceNotFound", f"The workspace '{name}' does not exist.", target=name)
    return workspace


class SynapsePipelinesApi:
    def __init__(self, workspaces: Sequence[WorkspaceSpec], store: RunStore) -> None:
        self.store = store
        self._workspaces = {w.name.lower(): w for w in workspaces}
        for workspace in workspaces:
            store.register(workspace_scope(workspace), "synapse", workspace.pipelines)

    def register(self, router: Router) -> None:
        versions = API_VERSIONS
        router.add(
            "Pipeline_GetPipeline",
            "GET",
            PREFIX + "/pipelines/{pipelineName}",
            self.get_pipeline,
            "synapse",
            api_versions=versions,
        )
        router.add(
            "Pipeline_CreatePipelineRun",
            "POST",
            PREFIX + "/pipelines/{pipelineName}/createRun",
            self.create_run,
            "synapse",
            api_versions=versions,
        )
        router.add(
            "PipelineRun_QueryPipelineRunsByWorkspace",
            "POST",
            PREFIX + "/queryPipelineRuns",
            self.query_runs,
            "synapse",
            api_versions=versions,
        )
        router.add(
            "PipelineRun_GetPipelineRun",
            "GET",
            PREFIX + "/pipelineruns/{runId}",
            self.get_run,
            "synapse",
            api_versions=versions,
        )
        router.add(
            "PipelineRun_CancelPipelineRun",
            "POST",
            PREFIX + "/pipelineruns/{runId}/cancel",
            self.cancel_run,
            "synapse",
            api_versions=versions,
        )
        router.add(
            "PipelineRun_QueryActivityRuns",
            "POST",
            PREFIX + "/pipelines/{pipelineName}/pipelineruns/{runId}/queryActivityruns",
            self.query_activities,
            "synapse",
            api_versions=versions,
        )

    def _scope(self, request: Request) -> str:
        return workspace_scope(find_workspace(self._workspaces, request.params["workspace"]))

    def _pipeline(self, scope: str, name: str) -> PipelineSpec:
        check_name(name, PIPELINE_NAME, 1, 260, "pipeline", PIPELINE_HINT)
        spec = self.store.pipeline(scope, name)
        if spec is None:
            # Approximation: the spec does not document the code for an unknown pipeline.
            raise ApiError(404, "PipelineNotFound", f"Pipeline '{name}' not found.", target=f"pipeline/{name}/")
        return spec

    def get_pipeline(self, request: Request) -> Response:
        workspace = find_workspace(self._workspaces, request.params["workspace"])
        spec = self._pipeline(workspace_scope(workspace), request.params["pipelineName"])
        resource_id = (
            f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
            f"/providers/Microsoft.Synapse/workspaces/{workspace.name}/pipelines/{spec.name}"
        )
        body = pipeline_resource(spec, resource_id, PIPELINE_TYPE)
        if request.none_match(body["etag"]):
            return Response(304, None)
        return Response(200, body)

    def create_run(self, request: Request) -> Response:
        scope = self._scope(request)
        spec = self._pipeline(scope, request.params["pipelineName"])
        run = self.store.create(
            scope,
            spec,
            to_parameter_strings(request.json()),
            correlation_id=request.correlation_request_id,
            reference_run_id=request.query.get("referencepipelinerunid") or None,
            is_recovery=bool(request.flag("isRecovery")),
            start_activity=request.query.get("startactivityname") or None,
        )
        return Response(202, {"runId": run.run_id})

    def get_run(self, request: Request) -> Response:
        run = self.store.get(self._scope(request), request.params["runId"])
        return Response(200, run.to_json(self.store.clock.now()))

    def cancel_run(self, request: Request) -> Response:
        self.store.cancel(self._scope(request), request.params["runId"], bool(request.flag("isRecursive")))
        return Response(200, None)

    def query_runs(self, request: Request) -> Response:
        scope = self._scope(request)
        return Response(200, self.store.query_runs(scope, parse_query(request.json(), "pipeline")))

    def query_activities(self, request: Request) -> Response:
        scope = self._scope(request)
        query = parse_query(request.json(), "activity")
        result = self.store.query_activities(scope, request.params["runId"], query, request.params["pipelineName"])
        return Response(200, result)
