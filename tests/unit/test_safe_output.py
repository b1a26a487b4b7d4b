"""What callers write reaches on-call as words, never as markup, links or terminal commands; the forwarder
posts only where it was told and keeps a webhook's secret out of records, messages and logs.

The alert on the queue stays the caller's text exactly (schema v1): only its renderings are escaped.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.text import Text

from shared.alerts.build import build_alert
from shared.alerts.formats import json_document, slack_blocks, teams_card
from shared.alerts.forwarding import DeliveryFailed, Webhook, origin
from shared.alerts.model import Alert
from shared.cli.inbox import Entry, Waiting
from shared.cli.output import Output
from shared.cli.render import alert_detail, alert_line, alerts_table, runs_table
from shared.config.settings import Settings
from shared.kinds.base import FailedActivity, FailureDetails
from shared.kinds.registry import kind_named
from shared.runs.model import Run
from shared.telemetry.logs import configure_logging
from shared.text import INVISIBLE_CATEGORIES, teams_markdown, visible
from tests.unit.test_forwarding_formats import CATALOG, NOW

PHISH = "[Re-authenticate here](https://evil.example)"
MARKUP = "[link=https://evil.example]click[/link]"
CLEAR_SCREEN = "\x1b[2J"
REVERSED = "\u202eexe.gpj"
SLACK_TRAPS = "<https://evil.example|Re-authenticate> <!channel> <@U0123>"
# Markup a CommonMark renderer (as Teams' TextBlock is) would turn into something other than text.
MARKUP_TOKENS = {
    "link_open",
    "image",
    "em_open",
    "strong_open",
    "bullet_list_open",
    "ordered_list_open",
    "heading_open",
    "blockquote_open",
    "hr",
    "html_block",
    "html_inline",
    "fence",
    "code_inline",
    "s_open",
}
COMMONMARK = MarkdownIt("commonmark")


def hostile_alert() -> Alert:
    """A Spark batch named to phish, whose file, log and errors carry terminal and chat markup."""
    run = Run(
        id="lake.8204687154850144sparkab",
        target="lake",
        kind="spark",
        pipeline=PHISH,
        status="Failed",
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW,
        spark_pool="small",
        upstream_run_id="17",
        run_end=NOW,
        caller=f"erp {MARKUP}",
        message=f"Batch failed {SLACK_TRAPS}",
    )
    details = FailureDetails(
        activities=[
            FailedActivity(f"Copy {PHISH}", "Copy", "2200", "UserError", f"**urgent** {SLACK_TRAPS}", NOW, NOW)
        ],
        errors=[f"AnalysisException: Path does not exist: abfss://jobs@lake/fail{CLEAR_SCREEN}{REVERSED}.py"],
        log_tail=[
            "# Re-authenticate",
            "- step one",
            "1. step two",
            f'  File "/mnt/appcache/fail{CLEAR_SCREEN}.py", line 27',
            "<b>bold</b> ```fence``` ~~strike~~ > quote",
            "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
        ],
        app_id="application_1732240000000_0017",
    )
    return build_alert(
        run,
        "failed",
        kind=kind_named(run.kind),
        target=CATALOG.get("lake"),
        details=details,
        history=[],
        settings=Settings({}),
        now=NOW,
    )


def invisible_in(text: str, keep: str = "\n") -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if c not in keep and unicodedata.category(c) in INVISIBLE_CATEGORIES]


def commonmark_markup(text: str) -> list[str]:
    """The markup tokens a CommonMark renderer makes of ``text``."""
    found = []
    for token in COMMONMARK.parse(text):
        found.extend(t.type for t in [token, *(token.children or [])] if t.type in MARKUP_TOKENS)
    return found


def commonmark_text(text: str) -> str:
    return "".join(
        child.content
        for token in COMMONMARK.parse(text)
        for child in token.children or []
        if child.type in ("text", "softbreak")
    )


def card_texts(card: dict[str, Any]) -> list[str]:
    """Every Markdown string of an Adaptive Card: TextBlocks and FactSet values."""
    content = card["attachments"][0]["content"]
    texts = [block["text"] for block in content["body"] if block["type"] == "TextBlock"]
    texts += [fact["value"] for block in content["body"] if block["type"] == "FactSet" for fact in block["facts"]]
    return texts


# --- Teams and Slack --------------------------------------------------------------------------


def test_a_batch_named_like_a_link_is_text_in_the_teams_card() -> None:
    alert = hostile_alert()
    card = teams_card(alert)
    texts = card_texts(card)

    assert [(text[:60], commonmark_markup(text)) for text in texts if commonmark_markup(text)] == []
    assert commonmark_text(texts[0]) == f"Run failed: lake/{PHISH}", "the name reads as written"
    assert commonmark_text(texts[1]) == alert.summary
    assert [(text[:40], invisible_in(text)) for text in texts if invisible_in(text)] == []
    assert "\\\\x1b\\[2J" in "".join(texts), "the escape sequence is shown, not sent"
    actions = card["attachments"][0]["content"]["actions"]
    assert [action["url"] for action in actions] == [alert.links["studio"]], "the only links are the gateway's"


def test_slack_mrkdwn_carries_no_link_mention_or_broadcast_from_the_caller() -> None:
    message = slack_blocks(hostile_alert())
    mrkdwn = [message["text"]]
    for block in message["blocks"]:
        if block.get("text", {}).get("type") == "mrkdwn":
            mrkdwn.append(block["text"]["text"])
        mrkdwn.extend(item["text"] for item in block.get("fields", []))

    assert [text[:60] for text in mrkdwn if "<" in text or ">" in text] == []
    assert any("&lt;!channel&gt;" in text for text in mrkdwn) and any("&lt;https://evil" in text for text in mrkdwn)
    assert [text[:40] for text in mrkdwn if invisible_in(text)] == []
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text" and not invisible_in(header["text"])


def test_the_alert_itself_keeps_the_callers_text_exactly() -> None:
    """Escaping belongs to the renderings: the queue message and the JSON format are schema v1, raw."""
    alert = hostile_alert()
    document = json_document(alert)

    assert document == alert.queue_message()
    assert document["pipeline"] == PHISH
    assert document["errors"] == [
        f"AnalysisException: Path does not exist: abfss://jobs@lake/fail{CLEAR_SCREEN}{REVERSED}.py"
    ]


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_is_only_text_to_a_commonmark_renderer(text: str) -> None:
    escaped = teams_markdown(text)
    assert commonmark_markup(escaped) == []
    assert not invisible_in(escaped, keep="\n\t")
    line = text.strip()  # a paragraph's edges are trimmed: whitespace, not markup
    if line and "\n" not in line:  # one paragraph: its text is the caller's, exactly
        assert commonmark_text(teams_markdown(line)) == visible(line, keep="\t")


@pytest.mark.parametrize(
    "text",
    ["copy_sales", "erp-system (product erp)", "2026-11-22 02:00:45 → 02:00:48 UTC (3s)", "sales.82046:failed"],
)
def test_ordinary_names_and_facts_need_no_escapes(text: str) -> None:
    """Some Teams clients show a backslash instead of honouring it: what needs none gets none."""
    assert teams_markdown(text) == text


# --- the terminal -----------------------------------------------------------------------------

# What rich itself writes with colour on: SGR styles and OSC 8 hyperlinks.
_RICH_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b\x07]*(?:\x1b\\|\x07)")


def shown(renderable: Any, *, color: bool, capsys: pytest.CaptureFixture[str]) -> str:
    Output(color).show(renderable)
    return capsys.readouterr().out


def entry(alert: Alert) -> Entry:
    return Entry(alert, Waiting.QUEUED)


@pytest.mark.parametrize("color", [False, True], ids=["plain", "colour"])
def test_the_cli_shows_escape_sequences_and_markup_as_text(color: bool, capsys: pytest.CaptureFixture[str]) -> None:
    alert = hostile_alert().model_copy(update={"target": f"lake{CLEAR_SCREEN}", "status": f"Failed{REVERSED}"})
    run = Run(
        id="lake.1",
        target="lake",
        kind="spark",
        pipeline=MARKUP,
        status="Failed",
        created_at=NOW,
        updated_at=NOW,
        message=f"died {CLEAR_SCREEN}\u2028{REVERSED}",
    )
    out = "".join(
        shown(renderable, color=color, capsys=capsys)
        for renderable in (
            alert_detail(entry(alert), [run]),
            alerts_table([entry(alert)], show_state=True),
            alert_line(entry(alert)),
            runs_table([run]),
        )
    )

    leftover = _RICH_SEQUENCES.sub("", out)
    assert invisible_in(leftover) == [], "only rich's own styles and links reach the terminal"
    assert ("\x1b" in out) is color
    links = [url for url in re.findall(r"\x1b\]8;[^;]*;([^\x1b\x07]*)", out) if url]
    assert links == ([alert.links["studio"]] if color else []), "the only link is the gateway's own"
    assert "\\x1b[2J" in out and "\\u202e" in out, "what was there is shown as its escape"
    assert MARKUP in out and f"Copy {PHISH}" in out, "rich markup in a name is the name"


def test_output_shows_what_slipped_past_the_renderers_as_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    """The last guard: a Text or a str built anywhere in the CLI, on stdout and stderr alike."""
    output = Output(True)
    output.show(Text(f"raw {CLEAR_SCREEN}{REVERSED}"))
    output.show(f"str {MARKUP} {CLEAR_SCREEN}")
    output.note(f"note {CLEAR_SCREEN}")
    output.problem(f"Azure said {CLEAR_SCREEN}\x9b2J")
    captured = capsys.readouterr()

    for stream in (captured.out, captured.err):
        assert invisible_in(_RICH_SEQUENCES.sub("", stream)) == []
    assert "raw \\x1b[2J\\u202eexe.gpj" in captured.out and f"str {MARKUP} \\x1b[2J" in captured.out
    assert "\\x1b[2J\\x9b2J" in captured.err


# --- forwarding -------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """A local HTTP endpoint answering every POST with ``status`` and ``headers``; records the paths."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    port: int = 0


