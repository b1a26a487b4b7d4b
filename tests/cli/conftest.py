"""The CLI as on-call runs it: a separate process, against the offline stack (emulator + Azurite).

The stack is this folder's own, made the process's environment only for each test's duration: a
worker may also run the integration tests, whose stack owns the environment the rest of the time.
Each test's own table and queues, its app context and the targets come from tests/conftest.py; the
CLI process gets the app's environment, so it reaches Storage and the emulator as the app does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from offline.stack import OfflineStack
from shared.context import AppContext
from shared.poller.poller import Poller
from tests.conftest import body_of, integration_config, start

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("pipeline-gateway")
FINISH = 30  # emulated seconds after which the sample pipelines have ended


@pytest.fixture(scope="session")
def cli_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with OfflineStack(tmp_path_factory.mktemp("cli-stack"), emulator_config=integration_config()) as started:
        yield started


@pytest.fixture
def stack(cli_stack: OfflineStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[OfflineStack]:
    """The stack, as this process's environment (and identity) for the test's duration."""
    for name, value in cli_stack.environment().items():
        monkeypatch.setenv(name, value)
    yield cli_stack


class Cli:
    """Runs ``pipeline-gateway`` with the test's settings; ``env`` adds or overrides variables."""

    def __init__(self, names: dict[str, str]) -> None:
        self.env = {**os.environ, **names, "COLUMNS": "250", "NO_COLOR": "1"}
        self.env.pop("FORCE_COLOR", None)

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CONSOLE_SCRIPT), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(CONSOLE_SCRIPT), *args],
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(context: AppContext, names: dict[str, str]) -> Cli:
    return Cli(names)


def started(target: str, pipeline: str, **body: Any) -> str:
    response = start(target, pipeline, body)
    assert response.status_code == 202, response.get_body()
    return str(body_of(response)["id"])


@pytest.fixture
def fail_and_alert(context: AppContext, stack: OfflineStack) -> Callable[..., list[str]]:
    """Starts runs, lets them end, and has the poller raise their alerts; returns the run ids."""

    def run(*starts: tuple[str, str]) -> list[str]:
        ids = [started(target, pipeline) for target, pipeline in starts]
        stack.emulator.clock.advance(FINISH)
        Poller(context).tick()
        return ids

    return run
