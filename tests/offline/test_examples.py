"""The caller aids in examples/: requests.http up to date with openapi.json and answered by the sandbox, and
the GitHub Actions workflow's step and the Python caller waiting on a run that succeeds and one that fails."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import requests
import yaml

from tests.offline.sandbox import ROOT, Sandbox

EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
import requests_http  # noqa: E402  # the generator is a script in examples/, not a package

WORKFLOW = EXAMPLES / "github-actions" / "pipeline-run.yml"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def test_requests_http_is_generated_from_openapi() -> None:
    generated = requests_http.render(json.loads((ROOT / "openapi.json").read_text(encoding="utf-8")))

    assert (EXAMPLES / "requests.http").read_text(encoding="utf-8") == generated, (
        "examples/requests.http is stale: run make openapi"
    )


def http_requests(text: str, variables: dict[str, str]) -> list[tuple[str, str, str, dict[str, str], str]]:
    """The file's requests (title, method, URL, headers, body) with ``{{name}}`` resolved: its ``@name``
    lines, then ``variables`` over them, as a user fills them in."""
    values = dict(re.findall(r"^@(\w+) = (.*)$", text, re.MULTILINE)) | variables
    found = []
    for block in text.split("\n### ")[1:]:
        resolved = re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], block)
        head, _, body = resolved.partition("\n\n")
        title, request, *headers = head.splitlines()
        method, url = request.split(" ", 1)
        found.append((title, method, url, dict(line.split(": ", 1) for line in headers), body.strip()))
    return found


def test_every_request_of_requests_http_is_answered_by_the_sandbox(sandbox: Sandbox) -> None:
    env = sandbox.environment()
    key = {"x-functions-key": env["KEY"]}
    long_running = f"{env['API']}/targets/contoso-adf/pipelines/long_running/runs"
    running = requests.post(long_running, headers=key, json={}, timeout=30)
    assert running.status_code == 202, running.text
    text = (EXAMPLES / "requests.http").read_text(encoding="utf-8")

    answers = {
        title: requests.request(method, url, headers=headers, data=body or None, timeout=60).status_code
        for title, method, url, headers, body in http_requests(
            text, {"api": env["API"], "key": env["KEY"], "run": running.json()["id"]}
        )
    }

    operations = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"].values()
    assert len(answers) == sum(len(methods) for methods in operations)
    refused = {title: status for title, status in answers.items() if not 200 <= status < 300}
    assert refused == {"Rerun an ended run (rerun)": 409}, "only the rerun of a run still going is refused"


def workflow_step(context: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The workflow's step that starts and waits: its script, and its env with the expressions filled in
    from ``context`` as Actions would."""
    steps = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["load"]["steps"]
    step = next(step for step in steps if step.get("id") == "run")
    env = {name: EXPRESSION.sub(lambda match: context[match.group(1)], value) for name, value in step["env"].items()}
    return step["run"], env


def test_workflow_step_and_python_caller_pass_a_run_that_succeeds_and_fail_one_that_fails(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = sandbox.environment()
    # A runner's environment, this sandbox's key header (APIM's in Azure), and short waits.
    runner = {
        "PATH": env["PATH"],
        "HOME": str(tmp_path),
        "GATEWAY_KEY_HEADER": "x-functions-key",
        "POLL_SECONDS": "1",
        "POLL_MAX_SECONDS": "2",
    }
    workflow_run = str(uuid.uuid4().int % 10**10)

    def action(pipeline: str, run_id: str, outputs: Path) -> subprocess.Popen[str]:
        script, step_env = workflow_step(
            {
                "vars.GATEWAY_API": env["API"],
                "secrets.GATEWAY_KEY": env["KEY"],
                "github.run_id": run_id,
                "github.run_attempt": "1",
                "inputs.pipeline": pipeline,
                "inputs.date": "2026-11-21",
            }
        )
        files = {"GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(outputs.with_suffix(".md"))}
        return subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=ROOT,  # the checkout
            env={**runner, **step_env, **files},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def caller(pipeline: str) -> subprocess.Popen[str]:
        arguments = ["--idempotency-key", f"py-{workflow_run}-{pipeline}", "--poll", "1", "--poll-max", "2"]
        return subprocess.Popen(
            [sys.executable, str(EXAMPLES / "caller.py"), "contoso-adf", pipeline, *arguments],
            env={**runner, "GATEWAY_API": env["API"], "GATEWAY_KEY": env["KEY"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    processes = {
        "action succeeds": action("daily_load", workflow_run, tmp_path / "ok.out"),
        "action fails": action("copy_sales", workflow_run + "1", tmp_path / "failed.out"),
        "caller succeeds": caller("daily_load"),
        "caller fails": caller("copy_sales"),
    }
    ended = {name: (*process.communicate(timeout=90), process.returncode) for name, process in processes.items()}
    retried = action("daily_load", workflow_run, tmp_path / "again.out")  # the step again, same run and attempt
    again_out, again_err = retried.communicate(timeout=90)

    codes = {name: code for name, (_, _, code) in ended.items()}
    assert codes == {"action succeeds": 0, "action fails": 1, "caller succeeds": 0, "caller fails": 1}, ended
    for failing in ("action fails", "caller fails"):
        assert "Failed" in ended[failing][0] and "SqlFailedToConnect" in ended[failing][1]
    outputs = dict(line.split("=", 1) for line in (tmp_path / "ok.out").read_text().splitlines())
    assert outputs["status"] == "Succeeded" and "**Succeeded**" in (tmp_path / "ok.md").read_text()
    assert retried.returncode == 0, again_err
    assert "replayed" in again_out and outputs["run-id"] in again_out, "a retried step waits on the same run"
