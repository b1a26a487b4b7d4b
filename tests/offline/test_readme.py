"""The README as a newcomer follows it: its examples and the On call session, copied into a second
terminal after ``source .local/env``, against a ``make run``-style stack.

Each command runs as written, in order, in one bash session (a variable one sets is there for the next);
it must end as the README says: 0, or the code a ``# exits N`` comment names. curl is run with
``--fail-with-body`` so that an HTTP error counts as one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.offline.sandbox import ROOT, Command, Sandbox, readme_commands, session_script

README = (ROOT / "README.md").read_text(encoding="utf-8")


def run_session(sandbox: Sandbox, commands: list[Command], tmp_path: Path) -> list[str]:
    """Runs ``commands``; returns a line per command that did not end as the README says."""
    shims = tmp_path / "shims"
    shims.mkdir()
    curl = shutil.which("curl")
    assert curl, "the README's examples need curl"
    (shims / "curl").write_text(f'#!/bin/sh\nexec {curl} --fail-with-body "$@"\n', encoding="utf-8")
    (shims / "curl").chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    finished = sandbox.shell(session_script(commands, out), extra_path=str(shims), timeout=240)
    assert finished.returncode == 0, finished.stderr
    wrong = []
    for number, command in enumerate(commands):
        code = int((out / f"{number}.rc").read_text())
        if code != command.exits:
            error = (out / f"{number}.err").read_text()[-600:] or (out / f"{number}.out").read_text()[-600:]
            wrong.append(f"[{command.section}] {command.text!r} exited {code}, not {command.exits}: {error}")
    return wrong


@pytest.mark.timeout(300)  # a session of processes, each waiting on real runs; slower on a loaded machine
def test_readme_examples_run_as_written_against_make_run(sandbox: Sandbox, tmp_path: Path) -> None:
    examples = [command for command in readme_commands(README) if command.section != "On call"]

    assert any("curl" in command.text and "/pipelines/" in command.text for command in examples)
    assert run_session(sandbox, examples, tmp_path) == []


@pytest.mark.timeout(300)
def test_every_on_call_command_works_after_sourcing_the_env(sandbox: Sandbox, tmp_path: Path) -> None:
    on_call = [command for command in readme_commands(README) if command.section == "On call"]
    used = {command.text.split()[1] for command in on_call if command.text.startswith("pipeline-gateway ")}

    assert on_call[0].text.startswith("source .local/env"), "a second terminal starts by sourcing the env"
    assert {"alerts", "alert", "ack", "runs", "run", "rerun", "cancel", "targets", "summary"} <= used
    assert run_session(sandbox, on_call, tmp_path) == []


def test_readme_commands_are_read_from_examples_and_sessions_only() -> None:
    text = """## Intro
```sh
make demo
```
<!-- example -->
```sh
# a comment
curl -s "$API/health" \\
  -H "x: y"
false   # exits 1
```
## On call
```
$ pipeline-gateway alerts
 When  Target
$ pipeline-gateway alert nope   # exits 3
```
"""
    found = readme_commands(text)

    assert [(c.text, c.section, c.exits) for c in found] == [
        ('curl -s "$API/health" \\\n  -H "x: y"', "Intro", 0),
        ("false   # exits 1", "Intro", 1),
        ("pipeline-gateway alerts", "On call", 0),
        ("pipeline-gateway alert nope   # exits 3", "On call", 3),
    ]
