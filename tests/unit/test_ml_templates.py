"""Azure ML job templates: what the catalog may declare, what a caller may set, and the job sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.config.catalog import parse_catalog
from shared.errors import ConfigurationError, ValidationFailed
from shared.kinds.machinelearning import MachineLearningTarget, job_name
from shared.kinds.ml_client import HistoryRun, MlStatus, _skip_token, parse_history_run, parse_job
from shared.kinds.ml_templates import RUN_ID_TAG, MlJobTemplate

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
COMPUTE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices"
    "/workspaces/contoso-aml/computes/cpu-cluster"
)
DATA = "azureml://datastores/workspaceblobstore/paths/sales/"


def command(**changes: Any) -> dict[str, Any]:
    return {
        "name": "train_model",
        "jobType": "Command",
        "command": "python train.py --epochs ${{inputs.epochs}} --data ${{inputs.data}}",
        "environmentId": "azureml:sklearn:3",
        "computeId": COMPUTE,
        "inputs": {
            "epochs": {"type": "integer", "default": 3, "settable": True},
            "rate": {"type": "number", "default": 0.1},
            "data": {"type": "uri_folder", "settable": True, "allowedPrefixes": [DATA], "mode": "ReadOnlyMount"},
        },
        **changes,
    }


def target(*jobs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "name": "ml",
        "kind": "machinelearning",
        "subscriptionId": SUBSCRIPTION,
        "resourceGroup": "rg-ml",
        "workspaceName": "contoso-aml",
        "jobs": list(jobs),
        **changes,
    }


def parsed(entry: dict[str, Any]) -> MachineLearningTarget:
    result = parse_catalog(json.dumps({"targets": [entry]}), "test").get(entry["name"])
    assert isinstance(result, MachineLearningTarget)
    return result


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (target(command(name="bad/name")), "targets[0].jobs[0].name"),
        (target(command(jobType="Sweep")), "targets[0].jobs[0].jobType"),
        (target(command(command=None)), "targets[0].jobs[0]"),
        (target(command(jobType="Pipeline")), "targets[0].jobs[0]"),
        (target(command(computeId="cpu-cluster")), "targets[0].jobs[0].computeId"),
        (target(command(environmentId="two words")), "targets[0].jobs[0].environmentId"),
        (target(command(inputs={"1st": {"type": "string", "default": "x"}})), "targets[0].jobs[0].inputs"),
        (target(command(inputs={"x": {"type": "string"}})), "targets[0].jobs[0].inputs.x"),
        (target(command(inputs={"x": {"type": "uri_file", "settable": True}})), "targets[0].jobs[0].inputs.x"),
        (target(command(inputs={"x": {"type": "integer", "default": "3"}})), "targets[0].jobs[0].inputs.x"),
        (
            target(command(inputs={"x": {"type": "uri_folder", "settable": True, "allowedPrefixes": [DATA[:-1]]}})),
            "targets[0].jobs[0].inputs.x.allowedPrefixes",
        ),
        (target(command(inputs={"x": {"type": "string", "default": "a", "mode": "Download"}})), "inputs.x"),
        (target(command(), workspaceName="x"), "targets[0].workspaceName"),
        (target(command(), runHistoryEndpoint="http://westeurope.api.azureml.ms"), "targets[0].runHistoryEndpoint"),
        (target(command(), pipelines=["copy"]), "targets[0]"),
        (target(command(), command()), "targets[0]"),
    ],
)
def test_catalog_errors_name_the_bad_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_catalog(json.dumps({"targets": [entry]}), "test")
    assert field in caught.value.detail


def test_a_pipeline_template_names_its_component_and_runs_no_command() -> None:
    pipeline = {"name": "score_batch", "jobType": "Pipeline", "componentId": "azureml:score_pipeline:2"}
    (template,) = parsed(target(pipeline)).jobs
    assert template.job("ml.x1", template.resolve({}))["properties"]["componentId"] == "azureml:score_pipeline:2"
    with pytest.raises(ConfigurationError):
        parsed(target({**pipeline, "command": "python x.py"}))


def template() -> MlJobTemplate:
    (result,) = parsed(target(command())).jobs
    return result


def test_callers_set_only_settable_inputs_of_their_type_and_uris_under_the_prefixes() -> None:
    cases = [
        ({"epochs": "3", "data": DATA}, "inputs.epochs"),
        ({"epochs": True, "data": DATA}, "inputs.epochs"),
        ({"rate": 0.5, "data": DATA}, "inputs.rate"),
        ({"data": "azureml://datastores/workspaceblobstore/paths/hr/"}, "inputs.data"),
        ({"data": DATA + "../hr/"}, "inputs.data"),
        ({"data": DATA + "x?sv=2020&sig=secret"}, "inputs.data"),
        ({"data": DATA + "%2e%2e/hr/"}, "inputs.data"),
        ({"data": DATA, "extra": 1}, "inputs.extra"),
        ({}, "inputs.data"),
    ]
    for given, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            template().resolve(given)
        assert [e["field"] for e in caught.value.errors] == [field], given


def test_the_job_carries_the_run_id_tag_defaults_and_the_callers_inputs_as_azure_ml_expects() -> None:
    values = template().resolve({"epochs": 5, "data": DATA + "2026/"})
    body = template().job("ml.8203924478731t3457fzc", values)["properties"]

    assert body["jobType"] == "Command" and body["displayName"] == "train_model"
    assert body["experimentName"] == "train_model" and body["computeId"] == COMPUTE
    assert body["tags"] == {RUN_ID_TAG: "ml.8203924478731t3457fzc"}
    assert body["inputs"] == {
        "epochs": {"jobInputType": "literal", "value": "5"},
        "rate": {"jobInputType": "literal", "value": "0.1"},
        "data": {"jobInputType": "uri_folder", "uri": DATA + "2026/", "mode": "ReadOnlyMount"},
    }
    assert "codeId" not in body and "componentId" not in body


def test_job_names_are_the_run_ids_in_azure_ml_spelling_and_never_collide() -> None:
    assert job_name("sales-ml.8203924478731t3457fzc") == "sales-ml_8203924478731t3457fzc"
    assert job_name("a.b-c") != job_name("a-b.c")


def test_a_job_answer_is_read_defensively() -> None:
    job = parse_job(
        {
            "name": "ml_1",
            "properties": {"jobType": "Pipeline", "status": "NotResponding", "tags": {RUN_ID_TAG: "ml.1"}},
            "systemData": {"createdAt": "2026-11-30T10:00:00Z"},
        },
        "Jobs_Get",
    )
    assert job.status == MlStatus.NOT_RESPONDING and job.tags == {RUN_ID_TAG: "ml.1"} and job.created
    assert parse_job({"name": "ml_2"}, "Jobs_List").status == MlStatus.UNKNOWN


def test_run_history_errors_give_the_category_and_the_innermost_code() -> None:
    run = parse_history_run(
        {
            "runId": "step-1",
            "status": "Failed",
            "error": {
                "error": {
                    "code": "UserError",
                    "message": "Execution failed.",
                    "innerError": {"code": "BadArgument", "innerError": {"code": "ScriptExecution.StreamAccess"}},
                }
            },
            "logFiles": {"user_logs/std_log.txt": "https://logs.example/x?sig=1", "bad": "file:///etc/passwd"},
        },
        "Runs_GetDetails",
    )
    assert isinstance(run, HistoryRun)
    assert (run.failure_type, run.error_code) == ("UserError", "ScriptExecution.StreamAccess")
    assert run.log_files == {"user_logs/std_log.txt": "https://logs.example/x?sig=1"}


def test_the_next_page_is_asked_for_by_its_skip_token_on_our_own_host() -> None:
    link = "https://evil.example/subscriptions/x/jobs?api-version=2025-09-01&$skipToken=abc%3D&tag=gatewayRunId"
    assert _skip_token(link) == "abc="
    assert _skip_token(None) is None and _skip_token("https://host/jobs") is None