@contextmanager
def serving(endpoint: Endpoint) -> Iterator[Endpoint]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            endpoint.paths.append(self.path)
            self.send_response(endpoint.status)
            for name, value in endpoint.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def test_destinations_are_scheme_host_and_port_only() -> None:
    webhook = Webhook("https://ops:hunter2-password@hooks.example:8443/services/T0/B0/secretkey?x=1", "slack")

    assert webhook.destination == "slack https://hooks.example:8443"
    assert origin("https://user@[2001:db8::1]:444/path") == "https://[2001:db8::1]:444"
    assert origin("/relative/only") == ""


def test_a_redirect_is_refused_once_and_never_followed() -> None:
    """A 307 would make requests re-post the signed alert to wherever it points, in clear text here."""
    with serving(Endpoint()) as elsewhere:
        location = f"http://127.0.0.1:{elsewhere.port}/collect"
        with serving(Endpoint(307, {"Location": location})) as hook:
            webhook = Webhook(f"http://127.0.0.1:{hook.port}/hooks/alerts", "json", "secret", sleep=lambda _: None)
            with pytest.raises(DeliveryFailed) as refused:
                webhook.post(hostile_alert())

    assert elsewhere.paths == [], "nothing reached the redirect's target"
    assert hook.paths == ["/hooks/alerts"], "one try: a redirect is not retried"
    message = str(refused.value)
    assert "answered 307" in message and f"redirect to http://127.0.0.1:{elsewhere.port};" in message
    assert "not followed and not retried" in message and "/collect" not in message


