"""Terminal output: data on stdout, progress and problems on stderr, colour only for a terminal.

Scripts read stdout (``--json`` there is plain JSON, never styled) and the exit code; people read
the tables. rich decides colour from the terminal and honours ``NO_COLOR`` and ``FORCE_COLOR``;
``--color``/``--no-color`` overrule it.

What is printed holds text from callers, Azure and the queue, so nothing printed is rich markup (a
``[link=…]`` in a batch name stays those characters) and every control character left in a line after
rendering is shown as its escape: the terminal receives only the styles this code chose. JSON needs
neither: ``json.dumps`` writes every control and non-ASCII character as a ``\\u`` escape.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

from shared.text import visible


class _Shown:
    """A renderable whose rendered text has its control characters written as escapes: the last guard,
    for text that reached a renderable without passing through ``render.plain``. rich's own styles,
    links and cursor moves travel as styles and control segments, not as text, and stay untouched."""

    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self._renderable, options):
            if segment.control or segment.text.isprintable():
                yield segment
            else:
                yield Segment(visible(segment.text, keep="\n"), segment.style)


class Output:
    def __init__(self, color: bool | None = None) -> None:
        options: dict[str, Any] = {}
        if color is True:
            options["force_terminal"] = True
        elif color is False:
            options["color_system"] = None
        self.console = Console(highlight=False, markup=False, soft_wrap=False, **options)
        self.errors = Console(stderr=True, highlight=False, markup=False, **options)

    def show(self, renderable: RenderableType) -> None:
        """On stdout; a str is plain text, never markup."""
        shown = Text(renderable) if isinstance(renderable, str) else renderable
        self.console.print(_Shown(shown), crop=False)  # tables fit the width; a long URL must stay whole

    def json(self, data: Any, *, lines: bool = False) -> None:
        """Plain JSON for scripts; ``lines``: one compact document per line (for following)."""
        text = json.dumps(data, separators=(",", ":")) if lines else json.dumps(data, indent=2)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def lines(self, values: Iterable[str]) -> None:
        """Plain values for scripts, one per line (``--ids``), with their control characters shown."""
        for value in values:
            sys.stdout.write(visible(value) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """Something for the person, not the script: on stderr, dimmed."""
        self.errors.print(_Shown(Text(text, style="dim")))

    def problem(self, text: str) -> None:
        self.errors.print(_Shown(Text.assemble(("error: ", "bold red"), text)))

    @contextmanager
    def progress(self, text: str) -> Iterator[None]:
        """A spinner on stderr while a slow call runs; nothing when stderr is not a terminal."""
        if not self.errors.is_terminal:
            yield
            return
        with self.errors.status(text, spinner="dots"):
            yield
