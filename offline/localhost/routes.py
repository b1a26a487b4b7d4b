"""Functions route templates (ASP.NET Core routing syntax) and the choice of a function for a request.

Supported: literal segments (case-insensitive), ``{name}``, constraints ``{id:int}``,
``{name:alpha:maxlength(8)}``, ``{v:regex(^\\d+$)}``, optional ``{x?}`` and default ``{x=1}`` parameters at
the end, catch-all ``{*rest}``, and segments mixing literals and parameters (``{name}.{ext}``). Braces
are escaped by doubling them. As in ASP.NET Core, a literal beats a constrained parameter, which beats a
plain one, which beats a catch-all.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

from offline.localhost.config import HostConfigError

Check = Callable[[str], bool]
T = TypeVar("T")

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"^[+-]?\d+$")
_ALPHA = re.compile(r"^[a-z]*$", re.IGNORECASE)
_CONSTRAINT = re.compile(r"^(\w+)(?:\((.*)\))?$", re.DOTALL)


def _integer_in(low: int, high: int) -> Check:
    return lambda value: bool(_INTEGER.match(value)) and low <= int(value) <= high


def _parses(parser: Callable[[str], object]) -> Check:
    def check(value: str) -> bool:
        try:
            parser(value)
        except ValueError:
            return False
        return True

    return check


def _is_number(value: str) -> bool:
    try:
        return not math.isnan(float(value))
    except ValueError:
        return False


def _ints(argument: str | None, count: int, constraint: str) -> list[int]:
    parts = [] if argument is None else [part.strip() for part in argument.split(",")]
    if len(parts) != count or not all(_INTEGER.match(part) for part in parts):
        raise HostConfigError(f"route constraint {constraint} needs {count} integer argument(s)")
    return [int(part) for part in parts]


def _length(argument: str | None) -> Check:
    bounds = _ints(argument, 2 if argument and "," in argument else 1, "length")
    low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
    return lambda value: low <= len(value) <= high


def _long_between(low: int | None, high: int | None) -> Check:
    def check(value: str) -> bool:
        if not _integer_in(*INT64)(value):
            return False
        number = int(value)
        return (low is None or number >= low) and (high is None or number <= high)

    return check


def _regex(argument: str | None) -> Check:
    """ASP.NET's regex constraint is unanchored, case-insensitive: templates anchor it themselves."""
    if not argument:
        raise HostConfigError("route constraint regex needs a pattern")
    try:
        pattern = re.compile(argument, re.IGNORECASE)
    except re.error as error:
        raise HostConfigError(f"route constraint regex({argument}): {error}") from error
    return lambda value: pattern.search(value) is not None


_SIMPLE: dict[str, Check] = {
    "int": _integer_in(*INT32),
    "long": _integer_in(*INT64),
    "bool": lambda value: value.lower() in ("true", "false"),
    "guid": _parses(uuid.UUID),
    "alpha": lambda value: bool(_ALPHA.match(value)),
    "decimal": _is_number,
    "double": _is_number,
    "float": _is_number,
    "datetime": _parses(datetime.fromisoformat),
    "required": bool,
}

_WITH_ARGUMENT: dict[str, Callable[[str | None], Check]] = {
    "minlength": lambda arg: (lambda n: lambda value: len(value) >= n)(_ints(arg, 1, "minlength")[0]),
    "maxlength": lambda arg: (lambda n: lambda value: len(value) <= n)(_ints(arg, 1, "maxlength")[0]),
    "length": _length,
    "min": lambda arg: _long_between(_ints(arg, 1, "min")[0], None),
    "max": lambda arg: _long_between(None, _ints(arg, 1, "max")[0]),
    "range": lambda arg: _long_between(*_ints(arg, 2, "range")),
    "regex": _regex,
}


def constraint(text: str) -> Check:
    match = _CONSTRAINT.match(text)
    name, argument = (match.group(1).lower(), match.group(2)) if match else (text, None)
    if name in _SIMPLE and argument is None:
        return _SIMPLE[name]
    if name in _WITH_ARGUMENT:
        return _WITH_ARGUMENT[name](argument)
    raise HostConfigError(f"unknown route constraint {text!r}")


