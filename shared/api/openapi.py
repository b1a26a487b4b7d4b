"""The API's OpenAPI 3.0 document, built from the registered functions and the request models.

Routes and methods come from the app's own function metadata, so the document cannot describe an
endpoint the app does not serve; ``make openapi`` writes it to ``openapi.json`` for APIM, and a test
fails when the committed file drifts from this output.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from shared.api.http import Problem
from shared.api.requests import CancelRequest, RerunRequest
from shared.api.views import RunPage, RunView, TargetDiagnostics, TargetView
from shared.functions.index import registered_functions
from shared.kinds.registry import KINDS
from shared.runs.model import RunStatus

TITLE = "Pipeline Gateway"
VERSION = "1.0.0"
REF = "#/components/schemas/"
# Each kind's start body, then the bodies every kind shares.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    *dict.fromkeys(kind.request_model for kind in KINDS),
    CancelRequest,
    RerunRequest,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (RunView, RunPage, TargetView, TargetDiagnostics, Problem)
PUBLIC_NAMES = {"RunView": "Run", "TargetView": "Target", "RuleView": "AccessRule", "RunRef": "RunChainLink"}

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_CONTENT = {"application/problem+json": {"schema": _PROBLEM_REF}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM_CONTENT}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


_COMMON_ERRORS = {
    "400": _problem("Malformed request."),
    "401": {"description": "Missing or wrong function key (returned by the Functions host)."},
    "422": _problem("A field or name failed validation; `errors` lists each one."),
    "503": _problem("Azure, the identity or the gateway's storage is unavailable; see Retry-After."),
}
_RUN = {"$ref": "#/components/schemas/Run"}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 80}}
_IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retries with the same key and body return the original run.",
    "schema": {"type": "string", "maxLength": 255},
}
_TARGET_PARAM = {
    "name": "target",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", "maxLength": 40},
}

OPERATIONS: dict[str, dict[str, Any]] = {
    "start_pipeline_run": {
        "summary": "Start a pipeline run",
        "description": "Records the run, asks Azure to start it and answers 202 with the run and its URL.",
        "parameters": [
            _TARGET_PARAM,
            {"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 260}},
            _IDEMPOTENCY_PARAM,
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StartRunRequest"}}},
        },
        "responses": {
            "202": _json(_RUN, "Run accepted.", {"Location": {"schema": {"type": "string"}}}),
            "403": _problem(
                "The catalog does not let your product start this pipeline, or referencePipelineRunId is not "
                "an upstream run the gateway started for your product on this pipeline."
            ),
            "404": _problem("Unknown target, or the pipeline does not exist in Azure."),
            "409": _problem("Idempotency-Key reused with a different body, or still in progress."),
            "413": _problem("Body too large."),
            "415": _problem("Body is not JSON."),
            "502": _problem("Azure refused the gateway (e.g. a missing role) or answered badly."),
            "504": _problem("Azure's answer was lost; the run is being reconciled."),
        },
    },
    "start_spark_batch": {
        "summary": "Submit a Spark batch job",
        "description": "Records the batch, submits it to the Synapse Spark pool (Livy) and answers 202 with the run.",
        "parameters": [
            _TARGET_PARAM,
            {"name": "pool", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 15}},
            _IDEMPOTENCY_PARAM,
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SparkBatchRequest"}}},
        },
        "responses": {
            "202": _json(_RUN, "Batch accepted.", {"Location": {"schema": {"type": "string"}}}),
            "403": _problem("The catalog does not let your product use this Spark pool."),
            "404": _problem("Unknown target, a Data Factory target, or a pool Azure does not know."),
            "409": _problem("Idempotency-Key reused with a different body, or still in progress."),
            "413": _problem("Body too large."),
            "415": _problem("Body is not JSON."),
            "502": _problem("Azure refused the gateway (e.g. a missing role) or answered badly."),
        },
    },
    "start_job_run": {
        "summary": "Start an Azure ML job",
        "description": "Records the run, submits the job template's job to the Azure ML workspace under a name "
        "derived from the run id, and answers 202 with the run.",
        "parameters": [
            _TARGET_PARAM,
            {"name": "template", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}},
            _IDEMPOTENCY_PARAM,
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRunRequest"}}},
        },
        "responses": {
            "202": _json(_RUN, "Job accepted.", {"Location": {"schema": {"type": "string"}}}),
            "403": _problem("The catalog does not let your product start this job template."),
            "404": _problem("Unknown target, or a target that runs no Azure ML jobs."),
            "409": _problem("Idempotency-Key reused with a different body, or still in progress."),
            "413": _problem("Body too large."),
            "415": _problem("Body is not JSON."),
            "502": _problem("Azure refused the gateway (e.g. a missing role) or answered badly."),
            "504": _problem("Azure's answer was lost; the job is found by its name at the next poll."),
        },
    },
    "cancel_run": {
        "summary": "Cancel a run",
        "description": "Asks Azure to cancel; the run moves to Canceling, then Cancelled. Twice is harmless.",
        "parameters": [_ID_PARAM],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CancelRequest"}}},
        },
        "responses": {
            "202": _json(_RUN, "Cancel requested."),
            "403": _problem("The catalog does not let your product control this pipeline."),
            "404": _problem("Unknown run, or another product's."),
            "409": _problem("The run already ended (the detail says how), or is still being submitted."),
            "502": _problem("Azure refused the gateway or answered badly."),
        },
    },
    "rerun": {
        "summary": "Rerun an ended run",
        "description": "Starts a new run linked to this one: a recovery rerun for pipelines (startFromFailure is "
        "ADF only), the same batch definition for Spark.",
        "parameters": [_ID_PARAM, _IDEMPOTENCY_PARAM],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RerunRequest"}}},
        },
        "responses": {
            "202": _json(_RUN, "Rerun accepted.", {"Location": {"schema": {"type": "string"}}}),
            "403": _problem("The catalog does not let your product start this pipeline."),
            "404": _problem("Unknown run, or another product's."),
            "409": _problem("The run is still in progress, was already rerun, or never started in Azure."),
            "502": _problem("Azure refused the gateway or answered badly."),
        },
    },
    "get_target": {
        "summary": "A target and a check of the gateway's access to it",
        "description": "The checks run at most once a minute per target; `checkedAt` and `Age` say how old they are.",
        "parameters": [_TARGET_PARAM],
        "responses": {
            "200": _json(
                {"$ref": "#/components/schemas/TargetDiagnostics"},
                "The target and its checks.",
                {"Age": {"description": "Seconds since the checks ran.", "schema": {"type": "integer"}}},
            ),
            "404": _problem("Unknown target, or none of its pipelines and pools is for your product."),
        },
    },
    "get_run": {
        "summary": "Get a run",
        "parameters": [_ID_PARAM],
        "responses": {"200": _json(_RUN, "The run."), "404": _problem("Unknown run, or another product's.")},
    },
    "list_runs": {
        "summary": "List runs",
        "description": "Your product's runs, newest first within each target; `nextLink` (the same filters) "
        "or `continuation` for more. A page may hold fewer runs than `limit`, even none, and still continue.",
        "parameters": [
            {"name": "target", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 40}},
            {"name": "pipeline", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 260}},
            {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(RunStatus.ALL)}},
            {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {"name": "continuation", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 1000}},
        ],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/RunPage"}, "A page of runs."),
            "404": _problem("Unknown target, or none of its pipelines and pools is for your product."),
        },
    },
    "list_targets": {
        "summary": "List the targets you may use",
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"value": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}}},
                },
                "Targets.",
            )
        },
    },
    "health": {
        "summary": "Health",
        "description": "Anonymous; no upstream calls; reveals nothing about the configuration.",
        "security": [],
        "responses": {
            "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "OK."),
            "503": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "Misconfigured."),
        },
    },
}


def _openapi(node: Any) -> Any:
    """A pydantic JSON schema made OpenAPI 3.0-friendly (``nullable`` instead of ``null`` types)."""
    if isinstance(node, dict):
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            others = [o for o in options if o != {"type": "null"}]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**rest, **others[0]} if len(others) == 1 else {**rest, "anyOf": others}
            node["nullable"] = True
        if isinstance(node.get("title"), str):  # pydantic's title annotation, not a property named "title"
            node = {k: v for k, v in node.items() if k != "title"}
        return {k: _openapi(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_openapi(v) for v in node]
    return node


def _public(node: Any) -> Any:
    """Component names as the API has always published them, whatever the Python class is called."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            return {**node, "$ref": REF + PUBLIC_NAMES.get(ref.removeprefix(REF), ref.removeprefix(REF))}
        return {k: _public(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_public(v) for v in node]
    return node


def schemas(models: dict[type[BaseModel], JsonSchemaMode]) -> dict[str, Any]:
    """Component schemas of the models and of every model they refer to."""
    found: dict[str, Any] = {}
    for model, mode in models.items():
        schema = model.model_json_schema(ref_template=REF + "{model}", mode=mode)
        for nested, definition in schema.pop("$defs", {}).items():
            found.setdefault(PUBLIC_NAMES.get(nested, nested), _public(_openapi(definition)))
        found[PUBLIC_NAMES.get(model.__name__, model.__name__)] = _public(_openapi(schema))
    return dict(sorted(found.items()))


def _path(route: str) -> str:
    return "/api/" + re.sub(r"\{(\w+)(?::[^}]*)?\??\}", r"{\1}", route)


def build(app: Any) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for function in registered_functions(app):
        name = function.get_function_name()
        trigger = next(
            (b for b in json.loads(function.get_function_json())["bindings"] if b["type"] == "httpTrigger"), None
        )
        if trigger is None:
            continue
        operation = {"operationId": name, **OPERATIONS[name]}
        for method in trigger["methods"]:
            paths.setdefault(_path(trigger["route"]), {})[method.lower()] = {
                **operation,
                "responses": {**_COMMON_ERRORS, **operation["responses"]},
            }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Start and watch Azure Data Factory and Synapse work.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas(
                {
                    **{model: "validation" for model in REQUEST_MODELS},
                    **{model: "serialization" for model in RESPONSE_MODELS},
                }
            ),
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
        },
        "security": [{"functionKey": []}],
    }


def main() -> None:
    from function_app import app

    json.dump(build(app), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
