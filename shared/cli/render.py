"""How alerts, runs and targets read in a terminal: rich tables and detail views.

Times are UTC, like the alert summaries. Colour carries meaning only (a failure is red, success
green, what is waiting bold); without colour the words say the same.

Names, messages, log lines and URLs come from callers, Azure and the queue: each reaches rich as
``Text`` (never markup, which would read ``[link=…]`` in a batch name as a hyperlink) with its control
characters written as escapes (``shared/text.py``), so nothing in it can move the cursor, clear the
screen or reverse what a line says. ``Output`` strips whatever might still slip through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from shared.alerts.build import duration_text
from shared.alerts.formats import details, facts, links, log_tail, log_title, title
from shared.alerts.history import AlertRecord
from shared.alerts.model import Alert
from shared.api.views import RunView
from shared.cli.inbox import Entry, Waiting
from shared.cli.summary import ShiftSummary
from shared.config.targets import TargetEntry
from shared.kinds.registry import kinds_of
from shared.runs.model import RetryState, Run
from shared.text import visible

STATUS_STYLES = {
    "Succeeded": "green",
    "Failed": "bold red",
    "Unknown": "bold red",
    "Rejected": "red",
    "Cancelled": "yellow",
    "Canceling": "yellow",
    "InProgress": "cyan",
    "Queued": "cyan",
    "Submitting": "cyan",
}
STATE_STYLES = {
    Waiting.QUEUED: "bold",
    Waiting.FORWARDING: "cyan",
    Waiting.UNDELIVERED: "bold red",
    Waiting.FORWARDED: "",
    Waiting.ACKNOWLEDGED: "dim",
}


_VERBS = {
    "failed": " failed",
    "cancelled": " was cancelled",
    "overdue": " is still",
    "unknown": " may not have started",
    "retrying": " failed",
}


def plain(value: str, style: str = "") -> Text:
    """Text from outside (a name, a message, a log line) as it is, with its control characters shown."""
    return Text(visible(value, keep="\n\t"), style=style)


def when(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    try:
        return f"{datetime.fromisoformat(value.replace('Z', '+00:00')):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return visible(value)


def status(value: str | None) -> Text:
    return plain(value or "-", style=STATUS_STYLES.get(value or "", ""))


def short_summary(alert: Alert) -> str:
    """The summary from its verb on ("failed at activity ..."): the columns already say which run."""
    text = alert.summary
    verb = _VERBS.get(alert.kind)
    index = text.find(verb) if verb else -1
    return text[index + 1 :] if index >= 0 else text


def _one_line(text: str) -> Text:
    """A cell cut with an ellipsis at the column's width, never wrapped."""
    return Text(visible(" ".join(text.split())), no_wrap=True, overflow="ellipsis")


