"""Synapse Spark batch jobs (Livy API, sparkJob.json 2020-12-01) under ``/synapse/{workspace}/livyApi``.

States follow the emulated clock: ``not_started`` for the pool's ``queue_s``, ``starting`` for
``startup_s``, ``running`` for ``duration_s``, then ``success`` or ``dead``; DELETE kills a batch
that has not finished. ``result`` is ``Uncertain`` until the end, then Succeeded/Failed/Cancelled.

Outcome convention (documented in the README): a batch fails when the file name in ``file`` contains
``fail`` (any case) or ``conf["spark.emulator.outcome"]`` is ``Failed``; that conf set to
``Succeeded`` forces success; otherwise the pool's ``outcome`` decides.

Without ``detailed=true`` only the plain Livy fields (id, appId, appInfo, state, log) are returned;
this follows the spec's description of ``detailed`` and is an inference. Livy declares no error
responses, so the error bodies here (Azure's ``{"error": {...}}`` shape) are unverified.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .clock import Clock, isoformat
from .config import IdentitySpec, SparkPoolSpec, WorkspaceSpec
from .server import ApiError, Request, Response, Router
from .synapse import find_workspace

LIVY_VERSIONS = ("2019-11-01-preview", "2020-12-01", "2022-02-22-preview")
MAX_PAYLOAD_BYTES = 100 * 1024
MAX_PAGE = 20
PREFIX = "/synapse/{workspace}/livyApi/versions/{livyApiVersion}/sparkPools/{sparkPoolName}"
OUTCOME_CONF = "spark.emulator.outcome"
TERMINAL = frozenset({"success", "dead", "killed"})
_MEMORY = re.compile(r"^\d+[kmgtKMGT]?[bB]?$")
_LIST_FIELDS = ("args", "jars", "pyFiles", "files", "archives")
_INT_FIELDS = ("driverCores", "executorCores", "numExecutors")
_STR_FIELDS = ("className", "driverMemory", "executorMemory", "artifactId")


@dataclass(eq=False)
class SparkBatch:
    id: int
    workspace: str
    pool: str
    name: str
    file: str
    request: dict[str, Any]
    tags: dict[str, str] | None
    artifact_id: str | None
    created: float
    starting_at: float
    running_at: float
    ended_at: float
    succeeds: bool
    app_id: str
    create_correlation_id: str | None  # the create call's x-ms-correlation-request-id, for the admin listing
    cancel_at: float | None = None

    def state(self, now: float) -> str:
        if self.cancel_at is not None and now >= self.cancel_at:
            return "killed"
        if now < self.starting_at:
            return "not_started"
        if now < self.running_at:
            return "starting"
        if now < self.ended_at:
            return "running"
        return "success" if self.succeeds else "dead"

    def result(self, state: str) -> str:
        return {"success": "Succeeded", "dead": "Failed", "killed": "Cancelled"}.get(state, "Uncertain")

    def end(self, state: str) -> float | None:
        if state == "killed":
            return self.cancel_at
        return self.ended_at if state in TERMINAL else None


def _at(moment: float | None, now: float) -> str | None:
    return isoformat(moment) if moment is not None and moment <= now else None


class SparkApi:
    """Batches per workspace and pool; ids count up from 1 in each pool, like Livy's."""

    def __init__(
        self,
        workspaces: Sequence[WorkspaceSpec],
        clock: Clock,
        identity: IdentitySpec,
        endpoint_of: Callable[[str], str],
    ) -> None:
        self.clock = clock
        self.identity = identity
        self.endpoint_of = endpoint_of
        self._workspaces = {w.name.lower(): w for w in workspaces}
        self._lock = threading.Lock()
        self._batches: dict[tuple[str, str], dict[int, SparkBatch]] = {
            (w.name.lower(), p.name.lower()): {} for w in workspaces for p in w.spark_pools
        }
        self._ids = {key: itertools.count(1) for key in self._batches}

    def register(self, router: Router) -> None:
        router.add("SparkBatch_CreateSparkBatchJob", "POST", PREFIX + "/batches", self.create, "livy")
        router.add("SparkBatch_GetSparkBatchJobs", "GET", PREFIX + "/batches", self.list_batches, "livy")
        router.add("SparkBatch_GetSparkBatchJob", "GET", PREFIX + "/batches/{batchId}", self.get, "livy")
        router.add("SparkBatch_CancelSparkBatchJob", "DELETE", PREFIX + "/batches/{batchId}", self.cancel, "livy")

    def _pool(self, request: Request) -> tuple[WorkspaceSpec, SparkPoolSpec]:
        workspace = find_workspace(self._workspaces, request.params["workspace"])
        version = request.params["livyApiVersion"]
        if version not in LIVY_VERSIONS:
            raise ApiError(
                400,
                "InvalidLivyApiVersion",
                f"The Livy API version '{version}' is not supported. Supported versions: {', '.join(LIVY_VERSIONS)}.",
            )
        name = request.params["sparkPoolName"]
        for pool in workspace.spark_pools:
            if pool.name.lower() == name.lower():
                return workspace, pool
        raise ApiError(
            404,
            "BigDataPoolNotFound",
            f"The Spark pool '{name}' was not found in workspace '{workspace.name}'.",
            target=name,
        )

    def _batch(self, request: Request) -> tuple[WorkspaceSpec, SparkPoolSpec, SparkBatch]:
        workspace, pool = self._pool(request)
        raw = request.params["batchId"]
        batch = None
        if raw.isdigit():
            with self._lock:
                batch = self._batches[(workspace.name.lower(), pool.name.lower())].get(int(raw))
        if batch is None:
            raise ApiError(404, "BatchNotFound", f"Batch {raw} was not found in Spark pool '{pool.name}'.", target=raw)
        return workspace, pool, batch

    def create(self, request: Request) -> Response:
        workspace, pool = self._pool(request)
        if len(request.body) > MAX_PAYLOAD_BYTES:
            raise ApiError(
                413, "RequestEntityTooLarge", "The Livy request payload exceeds the maximum allowed size of 100 KB."
            )
        options = _validate(request.json())
        conf = options.get("conf") or {}
        forced = str(conf.get(OUTCOME_CONF, ""))
        file_name = str(options["file"]).rstrip("/").rsplit("/", 1)[-1]
        if forced in ("Failed", "Succeeded"):
            succeeds = forced == "Succeeded"
        else:
            succeeds = "fail" not in file_name.lower() and pool.outcome == "Succeeded"
        key = (workspace.name.lower(), pool.name.lower())
        now = self.clock.now()
        with self._lock:
            batch_id = next(self._ids[key])
            request_fields = {k: v for k, v in options.items() if k not in ("tags", "artifactId")}
            batch = SparkBatch(
                id=batch_id,
                workspace=workspace.name,
                pool=pool.name,
                name=str(options["name"]),
                file=str(options["file"]),
                request=request_fields,
                tags=options.get("tags"),
                artifact_id=options.get("artifactId"),
                created=now,
                starting_at=now + pool.queue_s,
                running_at=now + pool.queue_s + pool.startup_s,
                ended_at=now + pool.queue_s + pool.startup_s + pool.duration_s,
                succeeds=succeeds,
                app_id=f"application_{int(now * 1000)}_{batch_id:04d}",
                create_correlation_id=request.correlation_request_id,
            )
            self._batches[key][batch_id] = batch
        return Response(200, self._render(batch, bool(request.flag("detailed"))))

    def get(self, request: Request) -> Response:
        _, _, batch = self._batch(request)
        return Response(200, self._render(batch, bool(request.flag("detailed"))))

    def list_batches(self, request: Request) -> Response:
        workspace, pool = self._pool(request)
        start = _int_query(request, "from", 0)
        size = min(_int_query(request, "size", MAX_PAGE), MAX_PAGE)
        with self._lock:
            batches = list(self._batches[(workspace.name.lower(), pool.name.lower())].values())
        detailed = bool(request.flag("detailed"))
        sessions = [self._render(b, detailed) for b in batches[start : start + size]]
        return Response(200, {"from": start, "total": len(batches), "sessions": sessions})

    def cancel(self, request: Request) -> Response:
        _, _, batch = self._batch(request)
        now = self.clock.now()
        with self._lock:
            if batch.state(now) not in TERMINAL:
                batch.cancel_at = now
        return Response(200, {"msg": "deleted"})

    def all_batches(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            batches = sorted((b for pool in self._batches.values() for b in pool.values()), key=lambda b: b.created)
        return [
            {
                "service": "spark",
                "scope": f"synapse:{b.workspace}".lower(),
                "pool": b.pool,
                "batchId": b.id,
                "name": b.name,
                "state": b.state(now),
                "result": b.result(b.state(now)),
                "created": isoformat(b.created),
                "createCorrelationId": b.create_correlation_id,
            }
            for b in batches
        ]

    def _render(self, batch: SparkBatch, detailed: bool) -> dict[str, Any]:
        now = self.clock.now()
        state = batch.state(now)
        running = now >= batch.running_at and (batch.cancel_at is None or batch.cancel_at > batch.running_at)
        app_info = None
        if running:
            base = (
                f"{self.endpoint_of(batch.workspace)}/sparkhistory/api/v1/sparkpools/{batch.pool}"
                f"/livyid/{batch.id}/applications/{batch.app_id}"
            )
            app_info = {
                "driverLogUrl": f"{base}/driverlog/stdout/?isDownload=true",
                "sparkUiUrl": f"{base}/1/jobs/",
                "isSessionTimedOut": "false",
                "isStreamingQueryExists": "false",
            }
        core: dict[str, Any] = {
            "id": batch.id,
            "appId": batch.app_id if running else None,
            "appInfo": app_info,
            "state": state,
            "log": _log_lines(batch, state),
        }
        if not detailed:
            return core
        end = batch.end(state)
        ended = state in TERMINAL
        killed_at = batch.cancel_at if state == "killed" else None
        return {
            "livyInfo": {
                "notStartedAt": isoformat(batch.created),
                "startingAt": _at(batch.starting_at, min(now, killed_at or now)),
                "runningAt": _at(batch.running_at, min(now, killed_at or now)),
                "deadAt": isoformat(batch.ended_at) if state == "dead" else None,
                "successAt": isoformat(batch.ended_at) if state == "success" else None,
                "killedAt": isoformat(killed_at) if killed_at is not None else None,
                "recoveringAt": None,
                "currentState": state,
                "jobCreationRequest": batch.request,
            },
            "name": batch.name,
            "workspaceName": batch.workspace,
            "sparkPoolName": batch.pool,
            "submitterName": self.identity.name,
            "submitterId": self.identity.principal_id,
            "artifactId": batch.artifact_id,
            "jobType": "SparkBatch",
            "result": batch.result(state),
            "schedulerInfo": {
                "submittedAt": isoformat(batch.created),
                "scheduledAt": _at(batch.starting_at, min(now, killed_at or now)),
                "endedAt": isoformat(end) if end is not None else None,
                "cancellationRequestedAt": isoformat(killed_at) if killed_at is not None else None,
                "currentState": "Ended" if ended else ("Scheduled" if now >= batch.starting_at else "Queued"),
            },
            "pluginInfo": {
                "preparationStartedAt": isoformat(batch.created),
                "resourceAcquisitionStartedAt": isoformat(batch.created),
                "submissionStartedAt": _at(batch.starting_at, min(now, killed_at or now)),
                "monitoringStartedAt": _at(batch.running_at, min(now, killed_at or now)),
                "cleanupStartedAt": isoformat(end) if end is not None else None,
                "currentState": _plugin_state(batch, state, now),
            },
            "errorInfo": _errors(batch, state),
            "tags": batch.tags,
            **core,
        }


def _plugin_state(batch: SparkBatch, state: str, now: float) -> str:
    if state in TERMINAL:
        return "Ended"
    if state == "running":
        return "Monitoring"
    if state == "starting":
        return "Submission"
    return "ResourceAcquisition" if now >= batch.created + 0.1 else "Preparation"


def _errors(batch: SparkBatch, state: str) -> list[dict[str, str]]:
    if state == "dead":
        return [
            {
                "message": "Job failed during run time with state=[dead]. Error: [User application exited with "
                "status 1]. Check the driver log for the Python traceback.",
                "errorCode": "Spark_Ambiguous_NonJvmUserApp_ExitWithStatus1",
                "source": "User",
            }
        ]
    if state == "killed":
        return [
            {
                "message": "The Spark job was cancelled by the user.",
                "errorCode": "Spark_User_JobCancelled",
                "source": "User",
            }
        ]
    return []


def _log_lines(batch: SparkBatch, state: str) -> list[str]:
    """A driver-log tail like Livy's: enough for an alert to show why a job died."""
    if state in ("not_started", "starting"):
        return (
            [f"INFO YarnClient: Submitting application {batch.app_id} to ResourceManager"]
            if state == "starting"
            else []
        )
    script = batch.file.rstrip("/").rsplit("/", 1)[-1] or "main.py"
    lines = [
        "stdout: ",
        f"INFO SparkContext: Running Spark version 3.4.1.5.3 for app {batch.name}",
        f"INFO SparkContext: Submitted application: {batch.name}",
    ]
    if state == "running":
        return [*lines, "INFO DAGScheduler: Job 0 started"]
    if state == "success":
        return [
            *lines,
            "INFO DAGScheduler: Job 0 finished",
            "INFO SparkContext: Successfully stopped SparkContext",
            "\nstderr: ",
        ]
    if state == "killed":
        return [*lines, "ERROR ApplicationMaster: RECEIVED SIGNAL TERM", "\nstderr: "]
    return [
        *lines,
        "Traceback (most recent call last):",
        f'  File "/mnt/var/hadoop/tmp/nm-local-dir/usercache/trusted-service-user/appcache/{batch.app_id}/{script}", '
        "line 27, in <module>",
        '    orders = spark.read.parquet("abfss://raw@stcontosolake.dfs.core.windows.net/sales/orders/")',
        '  File "/opt/spark/python/lib/pyspark.zip/pyspark/sql/readwriter.py", line 531, in parquet',
        "    return self._df(self._jreader.parquet(_to_seq(self._spark._sc, paths)))",
        "pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist: "
        "abfss://raw@stcontosolake.dfs.core.windows.net/sales/orders/.",
        "INFO SparkContext: Successfully stopped SparkContext",
        "\nstderr: ",
        "\nYARN Diagnostics: ",
        "User application exited with status 1",
    ]


def _int_query(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name.lower())
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ApiError(400, "BadRequest", f"The query parameter '{name}' must be a non-negative integer.", target=name)
    return int(raw)


def _validate(body: Any) -> dict[str, Any]:
    """SparkBatchJobOptions as the spec types it; ``name`` and ``file`` are required."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "The request body must be a SparkBatchJobOptions object.")
    for name in ("name", "file"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise ApiError(400, "BadRequest", f"The '{name}' property is required.", target=name)
    for name in _LIST_FIELDS:
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ApiError(400, "BadRequest", f"'{name}' must be a list of strings.", target=name)
    for name in ("conf", "tags"):
        value = body.get(name)
        if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise ApiError(400, "BadRequest", f"'{name}' must be an object of strings.", target=name)
    for name in _INT_FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ApiError(400, "BadRequest", f"'{name}' must be a positive integer.", target=name)
    for name in _STR_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "BadRequest", f"'{name}' must be a string.", target=name)
    for name in ("driverMemory", "executorMemory"):
        value = body.get(name)
        if isinstance(value, str) and not _MEMORY.match(value):
            raise ApiError(400, "BadRequest", f"'{name}' must look like '4g' or '512m'.", target=name)
    copied: dict[str, Any] = json.loads(json.dumps(body))
    return copied
