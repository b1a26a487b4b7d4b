"""Pipeline definitions as the specs' ``PipelineResource``, for ADF ``Pipelines_Get`` and Synapse
``Pipeline_GetPipeline``.

The emulator declares a pipeline by how its runs behave (``config.PipelineSpec``), not by authored
JSON, so the definition is derived from that: the activities in order, each depending on the one
before it succeeding (the emulator runs them one after another and stops at the first failure), with
the ``typeProperties`` members the spec requires of the activity types the sample estate uses filled
with placeholders named after the activity (other types get an empty object, since the emulator does
not know what they require); and the declared parameters with their types. The etag is a hash of the
definition, so it stays the same for as long as the configuration does.
"""

from __future__ import annotations

import json
from typing import Any

from .arm import stable_uuid
from .config import ActivitySpec, PipelineSpec


def pipeline_resource(spec: PipelineSpec, resource_id: str, resource_type: str) -> dict[str, Any]:
    """The ``PipelineResource`` body: ``id``, ``name``, ``type``, ``etag`` and ``properties``."""
    share = spec.duration_s / max(len(spec.activities), 1)
    activities = []
    previous: ActivitySpec | None = None
    for activity in spec.activities:
        depends_on = [] if previous is None else [{"activity": previous.name, "dependencyConditions": ["Succeeded"]}]
        activities.append(
            {
                "name": activity.name,
                "type": activity.type,
                "dependsOn": depends_on,
                "userProperties": [],
                "typeProperties": _type_properties(activity, share),
            }
        )
        previous = activity
    properties = {
        "activities": activities,
        "parameters": {name: {"type": kind} for name, kind in (spec.parameters or {}).items()},
    }
    return {
        "id": resource_id,
        "name": spec.name,
        "type": resource_type,
        # Unquoted, as in both specs' Pipelines_Get examples (a factory's eTag is quoted).
        "etag": stable_uuid("etag", resource_id, json.dumps(properties, sort_keys=True)),
        "properties": properties,
    }


def _type_properties(activity: ActivitySpec, seconds: float) -> dict[str, Any]:
    """The members the spec marks required for this activity type; ``seconds`` is its emulated share."""
    name = activity.name
    dataset = {"referenceName": f"{name}Dataset", "type": "DatasetReference"}
    match activity.type:
        case "Copy":
            return {"source": {"type": "BlobSource"}, "sink": {"type": "BlobSink"}}
        case "Lookup":
            return {"source": {"type": "AzureSqlSource"}, "dataset": dataset}
        case "GetMetadata":
            return {"dataset": dataset}
        case "SqlServerStoredProcedure":
            return {"storedProcedureName": f"[dbo].[{name}]"}
        case "ExecutePipeline":
            # The emulated parent waits for its child: the activity lasts as long as the child run.
            pipeline = {"referenceName": activity.pipeline, "type": "PipelineReference"}
            return {"pipeline": pipeline, "waitOnCompletion": True}
        case "Wait":
            return {"waitTimeInSeconds": round(seconds)}
        case "SynapseNotebook":
            return {"notebook": {"referenceName": name, "type": "NotebookReference"}}
        case "DatabricksNotebook":
            return {"notebookPath": f"/Shared/{name}"}
    return {}
