"""Azure Data Factory's ARM API (2018-06-01): Factories_Get, Pipelines_Get and the pipeline-run operations."""

from __future__ import annotations

from collections.abc import Sequence

from .arm import ArmDirectory, check_name, resource_not_found, stable_uuid
from .clock import isoformat
from .config import FACTORY_NAME, PIPELINE_NAME, FactorySpec, PipelineSpec
from .definitions import pipeline_resource
from .queries import parse_query
from .server import ApiError, Request, Response, Router
from .store import RunStore, to_parameter_strings

API_VERSIONS = ("2018-06-01",)
FACTORY_TYPE = "Microsoft.DataFactory/factories"
PIPELINE_TYPE = "Microsoft.DataFactory/factories/pipelines"
PREFIX = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.DataFactory/factories/{factoryName}"
)
PIPELINE_HINT = "It must start with a letter, number or underscore and cannot contain <>*#.%&:\\+?/ characters."
FACTORY_HINT = (
    "The name can contain only letters, numbers and hyphens. The first and last characters must be a letter "
    "or number. The hyphen ('-') character must be immediately preceded and followed by a letter or number."
)


def factory_scope(factory: FactorySpec) -> str:
    return f"adf:{factory.subscription_id}/{factory.resource_group}/{factory.name}".lower()


def factory_id(factory: FactorySpec) -> str:
    return (
        f"/subscriptions/{factory.subscription_id}/resourceGroups/{factory.resource_group}"
        f"/providers/{FACTORY_TYPE}/{factory.name}"
    )


class DataFactoryApi:
    def __init__(
        self,
        factories: Sequence[FactorySpec],
        store: RunStore,
        directory: ArmDirectory,
        *,
        tenant_id: str,
        created: float,
    ) -> None:
        self.store = store
        self.directory = directory
        self.tenant_id = tenant_id
        self.created = created
        self._factories = {factory_scope(f): f for f in factories}
        for scope, factory in self._factories.items():
            store.register(scope, "datafactory", factory.pipelines)

    def register(self, router: Router) -> None:
        versions = API_VERSIONS
        router.add("Factories_Get", "GET", PREFIX, self.get_factory, "arm", rate="reads", api_versions=versions)
        router.add(
            "Pipelines_Get",
            "GET",
            PREFIX + "/pipelines/{pipelineName}",
            self.get_pipeline,
            "arm",
            rate="reads",
            api_versions=versions,
        )
        router.add(
            "Pipelines_CreateRun",
            "POST",
            PREFIX + "/pipelines/{pipelineName}/createRun",
            self.create_run,
            "arm",
            rate="writes",
            api_versions=versions,
        )
        router.add(
            "PipelineRuns_QueryByFactory",
            "POST",
            PREFIX + "/queryPipelineRuns",
            self.query_runs,
            "arm",
            rate="reads",
            api_versions=versions,
        )
        router.add(
            "PipelineRuns_Get",
            "GET",
            PREFIX + "/pipelineruns/{runId}",
            self.get_run,
            "arm",
            rate="reads",
            api_versions=versions,
        )
        router.add(
            "PipelineRuns_Cancel",
            "POST",
            PREFIX + "/pipelineruns/{runId}/cancel",
            self.cancel_run,
            "arm",
            rate="writes",
            api_versions=versions,
        )
        router.add(
            "ActivityRuns_QueryByPipelineRun",
            "POST",
            PREFIX + "/pipelineruns/{runId}/queryActivityruns",
            self.query_activities,
            "arm",
            rate="writes",
            api_versions=versions,
        )

    def _factory(self, request: Request) -> tuple[FactorySpec, str]:
        subscription = request.params["subscriptionId"]
        group = request.params["resourceGroupName"]
        name = request.params["factoryName"]
        self.directory.check_scope(subscription, group)
        check_name(name, FACTORY_NAME, 3, 63, "factory", FACTORY_HINT)
        scope = f"adf:{subscription}/{group}/{name}".lower()
        factory = self._factories.get(scope)
        if factory is None:
            raise resource_not_found(FACTORY_TYPE, name, group)
        return factory, scope

    def get_factory(self, request: Request) -> Response:
        factory, _ = self._factory(request)
        resource_id = factory_id(factory)
        etag = '"' + stable_uuid("etag", resource_id) + '"'
        if request.none_match(etag):
            return Response(304, None, {"ETag": etag})
        body = {
            "name": factory.name,
            "id": resource_id,
            "type": FACTORY_TYPE,
            "location": factory.location,
            "tags": dict(factory.tags),
            "eTag": etag,
            "identity": {
                "type": "SystemAssigned",
                "principalId": stable_uuid("principal", resource_id),
                "tenantId": self.tenant_id,
            },
            "properties": {
                "provisioningState": "Succeeded",
                "createTime": isoformat(self.created),
                "version": "2018-06-01",
                "publicNetworkAccess": "Enabled",
            },
        }
        return Response(200, body, {"ETag": etag})

    def _pipeline(self, scope: str, name: str) -> PipelineSpec:
        check_name(name, PIPELINE_NAME, 1, 260, "pipeline", PIPELINE_HINT)
        spec = self.store.pipeline(scope, name)
        if spec is None:
            # Approximation: the specs do not document ADF's code for an unknown pipeline.
            raise ApiError(404, "EntityNotFound", f"Entity {name} not found", target=f"pipeline/{name}/")
        return spec

    def get_pipeline(self, request: Request) -> Response:
        factory, scope = self._factory(request)
        spec = self._pipeline(scope, request.params["pipelineName"])
        body = pipeline_resource(spec, f"{factory_id(factory)}/pipelines/{spec.name}", PIPELINE_TYPE)
        if request.none_match(body["etag"]):
            return Response(304, None)
        return Response(200, body)

    def create_run(self, request: Request) -> Response:
        _, scope = self._factory(request)
        spec = self._pipeline(scope, request.params["pipelineName"])
        parameters = to_parameter_strings(request.json())
        run = self.store.create(
            scope,
            spec,
            parameters,
            correlation_id=request.correlation_request_id,
            reference_run_id=request.query.get("referencepipelinerunid") or None,
            is_recovery=bool(request.flag("isRecovery")),
            start_activity=request.query.get("startactivityname") or None,
            start_from_failure=bool(request.flag("startFromFailure")),
        )
        return Response(200, {"runId": run.run_id})

    def get_run(self, request: Request) -> Response:
        _, scope = self._factory(request)
        run = self.store.get(scope, request.params["runId"])
        return Response(200, run.to_json(self.store.clock.now()))

    def cancel_run(self, request: Request) -> Response:
        _, scope = self._factory(request)
        self.store.cancel(scope, request.params["runId"], bool(request.flag("isRecursive")))
        return Response(200, None)

    def query_runs(self, request: Request) -> Response:
        _, scope = self._factory(request)
        return Response(200, self.store.query_runs(scope, parse_query(request.json(), "pipeline")))

    def query_activities(self, request: Request) -> Response:
        _, scope = self._factory(request)
        query = parse_query(request.json(), "activity")
        return Response(200, self.store.query_activities(scope, request.params["runId"], query))
