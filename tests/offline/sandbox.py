"""``make run`` as a test starts it: ``python -m offline.stack`` as a process, its state in a folder of the
test's own, and a "second terminal": a bash with little more than a system PATH that sources ``.local/env``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl+C stops everything."
START_TIMEOUT = 90.0
STACK = (sys.executable, "-m", "offline.stack")
_EXITS = re.compile(r"#\s*exits\s+(\d+)\b[^\n]*$")


def terminal_path() -> str:
    """The system PATH without the virtual environment: ``.local/env`` must put the CLI on it."""
    venv_bin = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(part for part in parts if part != venv_bin)


class Sandbox:
    """One ``make run``-style stack: ``home`` is the folder a user works in, with ``.local/`` under it."""

    def __init__(self, home: Path, *, poll_seconds: float = 1.0) -> None:
        self.home = home
        self.poll_seconds = poll_seconds
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def state(self) -> Path:
        return self.home / ".local"

    def start(self) -> Sandbox:
        self._ready.clear()
        self.output = []
        log = (self.home / "stack.log").open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            [*STACK, "--dir", str(self.state), "--port", "0", "--poll-seconds", str(self.poll_seconds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"make run did not start: {self.printed}\n{(self.home / 'stack.log').read_text()}")
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if line.strip() == READY:
                self._ready.set()

    @property
    def printed(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        """As Ctrl+C or a service manager would: SIGTERM, then the stack stops in order."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def environment(self) -> dict[str, str]:
        """What ``source .local/env`` exports, as a second terminal would have it."""
        shown = self.shell("source .local/env && env -0")
        assert shown.returncode == 0, shown.stderr
        return dict(item.split("=", 1) for item in shown.stdout.split("\0") if "=" in item)

    def shell(
        self, script: str, *, extra_path: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``script`` in bash, in the user's folder, with a terminal's bare environment."""
        path = terminal_path() if extra_path is None else f"{extra_path}{os.pathsep}{terminal_path()}"
        env = {"PATH": path, "HOME": str(self.home), "LANG": "C.UTF-8", "COLUMNS": "140", "NO_COLOR": "1"}
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@dataclass(frozen=True)
class Command:
    """A command from the README: as written, and the exit code it says it ends with (0 unless ``# exits N``)."""

    text: str
    section: str
    exits: int


def readme_commands(text: str) -> list[Command]:
    """The commands of the README, in order: every line of a shell block marked ``<!-- example -->``
    (a trailing backslash continues it), and in the On call section every ``$ `` line of a session."""
    commands: list[Command] = []
    section = ""
    lines = text.splitlines()
    index = 0
    previous = ""
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("```"):
            if line.strip():
                previous = line.strip()
            index += 1
            continue
        block: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].startswith("```"):
            block.append(lines[index])
            index += 1
        index += 1
        if previous == "<!-- example -->":
            commands += _example(block, section)
        elif section == "On call":
            commands += [_command(line[2:], section) for line in block if line.startswith("$ ")]
        previous = ""
    return commands


def _example(block: list[str], section: str) -> list[Command]:
    found: list[Command] = []
    pending: list[str] = []
    for line in block:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            found.append(_command("\n".join(pending), section))
            pending = []
    return found


def _command(text: str, section: str) -> Command:
    said = _EXITS.search(text)
    return Command(text, section, int(said.group(1)) if said else 0)


def session_script(commands: list[Command], out: Path) -> str:
    """One bash session running ``commands`` in order, each command's stdout, stderr and exit code kept
    in ``out``: variables one command sets are there for the next, as in a terminal."""
    parts = ["set -o pipefail"]
    for number, command in enumerate(commands):
        parts.append(f"{{\n{command.text}\n}} > {out}/{number}.out 2> {out}/{number}.err < /dev/null")
        parts.append(f"echo $? > {out}/{number}.rc")
    return "\n".join(parts) + "\n"
