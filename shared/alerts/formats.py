"""What a forwarded alert looks like where on-call engineers already look: Teams, Slack, or plain JSON.

Each format leads with the alert's summary (what failed, where, when, why), then the key facts, the
failed activities or the Spark driver log, and a button to the run in the Studio. Chat services
refuse oversized messages outright, so every free text is cut to their limits rather than risking
the whole alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared.alerts.build import duration_text

TITLES = {
    "failed": "Run failed",
    "cancelled": "Run cancelled",
    "overdue": "Run overdue",
    "unknown": "Run may not have started",
}
STUDIO_NAMES = {"datafactory": "ADF Studio", "synapse": "Synapse Studio", "spark": "Synapse Studio"}
MAX_ACTIVITIES = 3
LOG_LINES = 15
MAX_TEXT = 1500


def title(alert: Mapping[str, Any]) -> str:
    return f"{TITLES.get(str(alert.get('kind')), 'Alert')}: {alert.get('target')}/{alert.get('pipeline')}"


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def facts(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The key facts, in the order an engineer reads them; absent ones are left out."""
    status = str(alert.get("status") or "")
    upstream = alert.get("upstreamStatus")
    if upstream and upstream != status:
        status += f" (Azure: {upstream})"
    pipeline = str(alert.get("pipeline") or "")
    if alert.get("sparkPool"):
        pipeline += f" on Spark pool {alert['sparkPool']}"
    caller = alert.get("caller")
    if caller and alert.get("product"):
        caller = f"{caller} (product {alert['product']})"
    previous = alert.get("previousRuns") or []
    history = "first failure" if alert.get("firstFailure", True) else "repeat failure"
    if previous:
        history += f"; previous runs: {', '.join(str(run.get('status')) for run in previous)}"
    when = _span(alert.get("start"), alert.get("end"), alert.get("durationMs"))
    candidates = [
        ("Target", f"{alert.get('target')} ({alert['location']})" if alert.get("location") else alert.get("target")),
        ("Pipeline", pipeline),
        ("Status", status),
        ("When", when),
        ("Run", alert.get("runId")),
        ("Azure run", alert.get("upstreamRunId") or alert.get("appId")),
        ("Caller", caller),
        ("History", history),
        ("Alert", alert.get("alertId")),
    ]
    return [(name, str(value)) for name, value in candidates if value]


def _span(start: Any, end: Any, duration_ms: Any) -> str | None:
    """``2026-11-22 02:00:45 → 02:00:48 UTC (3s)``: the alert's ISO times, as people read them."""
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        return None
    text = f"{began:%Y-%m-%d %H:%M:%S}"
    try:
        ended = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return f"{text} UTC, still running"
    text += f" → {ended:%H:%M:%S}" if ended.date() == began.date() else f" → {ended:%Y-%m-%d %H:%M:%S}"
    return f"{text} UTC" + (f" ({duration_text(int(duration_ms))})" if isinstance(duration_ms, int) else "")


def details(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(heading, text) of the failed activities and Spark errors: the why, in Azure's words."""
    found: list[tuple[str, str]] = []
    for activity in (alert.get("failedActivities") or [])[:MAX_ACTIVITIES]:
        code = " ".join(str(part) for part in (activity.get("failureType"), activity.get("errorCode")) if part)
        heading = f"Failed activity {activity.get('name')} ({activity.get('type')})" + (f", {code}" if code else "")
        found.append((heading, cut(str(activity.get("message") or ""))))
    errors = [str(error) for error in alert.get("errors") or []]
    if errors:
        found.append(("Spark errors", cut("\n".join(errors))))
    if not found and alert.get("message"):
        found.append(("Message", cut(str(alert["message"]))))
    return found


def log_tail(alert: Mapping[str, Any]) -> str | None:
    lines = [str(line) for line in alert.get("driverLogTail") or []]
    return cut("\n".join(lines[-LOG_LINES:]), 2500) if lines else None


def links(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = alert.get("links") or {}
    named = []
    if found.get("studio"):
        named.append((f"Open in {STUDIO_NAMES.get(str(alert.get('targetKind')), 'the Studio')}", found["studio"]))
    if found.get("run"):
        named.append(("Run in the gateway", found["run"]))
    return named


def teams_card(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Teams message with one Adaptive Card (1.4), as Incoming Webhooks and Workflows accept it."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title(alert), "size": "Medium", "weight": "Bolder", "color": "Attention"},
        {"type": "TextBlock", "text": cut(str(alert.get("summary") or "")), "wrap": True},
        {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in facts(alert)]},
    ]
    for heading, text in details(alert):
        body.append({"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": text, "wrap": True, "fontType": "Monospace", "size": "Small"})
    tail = log_tail(alert)
    if tail:
        body.append({"type": "TextBlock", "text": "Driver log (last lines)", "weight": "Bolder", "spacing": "Medium"})
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


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are special in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_section(heading: str, text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(f"*{_mrkdwn(heading)}*\n```{_mrkdwn(text)}```", 3000)},
    }


def slack_blocks(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack message in Block Kit; ``text`` is the notification and screen-reader fallback."""
    summary = str(alert.get("summary") or "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(title(alert), 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(_mrkdwn(summary), 3000)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": cut(f"*{name}*\n{_mrkdwn(value)}", 2000)} for name, value in facts(alert)
            ][:10],
        },
    ]
    for heading, text in details(alert):
        blocks.append(_code_section(heading, text))
    tail = log_tail(alert)
    if tail:
        blocks.append(_code_section("Driver log (last lines)", tail))
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": name}, "url": url} for name, url in links(alert)
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": cut(summary, 3000), "blocks": blocks}


def json_document(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert exactly as on the queue: receivers get the documented schema, versioned."""
    return dict(alert)


FORMATS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "teams": teams_card,
    "slack": slack_blocks,
    "json": json_document,
}