def alerts_table(entries: Sequence[Entry], *, show_state: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("When (UTC)", no_wrap=True)
    table.add_column("Target", no_wrap=True)
    table.add_column("Pipeline", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Summary", min_width=20)  # wrappable, so the table narrows it alone to fit
    table.add_column("Alert id", no_wrap=True)
    if show_state:
        table.add_column("State", no_wrap=True)
    for entry in entries:
        alert = entry.alert
        row: list[RenderableType] = [
            when(alert.end or alert.raisedAt),
            plain(alert.target),
            plain(alert.pipeline),
            status(alert.status),
            _one_line(short_summary(alert)),
            plain(entry.alert_id, style="bold"),
        ]
        if show_state:
            row.append(Text(entry.state, style=STATE_STYLES.get(entry.state, "")))
        table.add_row(*row)
    return table


def alert_line(entry: Entry) -> Text:
    """One alert on one line, for ``alerts --follow``."""
    alert = entry.alert
    return Text.assemble(
        (when(alert.end or alert.raisedAt), "dim"),
        "  ",
        plain(f"{alert.target}/{alert.pipeline}", "bold"),
        "  ",
        status(alert.status),
        "  ",
        _one_line(short_summary(alert)),
        "  ",
        plain(entry.alert_id, "bold"),
    )


def _link(name: str, url: str) -> Text:
    """Whole, on one line, and clickable where the terminal can: a cut or wrapped URL is useless.

    The link is a ``Style`` rather than parsed from ``"link {url}"``, which a space in a URL from the
    queue would break; its control characters are shown, and the terminal is never handed them."""
    shown = visible(url)
    return Text.assemble((f"{name}: ", "bold"), (shown, Style(link=shown)), no_wrap=True, overflow="ignore")


def _grid(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _state_line(entry: Entry) -> Text:
    record = entry.record
    text = Text(entry.state, style=STATE_STYLES.get(entry.state, ""))
    if record is not None and record.forwarded_at is not None:
        text.append(visible(f"; forwarded to {record.forwarded_to} at {when(record.forwarded_at)}"))
    if record is not None and record.acknowledged_at is not None:
        text.append(visible(f"; acknowledged by {record.acknowledged_by} at {when(record.acknowledged_at)}"))
    if entry.state == Waiting.UNDELIVERED:
        text.append(" (the webhook kept refusing it; it waits on the poison queue)")
    return text


def alert_detail(entry: Entry, pipeline_runs: Sequence[Run]) -> RenderableType:
    """Everything in the alert, plus how the pipeline's runs went around it (from the registry)."""
    alert = entry.alert
    parts: list[RenderableType] = [
        plain(title(alert), style="bold red"),
        plain(alert.summary),
        Text(),
        _grid([*((name, plain(value)) for name, value in facts(alert)), ("State", _state_line(entry))]),
    ]
    for heading, text in details(alert):
        parts.append(Panel(plain(text), title=plain(heading), title_align="left", border_style="red", box=box.ROUNDED))
    tail = log_tail(alert)
    if tail:
        parts.append(Panel(plain(tail), title=plain(log_title(alert)), title_align="left", border_style="dim"))
    for name, url in links(alert):
        parts.append(_link(name, url))
    runs = pipeline_runs or []
    if runs:
        parts.append(Text())
        parts.append(plain(f"Runs of {alert.target}/{alert.pipeline}, newest first:", style="bold"))
        parts.append(runs_table(runs, highlight=alert.runId))
    elif alert.previousRuns:
        parts.append(Text("Previous runs (when the alert was raised):", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("Created (UTC)", "Run id", "Status"):
            table.add_column(column, no_wrap=True)
        for previous in alert.previousRuns:
            table.add_row(when(previous.createdAt), plain(previous.id), status(previous.status))
        parts.append(table)
    return Group(*parts)


def runs_table(runs: Sequence[Run], *, highlight: str | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Created (UTC)", no_wrap=True)
    table.add_column("Run id", no_wrap=True)
    table.add_column("Target", no_wrap=True)
    table.add_column("Pipeline", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Took", no_wrap=True, justify="right")
    table.add_column("Message", min_width=10)
    for run in runs:
        table.add_row(
            when(run.created_at),
            plain(run.id, style="bold" if run.id == highlight else ""),
            plain(run.target),
            plain(run.pipeline),
            Text.assemble(status(run.status), (retry_text(run), "dim")),
            duration_text(run.duration_ms) if run.duration_ms is not None else "-",
            _one_line(run.message),
            style="on grey23" if run.id == highlight else None,
        )
    return table


def retry_text(run: Run) -> str:
    """How a run stands in its automatic retry chain, after its status ("" when it has no retries)."""
    if run.retry_pending:
        return f" · retry {run.attempt + 1}/{run.max_attempts} at {when(run.next_retry_at)[11:]}"
    if run.retry_state == RetryState.RETRIED:
        return " · retried"
    if run.retry_state == RetryState.CANCELLED:
        return " · retry cancelled"
    return f" · attempt {run.attempt}/{run.max_attempts}" if run.attempt > 1 else ""


def run_detail(
    view: RunView, chain: Sequence[Run], alerts: Sequence[AlertRecord], pipeline_runs: Sequence[Run]
) -> RenderableType:
    """One run as the API shows it, with its rerun chain, its alerts and its pipeline's recent runs."""
    state = status(view.status)
    if view.upstreamStatus and view.upstreamStatus != view.status:
        state.append(visible(f" (Azure: {view.upstreamStatus})"))
    pipeline = view.pipeline
    if view.sparkPool:
        pipeline += f" on Spark pool {view.sparkPool}"
    rows: list[tuple[str, RenderableType]] = [
        ("Run", plain(view.id, style="bold")),
        ("Target", plain(f"{view.target} ({view.kind})")),
        ("Pipeline", plain(pipeline)),
        ("Status", state),
        ("Created", when(view.createdAt)),
        ("Ran", f"{when(view.runStart)} → {when(view.runEnd)}"),
    ]
    if view.durationMs is not None:
        rows.append(("Took", duration_text(view.durationMs)))
    if view.maxAttempts > 1 or view.attempt > 1:
        rows.append(("Attempt", f"{view.attempt} of {view.maxAttempts} (automatic retries)"))
    optional = [
        ("Azure run", view.upstreamRunId),
        ("Spark app", view.appId),
        ("Message", view.message),
        ("Parameters", json.dumps(view.parameters) if view.parameters else None),
        ("Options", json.dumps(view.options) if view.options else None),
        ("Cancel asked", when(view.cancelRequestedAt) if view.cancelRequestedAt else None),
        ("Next retry", f"{when(view.nextRetryAt)} (attempt {view.attempt + 1})" if view.nextRetryAt else None),
        ("Chain ended", view.finalStatus if len(chain) > 1 else None),
        ("Correlation", view.correlationId),
    ]
    rows.extend((name, plain(str(value))) for name, value in optional if value)
    parts: list[RenderableType] = [_grid(rows)]
    parts.extend(_link(f"Link {name}", url) for name, url in view.links.items())
    if len(chain) > 1:
        parts.append(Text())
        parts.append(Text("Rerun chain, oldest first:", style="bold"))
        parts.append(runs_table(chain, highlight=view.id))
    for record in alerts:
        parts.append(Text())
        line = Text.assemble(("Alert ", "bold"), plain(record.alert_id, "bold"))
        if record.forwarded_at:
            line.append(visible(f"  forwarded to {record.forwarded_to} at {when(record.forwarded_at)}"))
        if record.acknowledged_at:
            line.append(visible(f"  acknowledged by {record.acknowledged_by} at {when(record.acknowledged_at)}"))
        parts.append(line)
    if pipeline_runs:
        parts.append(Text())
        parts.append(plain(f"Recent runs of {view.target}/{view.pipeline}:", style="bold"))
        parts.append(runs_table(pipeline_runs, highlight=view.id))
    return Group(*parts)


def targets_table(targets: Sequence[TargetEntry], diagnostics: Mapping[str, Mapping[str, Any]] | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Target", "Kind", "Where", "Callers may start"):
        table.add_column(column, overflow="fold")
    if diagnostics is not None:
        table.add_column("Check", no_wrap=True)
    for target in targets:
        startable = [
            f"{kind.resource_noun.lower()}s: " + ", ".join(rule.match for rule in kind.rules(target))
            for kind in kinds_of(target)
            if kind.rules(target)
        ]
        row: list[RenderableType] = [
            plain(target.name, style="bold"),
            plain(target.kind),
            plain(target.location),
            plain("; ".join(startable) or "-"),
        ]
        if diagnostics is not None:
            report = diagnostics.get(target.name) or {}
            levels = {check.get("level") for check in report.get("checks", [])}
            style = "bold red" if "error" in levels else "yellow" if "warning" in levels else "green"
            row.append(plain(str(report.get("summary", "")).split(":")[0], style))
        table.add_row(*row)
    return table


LEVEL_STYLES = {"error": "bold red", "warning": "yellow"}


def needs_action(report: Mapping[str, Any]) -> bool:
    """Whether a target's report has a check that is a warning or an error."""
    return any(check.get("level") in LEVEL_STYLES for check in report.get("checks", []))


def failed_checks(diagnostics: Mapping[str, Mapping[str, Any]]) -> RenderableType:
    """Per target that needs a person: its summary line, then each warning and error with what it found,
    the role it needs when refused, and what to do and where."""
    lines: list[RenderableType] = []
    for name, report in diagnostics.items():
        if not needs_action(report):
            continue
        lines.append(Text.assemble(plain(f"{name}: ", "bold"), plain(str(report.get("summary", "")))))
        for check in report.get("checks", []):
            level = check.get("level")
            if level not in LEVEL_STYLES:
                continue
            lines.append(
                Text.assemble(
                    plain(f"  {level} ", LEVEL_STYLES[level]),
                    plain(f"{check.get('name')} ", "bold"),
                    plain(f"({check.get('call')})"),
                )
            )
            lines.append(plain(f"    {check.get('detail')}"))
            if check.get("role"):
                lines.append(plain(f"    role needed: {check['role']}"))
            if check.get("action"):
                lines.append(plain(f"    to do: {check['action']}"))
    return Group(*lines)


# --- summary ---------------------------------------------------------------------------------------

BLOCKS = " ▁▂▃▄▅▆▇█"  # eighths of a cell, for the bars
CHART_ROWS = 5
BAR = 2  # cells per bar, then one of space
TICK_EVERY = 3  # bars between time labels (hours, or days for day-wide bars)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _took(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else duration_text(milliseconds)


def failures_chart(found: ShiftSummary) -> RenderableType:
    """Failures per bucket as columns of block characters, tallest bar scaled to the chart's height."""
    counts = [bucket.failures for bucket in found.failures_per_bucket]
    peak = max(counts, default=0)
    label = f"{peak}"
    pad = len(label)
    rows: list[Text] = []
    for row in range(CHART_ROWS - 1, -1, -1):
        line = Text(f"{label if row == CHART_ROWS - 1 else '':>{pad}} │", style="dim")
        for count in counts:
            eighths = round(count / peak * CHART_ROWS * 8) if peak else 0
            if count and not eighths:
                eighths = 1  # a failure never looks like none
            fill = min(max(eighths - row * 8, 0), 8)
            line.append(BLOCKS[fill] * BAR, style="red")
            line.append(" ")
        rows.append(line)
    rows.append(Text(f"{'0':>{pad}} └" + "─" * (len(counts) * (BAR + 1)), style="dim"))
    ticks = Text(" " * (pad + 2), style="dim")
    for index, bucket in enumerate(found.failures_per_bucket):
        mark = f"{bucket.start:%H}" if found.bucket_hours < 24 else f"{bucket.start:%d}"
        ticks.append(mark.ljust(BAR + 1) if index % TICK_EVERY == 0 else " " * (BAR + 1))
    rows.append(ticks)
    return Group(*rows)


def summary_view(found: ShiftSummary) -> RenderableType:
    """The shift at a glance: totals, the work table, what still runs, what failed most, the chart."""
    span = found.until - found.since
    hours = span.total_seconds() / 3600
    parts: list[RenderableType] = [
        Text.assemble(
            ("Shift summary ", "bold"),
            f"{when(found.since)} → {when(found.until)} UTC ({hours:.0f}h)",
        ),
        Text.assemble(
            f"{found.runs} run(s): ",
            (f"{found.succeeded} succeeded", "green"),
            ", ",
            (f"{found.failed} failed", "bold red" if found.failed else ""),
            f", {found.live} running now.  Alerts: ",
            (f"{found.alerts.waiting} waiting", "bold" if found.alerts.waiting else ""),
            ", ",
            (f"{found.alerts.undelivered} undelivered", "bold red" if found.alerts.undelivered else ""),
            f", {found.alerts.acknowledged} acknowledged.",
        ),
    ]
    if found.retries:
        parts.append(
            Text.assemble(
                f"Automatic retries: {found.retries}; ",
                (f"pages avoided by retries: {found.pages_avoided}", "green" if found.pages_avoided else ""),
                " (failed runs a retry fixed before anyone was paged).",
            )
        )
    if found.partial:
        parts.append(Text("Partial: more runs than the summary reads; the figures cover the newest.", style="yellow"))
    if found.work:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column, justify in (
            ("Target", "left"),
            ("What", "left"),
            ("Runs", "right"),
            ("Failed", "right"),
            ("Success", "right"),
            ("p50", "right"),
            ("p95", "right"),
            ("Running", "right"),
        ):
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for item in found.work:
            table.add_row(
                plain(item.target),
                plain(f"{item.noun.lower()} {item.name}"),
                str(item.runs),
                Text(str(item.failed), style="bold red" if item.failed else ""),
                _rate(item.success_rate),
                _took(item.p50_ms),
                _took(item.p95_ms),
                str(item.live),
            )
        parts.append(table)
    else:
        parts.append(Text("\nNo runs in this window.", style="dim"))
    if found.longest_running:
        parts.append(Text("Longest-running live runs:", style="bold"))
        running = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("Run id", "Target", "What", "Status", "Since (UTC)", "Running for"):
            running.add_column(column, no_wrap=True)
        for live in found.longest_running:
            running.add_row(
                plain(live.id),
                plain(live.target),
                plain(f"{live.noun.lower()} {live.name}"),
                status(live.status),
                when(live.since),
                duration_text(live.running_ms),
            )
        parts.append(running)
    if found.failing_steps:
        parts.append(Text("Most frequent failing activities (from the alerts):", style="bold"))
        steps = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("Failures", "Activity", "Type", "Where", "Last (UTC)"):
            steps.add_column(column, no_wrap=True, justify="right" if column == "Failures" else "left")
        for step in found.failing_steps:
            steps.add_row(
                str(step.failures),
                plain(step.step, style="bold"),
                plain(step.type),
                plain(f"{step.target}/{step.pipeline}"),
                when(step.last_at),
            )
        parts.append(steps)
    per = "hour" if found.bucket_hours == 1 else f"{found.bucket_hours} hours"
    parts.append(Text(f"Failures per {per} (UTC):", style="bold"))
    parts.append(failures_chart(found))
    return Group(*parts)
