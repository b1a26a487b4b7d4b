"""What a forwarded alert looks like where on-call engineers already look: Teams, Slack, or plain JSON.

Each format leads with the alert's summary (what failed, where, when, why), then the key facts, the
failed activities or the Spark driver log, and a button to the run in the Studio. Chat services
refuse oversized messages outright, so every free text is cut to their limits rather than risking
the whole alert. Names, messages and log lines are the caller's and Azure's words, so each is escaped
for the chat's markup (``shared/text.py``): on-call sees them as written, never as a link or a mention.
The JSON format is the alert itself, unescaped: receivers parse it, nobody renders it as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.alerts.build import duration_text
from shared.alerts.model import Alert, AlertKind
from shared.kinds.registry import label_of, step_noun_of, studio_of
from shared.runs.model import parse_iso
from shared.text import slack_mrkdwn, teams_markdown, visible

TITLES = {
    "failed": "Run failed",
    "cancelled": "Run cancelled",
    "overdue": "Run overdue",
    "unknown": "Run may not have started",
    "retrying": "Run failed, retrying",
}
MAX_ACTIVITIES = 3
LOG_LINES = 15
MAX_TEXT = 1500


def title(alert: Alert) -> str:
    return f"{TITLES.get(alert.kind, 'Alert')}: {alert.target}/{alert.pipeline}"


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def facts(alert: Alert) -> list[tuple[str, str]]:
    """The key facts, in the order an engineer reads them; absent ones are left out."""
    status = alert.status
    if alert.upstreamStatus and alert.upstreamStatus != status:
        status += f" (Azure: {alert.upstreamStatus})"
    pipeline = alert.pipeline
    if alert.sparkPool:
        pipeline += f" on Spark pool {alert.sparkPool}"
    caller = alert.caller
    if caller and alert.product:
        caller = f"{caller} (product {alert.product})"
    history = "first failure" if alert.firstFailure else "repeat failure"
    if alert.previousRuns:
        history += f"; previous runs: {', '.join(run.status for run in alert.previousRuns)}"
    candidates = [
        ("Target", f"{alert.target} ({alert.location})" if alert.location else alert.target),
        ("Pipeline", pipeline),
        ("Status", status),
        ("When", _span(alert)),
        ("Run", alert.runId),
        ("Azure run", alert.upstreamRunId or alert.appId),
        ("Caller", caller),
        ("History", history),
        ("Attempts", _attempts(alert)),
        ("Alert", alert.alertId),
    ]
    return [(name, str(value)) for name, value in candidates if value]


def _attempts(alert: Alert) -> str | None:
    """``3 of 3``, for a run under a retry policy (with the next one's time while retrying)."""
    if alert.attempt is None or alert.maxAttempts is None:
        return None
    text = f"{alert.attempt} of {alert.maxAttempts}"
    due = parse_iso(alert.nextRetryAt)
    return f"{text}, next at {due:%H:%M:%S} UTC" if due else text


def _span(alert: Alert) -> str | None:
    """``2026-11-22 02:00:45 → 02:00:48 UTC (3s)``: the alert's ISO times, as people read them."""
    began = parse_iso(alert.start)
    if began is None:
        return None
    text = f"{began:%Y-%m-%d %H:%M:%S}"
    ended = parse_iso(alert.end)
    if ended is None:
        return f"{text} UTC, still running"
    text += f" → {ended:%H:%M:%S}" if ended.date() == began.date() else f" → {ended:%Y-%m-%d %H:%M:%S}"
    return f"{text} UTC" + (f" ({duration_text(alert.durationMs)})" if alert.durationMs is not None else "")


def details(alert: Alert) -> list[tuple[str, str]]:
    """(heading, text) of the failed activities and Spark errors: the why, in Azure's words."""
    found: list[tuple[str, str]] = []
    for activity in alert.failedActivities[:MAX_ACTIVITIES]:
        code = " ".join(part for part in (activity.failureType, activity.errorCode) if part)
        heading = f"Failed {step_noun_of(alert.targetKind)} {activity.name} ({activity.type})" + (
            f", {code}" if code else ""
        )
        found.append((heading, cut(activity.message)))
    if alert.errors:
        found.append((f"{label_of(alert.targetKind)} errors", cut("\n".join(alert.errors))))
    if alert.attempts and len(alert.attempts) > 1:
        lines = [f"{a.attempt}. {a.runId} {a.status}: {a.failure or '-'}" for a in alert.attempts]
        found.append(("Every attempt", cut("\n".join(lines))))
    if not found and alert.message:
        found.append(("Message", cut(alert.message)))
    return found


def log_title(alert: Alert) -> str:
    return f"{alert.logName or 'Driver log'} (last lines)"


def log_tail(alert: Alert) -> str | None:
    lines = alert.driverLogTail
    return cut("\n".join(lines[-LOG_LINES:]), 2500) if lines else None


def links(alert: Alert) -> list[tuple[str, str]]:
    named = []
    if alert.links.get("studio"):
        named.append((f"Open in {studio_of(alert.targetKind)}", alert.links["studio"]))
    if alert.links.get("run"):
        named.append(("Run in the gateway", alert.links["run"]))
    return named


def _md(text: str) -> str:
    """Text for a TextBlock or a fact: cut, then escaped, so no escape is cut in half."""
    return teams_markdown(cut(text))


def _color(alert: Alert) -> str:
    """Red for what needs someone; amber for the info-level notice of an automatic retry."""
    return "Warning" if alert.kind == AlertKind.RETRYING else "Attention"


def teams_card(alert: Alert) -> dict[str, Any]:
    """A Teams message with one Adaptive Card (1.4), as Incoming Webhooks and Workflows accept it.

    Every TextBlock and FactSet value is Markdown to Teams, so each text is escaped; fact titles and
    button labels are the gateway's own words, the button URLs its own links."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _md(title(alert)), "size": "Medium", "weight": "Bolder", "color": _color(alert)},
        {"type": "TextBlock", "text": _md(alert.summary), "wrap": True},
        {"type": "FactSet", "facts": [{"title": name, "value": _md(value)} for name, value in facts(alert)]},
    ]
    for heading, text in details(alert):
        body.append({"type": "TextBlock", "text": _md(heading), "weight": "Bolder", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": _md(text), "wrap": True, "fontType": "Monospace", "size": "Small"})
    tail = log_tail(alert)
    if tail:
        body.append({"type": "TextBlock", "text": _md(log_title(alert)), "weight": "Bolder", "spacing": "Medium"})
        tail = teams_markdown(tail)
        body.append({"type": "TextBlock", "text": tail, "wrap": True, "fontType": "Monospace", "size": "Small"})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": name, "url": url} for name, url in links(alert)],
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def _code_section(heading: str, text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(f"*{slack_mrkdwn(heading)}*\n```{slack_mrkdwn(text)}```", 3000)},
    }


def slack_blocks(alert: Alert) -> dict[str, Any]:
    """A Slack message in Block Kit; ``text`` is the notification and screen-reader fallback.

    ``text`` and the sections are mrkdwn, so each text is escaped; the header is plain text, where
    only control characters need showing as escapes."""
    summary = slack_mrkdwn(alert.summary)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(visible(title(alert)), 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(summary, 3000)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": cut(f"*{name}*\n{slack_mrkdwn(value)}", 2000)}
                for name, value in facts(alert)
            ][:10],
        },
    ]
    for heading, text in details(alert):
        blocks.append(_code_section(heading, text))
    tail = log_tail(alert)
    if tail:
        blocks.append(_code_section(log_title(alert), tail))
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": name}, "url": url} for name, url in links(alert)
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": cut(summary, 3000), "blocks": blocks}


def json_document(alert: Alert) -> dict[str, Any]:
    """The alert exactly as on the queue: receivers get the documented schema, versioned."""
    return alert.queue_message()


FORMATS: dict[str, Callable[[Alert], dict[str, Any]]] = {
    "teams": teams_card,
    "slack": slack_blocks,
    "json": json_document,
}
