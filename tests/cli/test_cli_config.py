"""The CLI's configuration, help, exit codes and output conventions, and its distance from the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from offline.stack import OfflineStack
from tests.cli.conftest import CONSOLE_SCRIPT, ROOT, Cli

COMMANDS = ("alerts", "alert", "ack", "runs", "run", "cancel", "rerun", "targets")


def test_every_command_has_help_and_the_module_runs_like_the_script(cli: Cli) -> None:
    for command in COMMANDS:
        shown = cli(command, "--help")
        assert shown.returncode == 0 and shown.stdout.startswith(f"Usage: pipeline-gateway {command}"), command
    module = subprocess.run(
        [sys.executable, "-m", "shared.cli", "--help"], env=cli.env, capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and "Exit codes: 0 done;" in module.stdout
    assert all(command in module.stdout for command in COMMANDS)


def test_settings_come_from_a_local_settings_file_like_the_functions_host(
    cli: Cli, stack: OfflineStack, names: dict[str, str], tmp_path: Path, adf: str
) -> None:
    values = {**stack.environment(), **names}
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": {**values, "GATEWAY_STORAGE": ""}}))
    bare = {name: value for name, value in cli.env.items() if name not in values}

    from_file = subprocess.run(
        [str(CONSOLE_SCRIPT), "--settings", str(settings_file), "targets", "--no-check", "--json"],
        env=bare,
        capture_output=True,
        text=True,
        check=False,
    )
    without = subprocess.run([str(CONSOLE_SCRIPT), "runs"], env=bare, capture_output=True, text=True, check=False)

    assert from_file.returncode == 0, from_file.stderr
    assert adf in [target["name"] for target in json.loads(from_file.stdout)["value"]]
    assert without.returncode == 5 and without.stderr.startswith("error: No ")


def test_flags_override_and_mistakes_get_usage_or_unavailable_codes(cli: Cli) -> None:
    typo = cli("--set", "GATEWAY_RUNS_TABEL=x", "runs")
    unreachable = cli("--set", "GATEWAY_STORAGE__tableServiceUri=https://127.0.0.1:9", "runs")
    no_command = cli("--no-such-flag")

    assert typo.returncode == 2 and "GATEWAY_RUNS_TABEL" in typo.stderr
    assert unreachable.returncode == 6 and "unavailable" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert no_command.returncode == 2


def test_colour_only_on_request_when_not_a_terminal(cli: Cli) -> None:
    plain = cli("targets", "--no-check", env={"NO_COLOR": ""})
    coloured = cli("--color", "targets", "--no-check", env={"NO_COLOR": ""})

    assert plain.returncode == coloured.returncode == 0
    assert "\x1b[" not in plain.stdout and "\x1b[" in coloured.stdout


def test_the_function_app_never_imports_the_cli_libraries(cli: Cli) -> None:
    """They are not installed in Azure, and they would slow the cold start."""
    probe = "import sys, function_app; print(sorted({'click', 'rich'} & set(sys.modules)))"
    for forwarding in ("", "https://hooks.example/alerts"):
        env = {**cli.env, "GATEWAY_FORWARD_URL": forwarding}
        loaded = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        assert loaded.stdout.strip() == "[]"
