"""On-call's terminal shows what callers and Azure wrote, and nothing they wrote acts on the terminal.

The alert is the poller's own, with the caller's and Azure's text made hostile as it would arrive: an
escape sequence in a batch's file echoed by Spark's log, a bidi override, rich markup in a name.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest

from shared.context import AppContext
from tests.cli.conftest import Cli

CLEAR_SCREEN = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
REVERSED = "\u202egpj.exe"
MARKUP = "[link=https://evil.example]Re-authenticate here[/link]"
# What rich itself writes with colour on: SGR styles, OSC 8 hyperlinks, and on stderr the spinner's
# cursor hiding, line erasing and moving up.
RICH_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b\x07]*(?:\x1b\\|\x07)|\x1b\[\?25[lh]|\x1b\[2K|\x1b\[1A")


def hostile(alert: dict[str, Any]) -> dict[str, Any]:
    script = f"abfss://jobs@lake.dfs.core.windows.net/fail{CLEAR_SCREEN}{TITLE}.py"
    return {
        **alert,
        "alertId": f"{alert['runId']}:hostile",
        "pipeline": MARKUP,
        "summary": f"{alert['summary']} {CLEAR_SCREEN}{REVERSED}",
        "message": f"Path does not exist: {script}",
        "failedActivities": [
            {**activity, "name": f"Copy{REVERSED}", "message": f"File {script}\r\nforged line"}
            for activity in alert["failedActivities"]
        ],
        "driverLogTail": [f'  File "{script}", line 27', "\x9b2J C1 CSI", "lone \ud800 surrogate"],
        "caller": f"erp {MARKUP}",
    }


def terminal_controls(text: str) -> list[str]:
    """Control and format characters left once rich's own styles and links are taken out."""
    rest = RICH_SEQUENCES.sub("", text)
    return sorted(
        {f"U+{ord(c):04X}" for c in rest if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")}
    )


@pytest.mark.parametrize("colour", [[], ["--color"]], ids=["plain", "colour"])
def test_alert_and_alerts_print_hostile_text_as_text(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str, colour: list[str]
) -> None:
    fail_and_alert((adf, "copy_sales"))
    (original,) = context.alerts.peek()
    sent = hostile(original)
    context.alerts.send(sent)

    detail = cli(*colour, "alert", sent["alertId"])
    listed = cli(*colour, "alerts")

    for result in (detail, listed):
        assert result.returncode == 0, result.stderr
        assert terminal_controls(result.stdout) == [] and terminal_controls(result.stderr) == []
    out = detail.stdout
    assert "fail\\x1b[2J\\x1b]0;pwned\\x07.py" in out, "the escape sequences are shown, as escapes"
    assert "\\u202egpj.exe" in out and "\\x9b2J C1 CSI" in out and ".py\\r" in out
    assert "lone \\ud800 surrogate" in out, "a lone surrogate (JSON can carry one) neither crashes nor passes"
    assert MARKUP in out and f"erp {MARKUP}" in out, "rich markup in a name is the name"
    assert "evil.example" not in "".join(re.findall(r"\x1b\]8;[^;]*;([^\x1b\x07]*)", out))


def test_json_output_keeps_the_alert_exactly_and_escaped_for_any_terminal(
    cli: Cli, context: AppContext, fail_and_alert: Callable[..., list[str]], adf: str
) -> None:
    """Scripts get the alert as on the queue; JSON's escapes keep the raw characters off the terminal."""
    fail_and_alert((adf, "copy_sales"))
    sent = hostile(context.alerts.peek()[0])
    context.alerts.send(sent)

    result = cli("alert", sent["alertId"], "--json")

    assert result.returncode == 0, result.stderr
    assert terminal_controls(result.stdout) == []
    assert json.loads(result.stdout) == sent
