"""Terminal output: data on stdout, progress and problems on stderr, colour only for a terminal.

Scripts read stdout (``--json`` there is plain JSON, never styled) and the exit code; people read
the tables. rich decides colour from the terminal and honours ``NO_COLOR`` and ``FORCE_COLOR``;
``--color``/``--no-color`` overrule it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text


class Output:
    def __init__(self, color: bool | None = None) -> None:
        options: dict[str, Any] = {}
        if color is True:
            options["force_terminal"] = True
        elif color is False:
            options["color_system"] = None
        self.console = Console(highlight=False, soft_wrap=False, **options)
        self.errors = Console(stderr=True, highlight=False, **options)

    def show(self, renderable: RenderableType) -> None:
        self.console.print(renderable, crop=False)  # tables fit the width; a long URL must stay whole

    def json(self, data: Any, *, lines: bool = False) -> None:
        """Plain JSON for scripts; ``lines``: one compact document per line (for following)."""
        text = json.dumps(data, separators=(",", ":")) if lines else json.dumps(data, indent=2)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """Something for the person, not the script: on stderr, dimmed."""
        self.errors.print(Text(text, style="dim"))

    def problem(self, text: str) -> None:
        self.errors.print(Text.assemble(("error: ", "bold red"), text))

    @contextmanager
    def progress(self, text: str) -> Iterator[None]:
        """A spinner on stderr while a slow call runs; nothing when stderr is not a terminal."""
        if not self.errors.is_terminal:
            yield
            return
        with self.errors.status(text, spinner="dots"):
            yield
