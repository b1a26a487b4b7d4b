"""Text from callers and Azure, made safe where people read it: a terminal, a Teams card, a Slack message.

Batch and pipeline names, parameters, file paths and the Azure messages that echo them are the caller's
words. Shown as they are, they can act instead of being read: an escape sequence clears on-call's
terminal, a bidi override reverses what a name seems to say, ``[text](url)`` becomes a link in Teams and
``<url|text>`` one in Slack. Each function here keeps the words and takes the effect away. The alert on
the queue keeps the raw text (schema v1); only what is rendered from it passes through here.
"""

from __future__ import annotations

import re
import unicodedata

# Control characters (C0, C1), format characters (bidi overrides and isolates, zero-width joiners and
# spaces, the BOM...), the line and paragraph separators, and lone surrogates (not text at all, though
# JSON's \ud800 makes one, and a terminal's encoder fails on it): none belongs in a name, and none may
# reach a screen as itself.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def invisible(text: str) -> str | None:
    """The first control, format or separator character in ``text``; None when it has none."""
    if text.isprintable():  # the fast path: printable text holds none of them
        return None
    return next((char for char in text if unicodedata.category(char) in INVISIBLE_CATEGORIES), None)


def codepoint(char: str) -> str:
    """``U+202E``: how a refusal names a character that cannot be shown."""
    return f"U+{ord(char):04X}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control, format and separator character (except those in ``keep``) written as
    its escape, ``\\x1b`` or ``\\u202e``: the reader sees that something was there, and nothing acts on it."""
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if char not in keep and unicodedata.category(char) in INVISIBLE_CATEGORIES
        else char
        for char in text
    )


# Adaptive Card TextBlocks (and FactSet values) are Markdown. Backslash escapes are CommonMark's way to
# say "literally"; the characters escaped are those that open markup anywhere in a line. Some Teams
# clients show the backslash instead of honouring it, so escapes stay few: "(" only after "]" (which
# alone makes "[text](url)" a link, even for a parser without escapes, as "](" never stays adjacent),
# "_" only where it can open or close emphasis (not inside a word, as in copy_sales), "&" only where it
# starts an entity reference.
_TEAMS_INLINE = re.compile(r"[\\`*\[\]<>~|]|(?<=\])\(|(?<![^\W_])_|_(?![^\W_])|&(?=#?\w+;)")
# At a line's start (after the inline escapes): list items, headings and setext underlines.
_TEAMS_LINE_START = re.compile(r"(?m)^([ \t]*)(?:([-+=#])|(\d{1,9})([.)]))")


def teams_markdown(text: str) -> str:
    """``text`` for an Adaptive Card TextBlock: shown as written, never a link, emphasis, list or heading."""
    escaped = _TEAMS_INLINE.sub(lambda match: "\\" + match.group(0), visible(text, keep="\n\t"))
    return _TEAMS_LINE_START.sub(_escape_line_start, escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker, number, delimiter = match.groups()
    return f"{indent}\\{marker}" if marker else f"{indent}{number}\\{delimiter}"


def slack_mrkdwn(text: str) -> str:
    """``text`` for Slack mrkdwn, where only ``&``, ``<`` and ``>`` are special: with them escaped, no
    ``<url|text>`` link, ``<@U…>`` mention or ``<!channel>`` broadcast can be written."""
    return visible(text, keep="\n\t").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
