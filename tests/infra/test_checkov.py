"""checkov scans infra/ offline (bicep framework) with no failed check; every skip is an inline
`// checkov:skip=<id>:<reason>` comment with a real reason.

checkov pins packages that conflict with this project's test dependencies, so it lives in its own
virtual environment (.venv-checkov, created by `make test` from requirements-checkov.txt).
Override the executable with CHECKOV=/path/to/checkov.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra._support import INFRA, REPO

CONFIG = INFRA / ".checkov.yaml"


def _checkov() -> str:
    candidates = [
        os.environ.get("CHECKOV", ""),
        str(REPO / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "checkov not found: `make test` creates .venv-checkov "
        "(python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -r requirements-checkov.txt)"
    )


def _scan() -> dict[str, Any]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [_checkov(), "--config-file", str(CONFIG), "--output", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), f"checkov crashed ({result.returncode}): {result.stderr[-2000:]}"
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    (bicep,) = [r for r in reports if r.get("check_type") == "bicep"]
    bicep["stderr"] = result.stderr
    return bicep


def test_checkov_scan_of_infra() -> None:
    """One scan (about 10-20 s), one test: whichever xdist worker runs it, it runs once."""
    report = _scan()
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert report["summary"]["passed"] > 0
    # Every scanned file parsed, and no check crashed on a resource.
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert "Failed to run check" not in report["stderr"], report["stderr"][-2000:]
    # Every skip carries a real reason.
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert reason != "No comment provided" and len(reason) >= 40, (
            f"{check['check_id']} on {check['resource']} is skipped without a real reason: {reason!r}"
        )


def test_only_inline_skips_and_the_documented_skip_path() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    assert "skip-check" not in text, "skip checks inline, next to the resource, with a reason"
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("- infra/") and "skip-path" in "\n".join(lines[:index]):
            assert lines[index - 1].strip().startswith("#"), f"skip-path entry without a comment: {line}"
