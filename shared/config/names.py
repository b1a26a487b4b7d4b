"""Azure's naming rules for every name that ends up in an upstream URL path.

Checking names against the rules of the official specs (rather than escaping them) refuses path
and host injection outright and tells the caller what a valid name looks like. Every rule also
refuses control, format and separator characters (Unicode Cc, Cf, Zl, Zp) anywhere in a name: a
bidi override, a NEL or a line separator past the first character passes a spec's character class
but makes the name read differently in every log, alert and terminal that shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.text import codepoint, invisible


@dataclass(frozen=True)
class NameRule:
    what: str
    pattern: re.Pattern[str]
    max_length: int
    hint: str

    def problem(self, value: str) -> str | None:
        """Why ``value`` breaks the rule, or None when it is valid."""
        if not value:
            return f"{self.what} must not be empty."
        if len(value) > self.max_length:
            return f"{self.what} is longer than {self.max_length} characters."
        if (char := invisible(value)) is not None:
            return f"{self.what} must not contain control or invisible characters ({codepoint(char)} found)."
        if not self.pattern.fullmatch(value):
            return f"{self.what} {value!r} is invalid: {self.hint}"
        return None


# ADF spec (datafactory.json): pipelineName ^[A-Za-z0-9_][^<>*#.%&:\\+?/]*$, 1-260.
# Control characters are refused as well: they never belong in a pipeline name.
PIPELINE = NameRule(
    "Pipeline name",
    re.compile(r"[A-Za-z0-9_][^<>*#.%&:\\+?/\x00-\x1f\x7f]*"),
    260,
    "start with a letter, digit or underscore and avoid < > * # . % & : \\ + ? / and control characters.",
)
FACTORY = NameRule(
    "Factory name",
    re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"),
    63,
    "letters, digits and single hyphens, starting and ending with a letter or digit (3-63).",
)
# Azure: 1-90 of these characters, not ending in a period (which also rules out "." and "..").
RESOURCE_GROUP = NameRule(
    "Resource group name",
    re.compile(r"[-\w.()]*[-\w()]", re.ASCII),
    90,
    "letters, digits, '-', '_', '.', '(' and ')', not ending in a period.",
)
SUBSCRIPTION_ID = NameRule(
    "Subscription id",
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    36,
    "a GUID such as 00000000-0000-0000-0000-000000000000.",
)
# Synapse workspace names: lowercase letters, digits and hyphens, 1-50, no leading/trailing hyphen.
WORKSPACE = NameRule(
    "Workspace name",
    re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"),
    50,
    "lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)
# Synapse Spark pool names: letters and digits, starting with a letter, at most 15.
SPARK_POOL = NameRule(
    "Spark pool name",
    re.compile(r"[A-Za-z][A-Za-z0-9]*"),
    15,
    "letters and digits, starting with a letter, at most 15 characters.",
)
# Azure ML workspace names (Workspaces_Get): 3-33 letters, digits, hyphens or underscores.
ML_WORKSPACE = NameRule(
    "Azure ML workspace name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}"),
    33,
    "3 to 33 letters, digits, hyphens or underscores, starting with a letter or digit.",
)
# An Azure ML job template of the catalog: a URL segment, and the experiment name when none is set
# (experiment names: letters, digits, hyphens and underscores, starting with a letter or digit).
ML_TEMPLATE = NameRule(
    "Job template name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"),
    255,
    "letters, digits, hyphens and underscores, starting with a letter or digit.",
)
# Azure ML job input names are identifiers (the ${{inputs.<name>}} of a command).
ML_INPUT = NameRule(
    "Input name",
    re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    255,
    "letters, digits and underscores, not starting with a digit.",
)
# Microsoft Fabric names workspaces, items and job instances by GUID (format: uuid in its specs).
FABRIC_ID = NameRule(
    "Fabric id",
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    36,
    "a GUID such as 00000000-0000-0000-0000-000000000000 (Fabric names workspaces and items by id).",
)
# Our own names: target names appear in URLs and run ids.
TARGET = NameRule(
    "Target name",
    re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"),
    40,
    "lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)
# Upstream run ids are GUIDs in ADF and Synapse; Livy batch ids are integers.
UPSTREAM_RUN_ID = NameRule(
    "Run id",
    re.compile(r"[0-9A-Za-z-]+"),
    64,
    "letters, digits and hyphens.",
)