def test_debug_logs_of_a_real_forward_never_show_the_webhooks_secret_path() -> None:
    """urllib3 logs each request's path at DEBUG; a Teams or Slack webhook's path is its key."""
    configure_logging()
    key = "IncomingWebhook/5f0c6bd0a7c94b1e9c61d0a7c94b1e9c/4d2b8f6e-1c3a-4e5f-9a7b-0c1d2e3f4a5b"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    levels = (root.level, urllib3.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    urllib3.setLevel(logging.DEBUG)
    try:
        with serving(Endpoint()) as hook:
            url = f"http://ops:pa55word-of-ops@127.0.0.1:{hook.port}/webhookb2/{key}?sv=1.0&sp=triggers"
            delivery = Webhook(url, "teams").post(hostile_alert())
            logging.getLogger("shared.alerts.forwarding").info("Configured forward URL: %s", url)
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        urllib3.setLevel(levels[1])

    logged = stream.getvalue()
    assert delivery.status == 200 and hook.paths == [f"/webhookb2/{key}?sv=1.0&sp=triggers"]
    assert re.search(r'urllib3\.connectionpool DEBUG .*"POST \*\*\*\?\*\*\* HTTP/1\.1" 200', logged), logged
    assert [
        secret for secret in (key, "5f0c6bd0a7c94b1e9c61d0a7c94b1e9c", "sv=1.0&sp", "pa55word") if secret in logged
    ] == []