@dataclass(frozen=True)
class Parameter:
    name: str
    checks: tuple[Check, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


Part = str | Parameter


def _split_parameter_text(text: str) -> tuple[list[str], str | None]:
    """Splits ``name:c1:c2(arg)=default`` into the name and constraints, and the default.

    Like ASP.NET, an argument ends at the ``)`` followed by ``:``, ``=``, ``?`` or the end, so a regex
    may hold parentheses, colons and equal signs.
    """
    pieces: list[str] = []
    start = index = 0
    while index < len(text):
        char = text[index]
        if char == "(":
            index = _argument_end(text, index)
        elif char == ":":
            pieces.append(text[start:index])
            start = index + 1
        elif char == "=":
            pieces.append(text[start:index])
            return pieces, text[index + 1 :]
        index += 1
    pieces.append(text[start:])
    return pieces, None


def _argument_end(text: str, opening: int) -> int:
    for index in range(opening + 1, len(text)):
        rest = text[index + 1 :]
        if text[index] == ")" and (rest == "" or rest == "?" or rest[0] in ":="):
            return index
    raise HostConfigError(f"route parameter {{{text}}}: unclosed constraint argument")


def parse_parameter(text: str) -> Parameter:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    optional = body.endswith("?")
    body = body.removesuffix("?")
    (name, *constraints), default = _split_parameter_text(body)
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise HostConfigError(f"route parameter {{{text}}}: invalid name {name!r}")
    return Parameter(name, tuple(constraint(c) for c in constraints), optional, default, catch_all)


def _tokenize(segment: str) -> list[Part]:
    """Literal text and parameters of one segment, undoing ``{{``/``}}`` escapes."""
    parts: list[Part] = []
    literal: list[str] = []
    index = 0
    while index < len(segment):
        char, pair = segment[index], segment[index : index + 2]
        if pair in ("{{", "}}"):
            literal.append(char)
            index += 2
        elif char == "{":
            end = _parameter_end(segment, index)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(parse_parameter(segment[index + 1 : end].replace("}}", "}").replace("{{", "{")))
            index = end + 1
        elif char == "}":
            raise HostConfigError(f"route segment {segment!r}: unmatched '}}'")
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _parameter_end(segment: str, opening: int) -> int:
    index = opening + 1
    while index < len(segment):
        if segment[index : index + 2] in ("{{", "}}"):
            index += 2
        elif segment[index] == "}":
            return index
        else:
            index += 1
    raise HostConfigError(f"route segment {segment!r}: unclosed '{{'")


def _split_template(template: str) -> list[str]:
    """Splits at ``/`` outside parameters (a regex constraint may contain one)."""
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    for char in template:
        if char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current.append(char)
    segments.append("".join(current))
    return segments


@dataclass
class RouteTemplate:
    """One parsed template; ``match`` takes the request path's decoded segments."""

    text: str
    segments: list[list[Part]] = field(init=False)
    _patterns: list[re.Pattern[str] | None] = field(init=False)

    def __post_init__(self) -> None:
        stripped = self.text.removeprefix("~").strip("/")
        self.segments = [_tokenize(s) for s in _split_template(stripped)] if stripped else []
        for position, parts in enumerate(self.segments):
            if not parts:
                raise HostConfigError(f"route {self.text!r}: empty segment")
            is_last = position == len(self.segments) - 1
            for part in parts:
                if isinstance(part, Parameter) and part.catch_all and not (is_last and len(parts) == 1):
                    raise HostConfigError(f"route {self.text!r}: a catch-all must be the whole last segment")
        self._patterns = [_segment_pattern(parts) for parts in self.segments]

    @property
    def precedence(self) -> tuple[int, ...]:
        """Lower sorts first: 1 literal, 2 mixed, 3 constrained parameter, 4 parameter, 5 catch-all."""
        return tuple(_segment_rank(parts) for parts in self.segments)

    def match(self, path: Sequence[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for position, parts in enumerate(self.segments):
            single = parts[0] if len(parts) == 1 else None
            if isinstance(single, Parameter) and single.catch_all:
                return _bind(values, single, "/".join(path[position:]))
            if position >= len(path):
                return values if self._rest_optional(position, values) else None
            if not self._match_segment(position, path[position], values):
                return None
        return values if len(path) == len(self.segments) else None

    def _match_segment(self, position: int, text: str, values: dict[str, str]) -> bool:
        parts, pattern = self.segments[position], self._patterns[position]
        if pattern is None:
            return text.lower() == str(parts[0]).lower()
        found = pattern.fullmatch(text)
        if found is None:
            return False
        parameters = [p for p in parts if isinstance(p, Parameter)]
        for parameter, value in zip(parameters, found.groups(), strict=True):
            if not parameter.accepts(value):
                return False
            values[parameter.name] = value
        return True

    def _rest_optional(self, position: int, values: dict[str, str]) -> bool:
        """A path that ends early matches when each remaining segment is an optional, defaulted or
        catch-all parameter."""
        for parts in self.segments[position:]:
            single = parts[0] if len(parts) == 1 else None
            if not isinstance(single, Parameter):
                return False
            if not (single.optional or single.catch_all or single.default is not None):
                return False
            if single.default is not None:
                values[single.name] = single.default
        return True


def _bind(values: dict[str, str], parameter: Parameter, value: str) -> dict[str, str] | None:
    """A catch-all also matches nothing (then it takes its default, if any)."""
    if not value:
        if parameter.default is not None:
            values[parameter.name] = parameter.default
        return values
    if not parameter.accepts(value):
        return None
    values[parameter.name] = value
    return values


def _segment_pattern(parts: list[Part]) -> re.Pattern[str] | None:
    """Greedy groups: in ``{name}.{ext}``, ``a.b.txt`` gives ``a.b`` and ``txt`` as in ASP.NET Core."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return None
    pattern = "".join(re.escape(part) if isinstance(part, str) else "(.+)" for part in parts)
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def _segment_rank(parts: list[Part]) -> int:
    if len(parts) > 1:
        return 2
    part = parts[0]
    if isinstance(part, str):
        return 1
    if part.catch_all:
        return 5
    return 3 if part.checks else 4


def split_path(raw_path: str) -> list[str]:
    """Decoded path segments, except ``%2F`` which stays encoded as ASP.NET Core leaves it.

    One trailing slash is ignored, as routing does.
    """
    path = raw_path.split("?", 1)[0].lstrip("/")
    path = path.removesuffix("/")
    if not path:
        return []
    return [unquote(re.sub("%2[fF]", "%252F", segment)) for segment in path.split("/")]


@dataclass(frozen=True)
class Match(Generic[T]):
    target: T
    values: dict[str, str]


class Router(Generic[T]):
    """Routes paths to targets by template; methods are checked by the caller's ``allows``."""

    def __init__(self, routes: Iterable[tuple[str, T]]) -> None:
        parsed = [(RouteTemplate(template), target) for template, target in routes]
        self._routes = sorted(parsed, key=lambda route: route[0].precedence)

    def matches(self, path: Sequence[str]) -> list[Match[T]]:
        """Every target whose template matches, the most specific first."""
        found = []
        for template, target in self._routes:
            values = template.match(path)
            if values is not None:
                found.append(Match(target, values))
        return found
