"""The local host's parts without a server: route templates, schedules, host.json and app settings."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from offline.localhost.config import HostConfig, HostConfigError, parse_timespan, resolve_settings
from offline.localhost.routes import Router, RouteTemplate, split_path
from offline.localhost.triggers import Interval, parse_schedule

GUID = str(uuid.UUID(int=7))


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("runs/{id:int}", "runs/-3", {"id": "-3"}),
        ("runs/{id:int}", "runs/2147483648", None),
        ("runs/{id:long}", "runs/2147483648", {"id": "2147483648"}),
        ("flags/{on:bool}", "flags/TRUE", {"on": "TRUE"}),
        ("ids/{g:guid}", f"ids/{GUID}", {"g": GUID}),
        ("ids/{g:guid}", "ids/nope", None),
        ("names/{n:alpha:maxlength(3)}", "names/abc", {"n": "abc"}),
        ("names/{n:alpha:maxlength(3)}", "names/abcd", None),
        ("names/{n:alpha:maxlength(3)}", "names/ab1", None),
        ("names/{n:length(2,3)}", "names/a", None),
        ("names/{n:minlength(2)}", "names/ab", {"n": "ab"}),
        ("numbers/{n:min(10)}", "numbers/9", None),
        ("numbers/{n:range(1,5)}", "numbers/5", {"n": "5"}),
        ("numbers/{n:double}", "numbers/1.5", {"n": "1.5"}),
        ("codes/{v:regex(^\\d{{3}}$)}", "codes/123", {"v": "123"}),
        ("codes/{v:regex(^\\d{{3}}$)}", "codes/12a", None),
        ("codes/{v:regex(b)}", "codes/abc", {"v": "abc"}),  # unanchored, as in ASP.NET Core
        ("page/{n=5}", "page", {"n": "5"}),
        ("page/{n:int=5}", "page", {"n": "5"}),
        ("page/{n?}", "page/", {}),
        ("files/{*rest}", "files/a/b", {"rest": "a/b"}),
        ("files/{*rest}", "files", {}),
        ("file/{name}.{ext}", "file/a.b.txt", {"name": "a.b", "ext": "txt"}),
        ("Runs/Latest", "runs/LATEST", {}),
        ("enc/{v}", "enc/a%20b%2Fc", {"v": "a b%2Fc"}),
        ("a/{b}", "a/b/c", None),
        ("a/{b}", "a", None),
        ("lit{{x}}/{id}", "lit{x}/1", {"id": "1"}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(split_path(path)) == expected


@pytest.mark.parametrize(
    "template",
    ["a/{b:unknown}", "a/{b", "a/b}", "a/{*rest}/c", "a/{b:min(x)}", "a/{1b}", "a/{v:regex(()}", "a//b"],
)
def test_templates_the_host_would_refuse(template: str) -> None:
    with pytest.raises(HostConfigError):
        RouteTemplate(template)


def test_the_most_specific_route_comes_first() -> None:
    router = Router(
        [("runs/{*rest}", "catch-all"), ("runs/{id}", "param"), ("runs/{id:int}", "int"), ("runs/7", "literal")]
    )

    assert [m.target for m in router.matches(split_path("runs/7"))] == ["literal", "int", "param", "catch-all"]
    assert [m.target for m in router.matches(split_path("runs/x"))] == ["param", "catch-all"]


T0 = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/5 * * * * *", T0, datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)),
        ("0 */5 * * * *", T0, datetime(2026, 1, 1, 0, 5, tzinfo=UTC)),
        ("10,20 * * * * *", datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, 10, tzinfo=UTC)),
        ("0 30 9 * * 1-5", datetime(2026, 1, 2, 10, tzinfo=UTC), datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("0 0 0 * * SUN", T0, datetime(2026, 1, 4, tzinfo=UTC)),
        # NCrontab wants day-of-month AND day-of-week: the next Friday the 13th, not every Friday.
        ("0 0 0 13 * 5", T0, datetime(2026, 2, 13, tzinfo=UTC)),
        ("00:00:10", T0, datetime(2026, 1, 1, 0, 0, 13, tzinfo=UTC)),
    ],
)
def test_schedules(schedule: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(schedule).next_after(after) == expected


def test_a_timespan_schedule_is_an_interval() -> None:
    assert parse_schedule("01:00:00") == Interval(3600)


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "nonsense", "0 0 0 32 * *", "00:00:00", "* * * * * * *"])
def test_schedules_the_host_would_refuse(schedule: str) -> None:
    with pytest.raises(HostConfigError):
        parse_schedule(schedule)


def test_host_json_defaults_are_the_hosts() -> None:
    assert HostConfig.load(None) == HostConfig("api", 5, 0.0, 16, "base64")


def test_host_json_options(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    queues = {"maxDequeueCount": 3, "visibilityTimeout": "00:00:30", "messageEncoding": "None", "batchSize": 8}
    path.write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "/gw/v1/"}, "queues": queues}})
    )

    assert HostConfig.load(path) == HostConfig("gw/v1", 3, 30.0, 8, "none")


@pytest.mark.parametrize(
    "queues", [{"messageEncoding": "utf8"}, {"visibilityTimeout": "30s"}, {"maxDequeueCount": 0}, {"batchSize": 64}]
)
def test_host_json_values_the_host_would_refuse(tmp_path: Path, queues: dict[str, object]) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"queues": queues}}))

    with pytest.raises(HostConfigError):
        HostConfig.load(path)


def test_timespans() -> None:
    assert parse_timespan("1.02:03:04.5") == 93784.5
    assert parse_timespan("00:00:30") == 30
    assert parse_timespan("30") is None


def test_app_settings_resolve_between_percent_signs() -> None:
    assert resolve_settings("%QUEUE%-poison", {"QUEUE": "alerts"}) == "alerts-poison"
    assert resolve_settings("plain", {}) == "plain"
    with pytest.raises(HostConfigError, match="MISSING"):
        resolve_settings("%MISSING%", {})
