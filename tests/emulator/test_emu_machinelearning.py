"""Azure Machine Learning through the official azure-ai-ml and azure-mgmt-machinelearningservices clients,
unchanged, plus raw calls for what the SDKs hide (status codes, LRO headers, run history, log downloads).

azure-ai-ml is pointed at the emulator with its own developer override of the ARM endpoint
(``AZUREML_DEV_URL_MFE``), so it still asks for ARM tokens; it finds run history through the workspace's
``discoveryUrl`` like it does in Azure.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import MLClient, command
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

from offline.emulator import Emulator, EmulatorConfig, Fault
from offline.emulator.config import SAMPLE_ML_WORKSPACE, JobTemplateSpec, MlWorkspaceSpec

from .conftest import RawClient

API = "2025-09-01"
ML = "https://ml.azure.com"
SLOW = {"start_s": 10.0, "prepare_s": 10.0, "queue_s": 10.0, "duration_s": 60.0}
TEMPLATES = (
    JobTemplateSpec("slow_train", job_type="Command", log_lines=("epoch 1", "epoch 2", "saved model"), **SLOW),
    JobTemplateSpec(
        "slow_crash",
        job_type="Command",
        outcome="Failed",
        error_code="UserError",
        error_message="User process 'python' exited with status code 1.",
        log_lines=("loading data", "Traceback (most recent call last):", "ValueError: bad row"),
        **SLOW,
    ),
    JobTemplateSpec(
        "slow_pipeline",
        job_type="Pipeline",
        outcome="Failed",
        steps=("prep", "score", "publish"),
        failing_step="score",
        error_code="UserError",
        error_message="Step score failed: KeyError 'store_region'.",
        log_lines=("Loading model", "KeyError: 'store_region'"),
        **SLOW,
    ),
)


@pytest.fixture(scope="module")
def emu(tls_dir: Path) -> Iterator[Emulator]:
    """The sample estate with the sample Azure ML workspace plus slow templates (tests move the clock)."""
    workspace = MlWorkspaceSpec(
        SAMPLE_ML_WORKSPACE.name,
        resource_group=SAMPLE_ML_WORKSPACE.resource_group,
        templates=(*TEMPLATES, *SAMPLE_ML_WORKSPACE.templates),
    )
    config = EmulatorConfig.default()
    config = EmulatorConfig(factories=config.factories, workspaces=config.workspaces, ml_workspaces=(workspace,))
    with Emulator(config, tls_dir=tls_dir) as emulator:
        yield emulator


@pytest.fixture
def ws(info: dict[str, Any]) -> dict[str, Any]:
    return dict(info["ml_workspaces"][0])


@pytest.fixture
def ml(
    credential: ManagedIdentityCredential, info: dict[str, Any], ws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> MLClient:
    monkeypatch.setenv("AZUREML_DEV_URL_MFE", info["arm_endpoint"])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_bundle"])
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)  # MLClient sets it; restored afterwards
    return MLClient(
        credential,
        ws["subscription_id"],
        ws["resource_group"],
        ws["name"],
        show_progress=False,
        enable_telemetry=False,
        connection_verify=info["ca_bundle"],
    )


def ws_path(ws: dict[str, Any], suffix: str = "", api_version: str | None = API) -> str:
    path = (
        f"/subscriptions/{ws['subscription_id']}/resourceGroups/{ws['resource_group']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ws['name']}{suffix}"
    )
    return f"{path}?api-version={api_version}" if api_version else path


def history_path(ws: dict[str, Any], suffix: str) -> str:
    return (
        f"/azureml/{ws['location']}/history/v1.0/subscriptions/{ws['subscription_id']}/resourceGroups/"
        f"{ws['resource_group']}/providers/Microsoft.MachineLearningServices/workspaces/{ws['name']}{suffix}"
    )


def command_body(experiment: str, **extra: Any) -> dict[str, Any]:
    return {
        "properties": {
            "jobType": "Command",
            "command": "python train.py",
            "environmentId": "azureml:AzureML-sklearn-1.0:1",
            "computeId": "cpu-cluster",
            "experimentName": experiment,
            **extra,
        }
    }


def pipeline_body(experiment: str) -> dict[str, Any]:
    return {
        "properties": {
            "jobType": "Pipeline",
            "experimentName": experiment,
            "settings": {},  # as the spec's example: the steps' components live outside the emulated API
            "tags": {"kind": "batch"},
        }
    }


def test_workspace_via_mgmt_sdk_and_azure_ai_ml(
    credential: ManagedIdentityCredential, info: dict[str, Any], ws: dict[str, Any], ml: MLClient, raw: RawClient
) -> None:
    client = MachineLearningServicesMgmtClient(
        credential, ws["subscription_id"], base_url=info["arm_endpoint"], connection_verify=info["ca_bundle"]
    )
    found = client.workspaces.get(ws["resource_group"], ws["name"])
    assert found.name == ws["name"] and found.location == ws["location"]
    assert found.discovery_url == f"{ws['api_endpoint']}/discovery" and found.provisioning_state == "Succeeded"
    workspace = ml.workspaces.get(ws["name"])
    assert workspace.discovery_url == found.discovery_url and workspace.public_network_access == "Enabled"
    assert workspace.mlflow_tracking_uri.startswith("azureml://")
    reply = raw("GET", ws_path(ws))
    assert reply.body["properties"]["managedNetwork"]["isolationMode"] == "Disabled"
    # The sample Synapse workspace's managed private endpoint to this workspace, awaiting approval.
    connections = raw("GET", ws_path(ws, "/privateEndpointConnections")).body["value"]
    assert [c["properties"]["privateLinkServiceConnectionState"]["status"] for c in connections] == ["Pending"]
    discovery = raw("GET", f"/azureml/{ws['location']}/discovery", auth=None)
    assert discovery.status == 200 and discovery.body["api"] == ws["api_endpoint"]
    missing = raw("GET", ws_path(dict(ws, name="nope-ws")))
    assert missing.status == 404 and missing.body["error"]["code"] == "ResourceNotFound"


def test_api_versions_and_audiences(raw: RawClient, ws: dict[str, Any]) -> None:
    assert raw("GET", ws_path(ws, "/jobs", "2026-07-01")).status == 200, "the newest stable version, same shapes"
    unknown = raw("GET", ws_path(ws, "/jobs", "2031-01-01"))
    assert unknown.status == 400 and unknown.body["error"]["code"] == "InvalidApiVersionParameter"
    assert raw("GET", ws_path(ws, "/jobs", None)).body["error"]["code"] == "MissingApiVersionParameter"
    assert raw("GET", ws_path(ws, "/jobs"), auth=ML).status == 401
    history = raw("GET", history_path(ws, "/runs/nope"), auth="https://dev.azuresynapse.net")
    assert history.status == 401 and history.body["error"]["code"] == "InvalidAuthenticationTokenAudience"
    unknown = raw("GET", history_path(ws, "/runs/nope"), auth=ML)
    assert unknown.status == 404 and unknown.headers["x-ms-error-code"] == "RunNotFound"
    assert raw("GET", history_path(ws, "/runs/nope?api-version=2020-01-01"), auth=ML).status == 400


def test_command_job_progresses_with_the_clock(ml: MLClient, emu: Emulator, raw: RawClient, ws: dict[str, Any]) -> None:
    job = command(
        command="python train.py",
        environment="azureml:AzureML-sklearn-1.0:1",
        compute="cpu-cluster",
        name="train-progress",
        experiment_name="slow_train",
        tags={"team": "forecast"},
    )
    created = ml.jobs.create_or_update(job)
    assert created.status == "NotStarted" and created.tags == {"team": "forecast"}
    assert created.studio_url.startswith("https://ml.azure.com/runs/train-progress?wsid=")
    for seconds, status in ((10, "Preparing"), (10, "Queued"), (10, "Running"), (60, "Completed")):
        emu.clock.advance(seconds)
        assert ml.jobs.get("train-progress").status == status
    [listed] = [r for r in emu.runs() if r["runId"] == "train-progress"]
    assert listed["service"] == "aml" and listed["status"] == "Completed"
    assert listed["template"] == "slow_train" and listed["tags"] == {"team": "forecast"}
    details = raw("GET", history_path(ws, "/runs/train-progress/details"), auth=ML).body
    assert details["status"] == "Completed" and details["error"] is None
    log = _download(emu, details["logFiles"]["user_logs/std_log.txt"])
    assert log.splitlines()[-3:] == ["epoch 1", "epoch 2", "saved model"]


def test_put_is_idempotent_and_refuses_definition_changes(raw: RawClient, emu: Emulator, ws: dict[str, Any]) -> None:
    path = ws_path(ws, "/jobs/idem-1")
    first = raw("PUT", path, command_body("slow_train", tags={"a": "1"}), headers={"x-ms-correlation-request-id": "c1"})
    again = raw("PUT", path, command_body("slow_train", tags={"a": "1"}), headers={"x-ms-correlation-request-id": "c2"})
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    [listed] = [r for r in emu.runs() if r["runId"] == "idem-1"]
    assert listed["createCorrelationId"] == "c1"
    changed = raw("PUT", path, command_body("slow_train", command="python other.py"))
    assert changed.status == 400 and changed.body["error"]["code"] == "PropertyChangeNotAllowed"
    assert changed.body["error"]["target"] == "command"
    retagged = raw("PUT", path, command_body("slow_train", tags={"a": "2"}))
    assert retagged.status == 200 and retagged.body["properties"]["tags"] == {"a": "2"}
    bad = raw("PUT", ws_path(ws, "/jobs/bad"), {"properties": {"jobType": "AutoML"}})
    assert bad.status == 400 and bad.body["error"]["target"] == "properties.jobType"
    no_command = raw("PUT", ws_path(ws, "/jobs/bad"), {"properties": {"jobType": "Command", "environmentId": "e"}})
    assert no_command.status == 400 and no_command.body["error"]["target"] == "properties.command"


def test_list_filters_pages_newest_first(ml: MLClient, emu: Emulator, raw: RawClient, ws: dict[str, Any]) -> None:
    for index in range(3):
        raw("PUT", ws_path(ws, f"/jobs/list-{index}"), command_body("slow_train", tags={"listed": str(index)}))
    raw("PUT", ws_path(ws, "/jobs/list-archived"), command_body("slow_train", isArchived=True, tags={"listed": "x"}))
    raw("PUT", ws_path(ws, "/jobs/list-pipe"), pipeline_body("slow_pipeline"))
    emu.set_page_size(2)
    names = [job.name for job in ml.jobs.list()]
    assert names[:4] == ["list-pipe", "list-2", "list-1", "list-0"] and "list-archived" not in names
    first = raw("GET", ws_path(ws, "/jobs") + "&tag=listed").body
    assert [j["name"] for j in first["value"]] == ["list-2", "list-1"]
    assert "tag=listed" in first["nextLink"] and "%24skipToken=" in first["nextLink"]
    second = raw("GET", first["nextLink"].removeprefix(emu.base_url)).body
    assert [j["name"] for j in second["value"]] == ["list-0"] and second["nextLink"] is None
    archived = raw("GET", ws_path(ws, "/jobs") + "&listViewType=ArchivedOnly").body["value"]
    assert [j["name"] for j in archived] == ["list-archived"]
    emu.set_page_size(100)
    pipelines = raw("GET", ws_path(ws, "/jobs") + "&jobType=Pipeline").body["value"]
    assert {j["properties"]["jobType"] for j in pipelines} == {"Pipeline"}
    assert raw("GET", ws_path(ws, "/jobs") + "&listViewType=Everything").status == 400
    assert raw("GET", ws_path(ws, "/jobs") + "&$skipToken=garbage!").status == 400


def test_cancel_is_a_long_running_operation(ml: MLClient, emu: Emulator, raw: RawClient, ws: dict[str, Any]) -> None:
    raw("PUT", ws_path(ws, "/jobs/cancel-me"), command_body("slow_train"))
    emu.clock.advance(35)
    reply = raw("POST", ws_path(ws, "/jobs/cancel-me/cancel"))
    assert reply.status == 202 and "mfeOperationResults" in reply.headers["location"]
    assert "mfeOperationsStatus" in reply.headers["azure-asyncoperation"]
    assert ml.jobs.get("cancel-me").status == "CancelRequested"
    status = raw("GET", reply.headers["azure-asyncoperation"].removeprefix(emu.base_url)).body
    assert status["status"] == "InProgress"
    raw("PUT", ws_path(ws, "/jobs/cancel-sdk"), command_body("slow_train"))
    poller = ml.jobs.begin_cancel("cancel-sdk")
    emu.clock.advance(2)
    poller.result(timeout=30)
    assert poller.done() and ml.jobs.get("cancel-sdk").status == "Canceled"
    assert ml.jobs.get("cancel-me").status == "Canceled"
    with pytest.raises(ResourceNotFoundError):
        ml.jobs.begin_cancel("never-submitted")


def test_failed_pipeline_job_children_errors_and_logs(
    ml: MLClient, emu: Emulator, raw: RawClient, ws: dict[str, Any]
) -> None:
    created = raw("PUT", ws_path(ws, "/jobs/pipe-fail"), pipeline_body("slow_pipeline"))
    assert created.status == 201 and created.body["properties"]["status"] == "NotStarted"
    emu.clock.advance(30 + 20 + 1)
    assert [c.name for c in ml.jobs.list(parent_job_name="pipe-fail")] != []
    emu.clock.advance(30)
    job = ml.jobs.get("pipe-fail")
    assert job.status == "Failed" and job.tags == {"kind": "batch"}
    children = list(ml.jobs.list(parent_job_name="pipe-fail"))
    assert [(c.display_name, c.status) for c in children] == [("prep", "Completed"), ("score", "Failed")]
    child = ml.jobs.get(children[1].name)  # MFE answers without properties; azure-ai-ml asks run history
    assert child.status == "Failed"
    parent = raw("GET", history_path(ws, "/runs/pipe-fail/details"), auth=ML).body
    assert parent["error"]["error"]["code"] == "UserError"
    assert list(parent["logFiles"]) == ["logs/azureml/executionlogs.txt"]
    step = raw("GET", history_path(ws, f"/runs/{children[1].name}/details"), auth=ML).body
    assert step["parentRunId"] == "pipe-fail" and step["status"] == "Failed"
    assert step["error"]["error"]["message"] == "Step score failed: KeyError 'store_region'."
    url = step["logFiles"]["user_logs/std_log.txt"]
    assert url.startswith("https://127.0.0.1:")
    assert _download(emu, url).splitlines()[1:3] == ["Loading model", "KeyError: 'store_region'"]
    forged = url.rsplit("sig=", 1)[0] + "sig=" + "0" * 64
    assert raw("GET", forged.removeprefix(emu.base_url), auth=None).status == 403
    by_experiment = raw("GET", history_path(ws, "/experiments/slow_pipeline/runs/pipe-fail/children"), auth=ML)
    assert [r["displayName"] for r in by_experiment.body["value"]] == ["prep", "score"]
    assert raw("GET", history_path(ws, "/experiments/other/runs/pipe-fail/children"), auth=ML).status == 404
    steps = [r for r in emu.runs() if r.get("parentRunId") == "pipe-fail"]
    assert [(r["step"], r["status"], r["createCorrelationId"]) for r in steps] == [
        ("prep", "Completed", None),
        ("score", "Failed", None),
    ]


def test_failed_command_job_reports_error_and_log(emu: Emulator, raw: RawClient, ws: dict[str, Any]) -> None:
    raw("PUT", ws_path(ws, "/jobs/crash-1"), command_body("slow_crash"))
    emu.clock.advance(95)
    run = raw("GET", history_path(ws, "/runs/crash-1"), auth=ML).body
    assert run["status"] == "Failed" and run["error"]["error"]["code"] == "UserError"
    details = raw("GET", history_path(ws, "/runs/crash-1/details"), auth="https://management.azure.com").body
    log = _download(emu, details["logFiles"]["user_logs/std_log.txt"])
    assert "ValueError: bad row" in log and log.rstrip().endswith("exited with status code 1.")


def test_faults_counters_and_delete(ml: MLClient, emu: Emulator, raw: RawClient, ws: dict[str, Any]) -> None:
    raw("PUT", ws_path(ws, "/jobs/faulted"), command_body("slow_train"))
    emu.reset_counters()
    emu.faults.add(Fault(route="Jobs_Get", kind="status", status=503, count=1))
    assert raw("GET", ws_path(ws, "/jobs/faulted")).status == 503
    assert ml.jobs.get("faulted").name == "faulted"
    assert emu.counters["Jobs_Get"] == 2
    deleted = raw("DELETE", ws_path(ws, "/jobs/faulted"))
    assert deleted.status == 202 and "mfeOperationResults" in deleted.headers["location"]
    assert raw("GET", deleted.headers["location"].removeprefix(emu.base_url)).status == 200
    with pytest.raises(ResourceNotFoundError):
        ml.jobs.get("faulted")
    emu.faults.add(Fault(route="Runs_GetDetails", kind="status", status=429, retry_after=1, count=1))
    throttled = raw("GET", history_path(ws, "/runs/x/details"), auth=ML)
    assert throttled.status == 429 and throttled.headers["retry-after"] == "1"
    with pytest.raises(HttpResponseError):
        ml.jobs.get("!bad name")


def test_default_config_and_info(emu: Emulator) -> None:
    [sample] = EmulatorConfig.default().ml_workspaces
    kinds = {(t.job_type, t.outcome) for t in sample.templates}
    assert kinds == {("Command", "Succeeded"), ("Pipeline", "Failed"), ("Pipeline", "Succeeded")}
    assert EmulatorConfig.from_dict(EmulatorConfig.default().to_dict()).ml_workspaces == (sample,)
    [info] = emu.info["ml_workspaces"]
    assert {"name": "slow_pipeline", "job_type": "Pipeline", "outcome": "Failed"} in info["templates"]
    with pytest.raises(ValueError, match="failing step"):
        JobTemplateSpec("p", job_type="Pipeline", steps=("a",), failing_step="b")


def _download(emu: Emulator, url: str) -> str:
    """A log file over HTTPS with no token, like a SAS blob URL."""
    context = ssl.create_default_context(cafile=str(emu.ca_bundle))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text: str = response.read().decode()
    return text
