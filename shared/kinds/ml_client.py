"""Azure ML's two APIs as the gateway calls them: jobs through ARM (mfe.json, api-version a setting) and
run history on the workspace region's data plane (run-history v1.0: a job's details, its child runs
for pipeline steps, and its log files).

The run-history host is the workspace discovery document's ``api`` URL, as azure-ai-ml finds it,
unless the catalog sets it. Discovery documents and log files are fetched without a token: they come
from URLs Azure's answers name (a log's is a SAS URL, its own credential), and a bearer token never
goes to a host only because an answer named it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote

from shared.azure.transport import Operation, TargetClient, UpstreamClient
from shared.errors import OutcomeUnknown, UpstreamBadResponse
from shared.kinds.pipelines import parse_time

RUN_HISTORY_VERSION = "v1.0"
MAX_CHILD_PAGES = 5  # a pipeline's steps: enough pages to find the failed one, never a census
LOG_TAIL_LINES = 40
LOG_LINE_CHARS = 1000


class MlStatus:
    """Azure ML's ``JobStatus`` (mfe.json); run history's statuses are a subset."""

    NOT_STARTED = "NotStarted"
    STARTING = "Starting"
    PROVISIONING = "Provisioning"
    PREPARING = "Preparing"
    QUEUED = "Queued"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"
    PAUSED = "Paused"
    UNKNOWN = "Unknown"
    TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})


@dataclass(frozen=True)
class MlJob:
    """A job as ``Jobs_Get``/``Jobs_List`` report it (the resource carries no start or end time)."""

    name: str
    job_type: str
    status: str
    display_name: str
    created: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)
    studio: str | None = None


def parse_job(data: Any, operation: str) -> MlJob:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise UpstreamBadResponse(f"{operation} returned a job without a name.")
    properties: dict[str, Any] = data["properties"] if isinstance(data.get("properties"), dict) else {}
    system: dict[str, Any] = data["systemData"] if isinstance(data.get("systemData"), dict) else {}
    tags: dict[str, Any] = properties["tags"] if isinstance(properties.get("tags"), dict) else {}
    services: dict[str, Any] = properties["services"] if isinstance(properties.get("services"), dict) else {}
    studio = services.get("Studio") if isinstance(services.get("Studio"), dict) else {}
    endpoint = studio.get("endpoint") if isinstance(studio, dict) else None
    return MlJob(
        name=data["name"],
        job_type=str(properties.get("jobType") or ""),
        status=str(properties.get("status") or MlStatus.UNKNOWN),
        display_name=str(properties.get("displayName") or data["name"]),
        created=parse_time(system.get("createdAt")),
        tags={str(k): str(v) for k, v in tags.items()},
        studio=endpoint if isinstance(endpoint, str) and endpoint.startswith("https://") else None,
    )


@dataclass(frozen=True)
class HistoryRun:
    """A run-history ``Run`` or ``RunDetails``: a job, or one step of a pipeline job."""

    run_id: str
    name: str
    status: str
    start: datetime | None
    end: datetime | None
    failure_type: str  # the root error's code: UserError or SystemError, like ADF's failureType
    error_code: str  # the innermost innerError code, the specific one ("" when Azure gives none)
    error_message: str
    run_type: str
    log_files: Mapping[str, str] = field(default_factory=dict)


def parse_history_run(data: Any, operation: str) -> HistoryRun:
    if not isinstance(data, dict) or not isinstance(data.get("runId"), str):
        raise UpstreamBadResponse(f"{operation} returned a run without a runId.")
    error: Any = data.get("error")
    root: Any = error.get("error") if isinstance(error, dict) else None
    root = root if isinstance(root, dict) else {}
    inner, code = root.get("innerError"), ""
    for _ in range(10):  # innerError nests: the deepest code is the most specific
        if not isinstance(inner, dict) or not isinstance(inner.get("code"), str):
            break
        code, inner = inner["code"], inner.get("innerError")
    logs: Any = data.get("logFiles")
    logs = logs if isinstance(logs, dict) else {}
    return HistoryRun(
        run_id=data["runId"],
        name=str(data.get("displayName") or data.get("name") or data["runId"]),
        status=str(data.get("status") or ""),
        start=parse_time(data.get("startTimeUtc")),
        end=parse_time(data.get("endTimeUtc")),
        failure_type=str(root.get("code") or ""),
        error_code=code,
        error_message=str(root.get("message") or ""),
        run_type=str(data.get("runType") or ""),
        log_files={str(k): v for k, v in logs.items() if isinstance(v, str) and v.startswith("https://")},
    )


class MachineLearningClient(TargetClient):
    """Jobs of one workspace through ARM (``.../workspaces/{ws}``), at the api-version the settings give."""

    def __init__(
        self,
        upstream: UpstreamClient,
        *,
        resource_id: str,
        workspace: str,
        target: str,
        arm_endpoint: str,
        scope: str,
        api_version: str,
    ) -> None:
        super().__init__(upstream, base_url=arm_endpoint + resource_id, scope=scope, target=target)
        self.api_version = api_version
        # The role infra assigns (docs/deploy.md); the built-in one that also covers it, for hand-made setups.
        self.read_role = self.job_role = (
            f"the Pipeline Gateway ML job runner role (or AzureML Data Scientist) on Azure ML workspace {workspace}"
        )

    def get_workspace(self) -> dict[str, Any]:
        body, _ = self._call("Workspaces_Get", "GET", "", role=self.read_role)
        if not isinstance(body, dict):
            raise UpstreamBadResponse("Workspaces_Get returned no workspace.")
        return body

    def private_endpoint_connections(self) -> list[dict[str, Any]]:
        body, _ = self._call(
            "PrivateEndpointConnections_List", "GET", "/privateEndpointConnections", role=self.read_role
        )
        value = body.get("value") if isinstance(body, dict) else None
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

    def create_job(self, name: str, definition: Mapping[str, Any]) -> tuple[MlJob, str | None]:
        """Jobs_CreateOrUpdate under the gateway's name: sent twice, it answers with the same job."""
        body, request_id = self._call(
            "Jobs_CreateOrUpdate",
            "PUT",
            f"/jobs/{quote(name, safe='')}",
            role=self.job_role,
            creates=True,
            body=dict(definition),
        )
        try:
            return parse_job(body, "Jobs_CreateOrUpdate"), request_id
        except UpstreamBadResponse as exc:
            raise OutcomeUnknown(f"{exc.detail} Azure ML may have created the job.", request_id=request_id) from exc

    def get_job(self, name: str) -> MlJob:
        body, _ = self._call("Jobs_Get", "GET", f"/jobs/{quote(name, safe='')}", role=self.read_role)
        return parse_job(body, "Jobs_Get")

    def list_jobs(self, job_type: str, tag: str, skip_token: str | None = None) -> tuple[list[MlJob], str | None]:
        """One page of the workspace's jobs with ``tag`` and of ``job_type``, newest first, and the
        ``$skipToken`` of the next page (None on the last)."""
        params = {"jobType": job_type, "tag": tag, "listViewType": "All"}
        if skip_token:
            params["$skipToken"] = skip_token
        body, _ = self._call("Jobs_List", "GET", "/jobs", role=self.read_role, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise UpstreamBadResponse("Jobs_List returned a page without value.")
        jobs = [parse_job(item, "Jobs_List") for item in body["value"]]
        return jobs, _skip_token(body.get("nextLink"))

    def cancel_job(self, name: str) -> None:
        """Jobs_Cancel: 202 and an operation the gateway does not wait for; the poller sees it end."""
        self._call("Jobs_Cancel", "POST", f"/jobs/{quote(name, safe='')}/cancel", role=self.job_role)


def _skip_token(next_link: Any) -> str | None:
    """The ``$skipToken`` of a ``nextLink``: the next page is asked for on our own base URL, never on a
    host an answer names."""
    if not isinstance(next_link, str) or "?" not in next_link:
        return None
    query = parse_qs(next_link.split("?", 1)[1])
    tokens = query.get("$skipToken") or query.get("$skiptoken")
    return tokens[0] if tokens else None


class RunHistoryClient(TargetClient):
    """Run history of one workspace; its host is found once (discovery) and kept for the process."""

    api_version = RUN_HISTORY_VERSION

    def __init__(
        self,
        upstream: UpstreamClient,
        ml: MachineLearningClient,
        *,
        resource_id: str,
        workspace: str,
        target: str,
        scope: str,
        endpoint: str | None,
    ) -> None:
        super().__init__(upstream, base_url="", scope=scope, target=target)
        self._ml = ml
        self._resource_id = resource_id
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._lock = threading.Lock()
        self.role = (
            f"the Pipeline Gateway ML job runner role (or AzureML Data Scientist) on Azure ML workspace {workspace}"
        )

    def endpoint(self) -> str:
        """The run-history host: the catalog's, else the workspace discovery document's ``api`` URL."""
        with self._lock:
            if self._endpoint is None:
                self._endpoint = self._discover()
            self._base = f"{self._endpoint}/history/{RUN_HISTORY_VERSION}{self._resource_id}"
            return self._endpoint

    def _discover(self) -> str:
        properties = self._ml.get_workspace().get("properties") or {}
        url = properties.get("discoveryUrl") if isinstance(properties, dict) else None
        if not isinstance(url, str) or not url.startswith("https://"):
            raise UpstreamBadResponse("Workspaces_Get gave no https discoveryUrl to find run history by.")
        operation = Operation("Discovery_Get", self._target, "none (the discovery document is public)")
        body = self._upstream.call(operation, "GET", url, scope=None).body
        api = body.get("api") if isinstance(body, dict) else None
        if not isinstance(api, str) or not api.startswith("https://"):
            raise UpstreamBadResponse("The workspace's discovery document names no https api endpoint.")
        return api.rstrip("/")

    def _history(self, name: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        self.endpoint()
        body, _ = self._call(name, "GET", path, role=self.role, params=params)
        return body

    def get_run(self, run_id: str) -> HistoryRun:
        return parse_history_run(self._history("Runs_Get", f"/runs/{quote(run_id, safe='')}"), "Runs_Get")

    def get_details(self, run_id: str) -> HistoryRun:
        body = self._history("Runs_GetDetails", f"/runs/{quote(run_id, safe='')}/details")
        return parse_history_run(body, "Runs_GetDetails")

    def children(self, run_id: str) -> list[HistoryRun]:
        """A pipeline job's step runs (``Runs_GetChild``), a few pages at most."""
        found: list[HistoryRun] = []
        token: str | None = None
        for _ in range(MAX_CHILD_PAGES):
            params = {"$continuationtoken": token} if token else None
            body = self._history("Runs_GetChild", f"/runs/{quote(run_id, safe='')}/children", params)
            value = body.get("value") if isinstance(body, dict) else None
            found.extend(parse_history_run(item, "Runs_GetChild") for item in value or [] if isinstance(item, dict))
            token = body.get("continuationToken") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                break
        return found

    def log_tail(self, url: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` of a log file, from the SAS URL run history gave (sent without a token)."""
        operation = Operation("RunLogs_Download", self._target, "none (the log's URL carries its own signature)")
        text = self._upstream.call(operation, "GET", url, scope=None, text=True).body
        return [line[:LOG_LINE_CHARS] for line in str(text or "").splitlines()[-lines:]]
