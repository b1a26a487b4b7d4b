"""The benchmark and load scripts keep working and keep their contract: one JSON object on the last line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import chaos, coldstart, forwarding, harness, load


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result


def test_load_loses_nothing_and_doubles_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert load.main(["--starts", "40", "--concurrency", "8", "--repeats", "0.3", "--latency-ms", "10"]) == 0
    result = last_json(capsys)
    assert result["lost"] == 0 and result["doubled"] == 0 and result["refused"] == 0 and result["agree"]
    assert result["starts"] == result["answered_runs"] == result["registry_runs"] == result["azure_runs"] == 40
    assert result["replayed"] == result["repeated_starts"] > 0  # every duplicate got the original run
    assert result["requests"] == 40 + result["repeated_starts"] + result["status_reads"] + result["busy_retries"]


def test_forwarding_reports_ratios_and_one_token_per_audience(capsys: pytest.CaptureFixture[str]) -> None:
    assert forwarding.main(["--requests", "10", "--latency-ms", "10"]) == 0
    result = last_json(capsys)
    assert result["p50_ratio"] > 0 and result["p99_ratio"] > 0 and result["overhead_p50_ms"] is not None
    assert result["token_calls"] == {"https://management.azure.com": 1, "https://storage.azure.com": 1}
    assert result["token_calls_per_1000"] == round(2 * 1000 / (forwarding.APP_WAYS * (10 + forwarding.WARMUP)), 2)


def test_cold_start_stays_within_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    assert coldstart.main(["--repeat", "3"]) == 0
    result = last_json(capsys)
    assert {"import_ms", "floor_ms", "ratio"} <= set(result)
    assert result["ratio"] <= 1.3


def test_chaos_smoke_run_loses_doubles_and_misattributes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """A short run (kills, an Azurite restart, faults) keeps the contract of ``make chaos``: its headline keys
    first, whole numbers, and an exit code that says whether every guarantee held. Too short for the
    poller's two-minute grace, so lost answers may still be settling (``stuck``); none may be lost."""
    code = chaos.main(["--starts", "20", "--time-limit", "45", "--seed", "7"])
    result = last_json(capsys)
    assert list(result)[: len(chaos.HEADLINE)] == list(chaos.HEADLINE)
    assert all(type(result[name]) is int for name in chaos.HEADLINE if name != "seconds")
    assert isinstance(result["seconds"], float) and result["seconds"] < 60  # bounded, stopping and reading included
    assert result["seed"] == 7 and result["starts"] == 20 and result["kills"] >= 1 and result["azurite_restarts"] == 1
    assert result["lost"] == 0 and result["doubled"] == 0 and result["misattributed"] == 0
    assert code == (0 if all(result[name] == 0 for name in chaos.MUST_BE_ZERO) else 1)


def test_a_chaos_host_starts_whatever_its_function_key_begins_with(tmp_path: Path) -> None:
    """token_urlsafe keys begin with "-" one time in 64: passed as its own argument, argparse took it for
    an option and the host exited 2 before serving (a flaky chaos run)."""
    host = chaos.Host(0, 7071, "-leading-dash-key", tmp_path, {})

    args = harness.parser().parse_args(host.arguments()[2:])

    assert args.function_key == "-leading-dash-key" and args.port == 7071 and args.triggers
