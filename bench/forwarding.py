"""Benchmark: what the gateway adds to starting a run, and how many tokens it asks for.

Side by side against the same emulator (its own process, ``--latency-ms`` on every call, 100 ms by
default: the real createRun takes hundreds): a start through the app (HTTP to the local Functions host,
the registry writes to Azurite before and after the create call, the create call itself) and the same
createRun sent directly with a warm ``requests.Session`` and a bearer token from the same identity
endpoint. The two alternate in a random order per round, so drift hits both alike. Token calls are the
identity endpoint's counters over every request the app served, the first (cold) one included.

A third way measures what the caps on paid compute add: the same start on a catalog entry capped
in runs in flight and starts per minute (caps high enough never to refuse), whose counts the app reads
and writes in the registry before the create call.

    python -m bench.forwarding [--requests 200] [--latency-ms 100]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.harness import Gateway, gateway, percentile
from offline.stack import catalog_for

PIPELINE = "daily_load"
CAPPED = "capped"  # a second catalog entry for the same factory, with caps that never refuse
APP_WAYS = 2  # starts through the app: uncapped and capped
WARMUP = 5
GOAL_P50_RATIO = 1.10
ARM = "https://management.azure.com"


def direct_create(gateway: Gateway) -> Callable[[], None]:
    """The baseline: createRun as any client with a warm session and a cached token would send it."""
    info = gateway.emulator
    session = requests.Session()
    ca = info["ca_bundle"]  # per call: REQUESTS_CA_BUNDLE in the environment would win over session.verify
    token = session.get(
        info["identity_endpoint"],
        params={"api-version": "2019-08-01", "resource": ARM, "client_id": info["client_id"]},
        headers={"X-IDENTITY-HEADER": info["identity_header"]},
        verify=ca,
        timeout=30,
    ).json()["access_token"]
    factory = info["factories"][0]
    url = (
        f"{info['arm_endpoint']}/subscriptions/{factory['subscription_id']}/resourceGroups/"
        f"{factory['resource_group']}/providers/Microsoft.DataFactory/factories/{factory['name']}"
        f"/pipelines/{PIPELINE}/createRun"
    )
    headers = {"Authorization": f"Bearer {token}"}

    def create() -> None:
        response = session.post(
            url, params={"api-version": "2018-06-01"}, json={}, headers=headers, verify=ca, timeout=30
        )
        if response.status_code != 200 or "runId" not in response.json():
            raise SystemExit(f"direct createRun answered {response.status_code}: {response.text[:200]}")

    return create


def capped_catalog(info: dict[str, Any]) -> dict[str, Any]:
    """The usual catalog, plus the first factory again as target ``capped`` with both caps on."""
    catalog = catalog_for(info)
    capped = {**catalog["targets"][0], "name": CAPPED}
    capped["pipelines"] = [{"match": "*", "maxRunsInFlight": 1_000_000, "startsPerMinute": 1_000_000}]
    catalog["targets"].append(capped)
    return catalog


def through_the_app(gateway: Gateway, target: str | None = None) -> Callable[[], None]:
    session = requests.Session()
    session.headers["x-functions-key"] = gateway.function_key
    target = target or gateway.emulator["factories"][0]["name"]
    url = f"{gateway.api_url}/targets/{target}/pipelines/{PIPELINE}/runs"

    def start() -> None:
        response = session.post(url, json={}, timeout=30)
        if response.status_code != 202 or not response.json().get("upstreamRunId"):
            raise SystemExit(f"the app answered {response.status_code}: {response.text[:200]}")

    return start


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="measured starts (each way)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="emulated latency of every Azure call")
    args = parser.parse_args(argv)
    rng = random.Random(11)
    with (
        tempfile.TemporaryDirectory(prefix="bench-forwarding-") as directory,
        gateway(
            Path(directory),
            latency_ms=args.latency_ms,
            settings={"GATEWAY_RUNS_TABLE": "benchforwarding"},
            catalog=capped_catalog,
        ) as started,
    ):
        direct = direct_create(started)
        app = through_the_app(started)
        capped = through_the_app(started, CAPPED)
        started.admin("POST", "counters/reset")  # the app's token calls only, from its first request on
        for _ in range(WARMUP):
            app(), capped(), direct()
        timings: dict[str, list[float]] = {"app": [], "capped": [], "direct": []}
        for _ in range(args.requests):
            order = [("app", app), ("capped", capped), ("direct", direct)]
            rng.shuffle(order)
            for name, call in order:
                timings[name].append(timed(call))
        counters = started.admin("GET", "counters")
    served = APP_WAYS * (WARMUP + args.requests)
    tokens = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("ManagedIdentity_GetToken:")}
    figures = {
        way: {"p50": percentile(samples, 0.50), "p99": percentile(samples, 0.99)} for way, samples in timings.items()
    }
    print(f"{'':<24}{'through the app':>16}{'with caps':>10}{'direct':>10}{'ratio':>8}{'overhead':>10}{'caps add':>10}")
    for quantile in ("p50", "p99"):
        app_ms, capped_ms, direct_ms = (figures[way][quantile] for way in ("app", "capped", "direct"))
        ratio, overhead = app_ms / direct_ms, app_ms - direct_ms
        print(
            f"{quantile + ' ms':<24}{app_ms:>16.1f}{capped_ms:>10.1f}{direct_ms:>10.1f}{ratio:>8.3f}"
            f"{overhead:>10.1f}{capped_ms - app_ms:>10.1f}"
        )
    print(f"token calls over {served} starts: {tokens}")
    p50_ratio = figures["app"]["p50"] / figures["direct"]["p50"]
    result = {
        "requests": args.requests,
        "latency_ms": args.latency_ms,
        "app_p50_ms": round(figures["app"]["p50"], 1),
        "app_p99_ms": round(figures["app"]["p99"], 1),
        "direct_p50_ms": round(figures["direct"]["p50"], 1),
        "direct_p99_ms": round(figures["direct"]["p99"], 1),
        "p50_ratio": round(p50_ratio, 3),
        "p99_ratio": round(figures["app"]["p99"] / figures["direct"]["p99"], 3),
        "overhead_p50_ms": round(figures["app"]["p50"] - figures["direct"]["p50"], 1),
        "overhead_p99_ms": round(figures["app"]["p99"] - figures["direct"]["p99"], 1),
        "capped_p50_ms": round(figures["capped"]["p50"], 1),
        "caps_add_p50_ms": round(figures["capped"]["p50"] - figures["app"]["p50"], 1),
        "caps_add_p99_ms": round(figures["capped"]["p99"] - figures["app"]["p99"], 1),
        "token_calls": tokens,
        "token_calls_per_1000": round(sum(tokens.values()) * 1000 / served, 2),
        "p50_goal": GOAL_P50_RATIO,
        "p50_goal_met": p50_ratio <= GOAL_P50_RATIO,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
