"""Load: many concurrent starts and status reads through the local host, then an exact reckoning.

Every start carries its own ``Idempotency-Key``; a share of them is sent twice at once, as a client
retrying on a timeout would. Afterwards three independent counts must agree exactly: the distinct runs
the callers were given (202), the runs in the registry (read back through the API) and the runs the
emulated Azure started. A run Azure started that the registry does not know, or a 202 whose run is not
recorded, is *lost*; a second run for one key, in the registry or in Azure, is *doubled*.

    python -m bench.load [--starts 300] [--concurrency 32] [--reads 2] [--repeats 0.1]
                         [--latency-ms 50] [--time-limit 300]

A connection reset or timeout is what a real client sees under load too: it is counted (``errors``, by
kind of request), not fatal; a start is then sent again with the same key, as a client would, up to
``START_ATTEMPTS`` times, and a status read is not retried. Latencies are of answered requests only.

Bounded in requests and time; everything listens on 127.0.0.1 and stops with this process. The last
line printed is one JSON object; the exit code is 1 unless nothing was lost, doubled, refused or left
unanswered.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.harness import Gateway, gateway, percentile

# (target index in the emulator's info, kind, pipeline): both audiences, both services.
WORK = (("factories", "daily_load"), ("workspaces", "refresh_lake"))
BUSY_RETRIES = 20  # a racing duplicate waits for the first request to record its run
START_ATTEMPTS = 5  # a keyed start is sent again after a connection error, as a client would
RECONNECT_PAUSE_S = 0.2


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    given: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key -> run ids answered
    replays: int = 0
    busy: int = 0
    failures: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # kind -> connection errors
    first_errors: list[str] = field(default_factory=list)  # the first few, for the console
    unanswered: int = 0  # starts that got no answer at all, even after retries
    sent: int = 0

    def timed(self, kind: str, send: Any) -> requests.Response | None:
        """The answer, or None when the connection failed (reset, refused, timed out): counted, not raised."""
        started = time.perf_counter()
        try:
            response: requests.Response = send()
        except requests.RequestException as error:
            with self.lock:
                self.errors[kind] += 1
                if len(self.first_errors) < 10:
                    self.first_errors.append(f"{kind}: {type(error).__name__}: {error}")
            return None
        with self.lock:
            self.latencies[kind].append((time.perf_counter() - started) * 1000)
            self.sent += 1
        return response


class Caller:
    """One client thread's session; APIM's function key on every call."""

    _local = threading.local()

    def __init__(self, gateway: Gateway, tally: Tally, reads: int, deadline: float) -> None:
        self.gateway, self.tally, self.reads, self.deadline = gateway, tally, reads, deadline

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["x-functions-key"] = self.gateway.function_key
            self._local.session = session
        return session

    def start(self, job: tuple[str, str, str, int]) -> None:
        key, target, pipeline, index = job
        if time.monotonic() > self.deadline:
            return
        url = f"{self.gateway.api_url}/targets/{target}/pipelines/{pipeline}/runs"
        body = {"parameters": {"load": index}}
        response: requests.Response | None = None
        attempts = 0
        for _ in range(BUSY_RETRIES + START_ATTEMPTS):
            response = self.tally.timed(
                "start", lambda: self.session.post(url, json=body, headers={"Idempotency-Key": key}, timeout=60)
            )
            if response is None:
                attempts += 1
                if attempts >= START_ATTEMPTS:
                    break
                time.sleep(RECONNECT_PAUSE_S)
                continue
            if response.status_code != 409:
                break
            with self.tally.lock:
                self.tally.busy += 1
            time.sleep(0.1)
        if response is None:
            with self.tally.lock:
                self.tally.unanswered += 1
                self.tally.failures.append(f"start {key}: no answer after {attempts} connection errors")
            return
        if response.status_code != 202:
            with self.tally.lock:
                self.tally.failures.append(f"start {key}: {response.status_code} {response.text[:200]}")
            return
        run = response.json()
        with self.tally.lock:
            self.tally.given[key].add(run["id"])
            self.tally.replays += response.headers.get("Idempotent-Replayed") == "true"
        for _ in range(self.reads):
            read = self.tally.timed(
                "status", lambda: self.session.get(f"{self.gateway.api_url}/runs/{run['id']}", timeout=60)
            )
            if read is not None and read.status_code != 200:
                with self.tally.lock:
                    self.tally.failures.append(f"status {run['id']}: {read.status_code} {read.text[:200]}")


def milliseconds(samples: list[float], fraction: float) -> float | None:
    """A percentile rounded for the report; None when nothing of that kind was answered (``--reads 0``)."""
    return round(percentile(samples, fraction), 1) if samples else None


def registry_runs(gateway: Gateway, targets: list[str]) -> list[dict[str, Any]]:
    """Every run the registry holds, read back page by page through the API."""
    runs: list[dict[str, Any]] = []
    with requests.Session() as session:
        session.headers["x-functions-key"] = gateway.function_key
        for target in targets:
            params = {"target": target, "limit": "200"}
            while True:
                page = session.get(f"{gateway.api_url}/runs", params=params, timeout=60).json()
                runs.extend(page["value"])
                if not page.get("continuation"):
                    break
                params = {"target": target, "limit": "200", "continuation": page["continuation"]}
    return runs


def reckon(tally: Tally, recorded: list[dict[str, Any]], started: list[dict[str, Any]]) -> dict[str, Any]:
    """Lost and doubled, from the three counts."""
    keys = len(tally.given)
    answered = {run_id for ids in tally.given.values() for run_id in ids}
    recorded_ids = {run["id"] for run in recorded}
    upstream_known = {run["upstreamRunId"] for run in recorded if run["upstreamRunId"]}
    azure_ids = {run["runId"] for run in started}
    lost = len(answered - recorded_ids) + len(azure_ids - upstream_known)
    doubled = (
        sum(len(ids) - 1 for ids in tally.given.values()) + max(0, len(recorded) - keys) + max(0, len(started) - keys)
    )
    return {
        "answered_runs": len(answered),
        "registry_runs": len(recorded),
        "azure_runs": len(started),
        "unconfirmed": sum(1 for run in recorded if not run["upstreamRunId"]),
        "lost": lost,
        "doubled": doubled,
        "agree": len(answered) == len(recorded) == len(started) == keys,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=300, help="distinct starts (Idempotency-Keys)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reads", type=int, default=2, help="status reads after each start")
    parser.add_argument("--repeats", type=float, default=0.1, help="share of starts sent twice at once")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="emulated latency of every Azure call")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds after which no start is sent")
    args = parser.parse_args(argv)
    rng = random.Random(5)
    tally = Tally()
    table = f"load{uuid.uuid4().hex[:12]}"
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as directory,
        gateway(Path(directory), latency_ms=args.latency_ms, settings={"GATEWAY_RUNS_TABLE": table}) as running,
    ):
        info = running.emulator
        targets = [info[collection][0]["name"] for collection, _ in WORK]
        jobs: list[tuple[str, str, str, int]] = []
        for index in range(args.starts):
            which = index % len(WORK)
            job = (f"load-{index:06d}", targets[which], WORK[which][1], index)
            jobs.extend([job, job] if rng.random() < args.repeats else [job])
        caller = Caller(running, tally, args.reads, time.monotonic() + args.time_limit)
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(caller.start, jobs))
        wall = time.perf_counter() - began
        recorded = registry_runs(running, targets)
        started = running.admin("GET", "runs")["value"]
    everything = [ms for samples in tally.latencies.values() for ms in samples]
    connection_errors = sum(tally.errors.values())
    result: dict[str, Any] = {
        "requests": tally.sent,
        "concurrency": args.concurrency,
        "starts": len(tally.given),
        "repeated_starts": len(jobs) - args.starts,
        "replayed": tally.replays,
        "busy_retries": tally.busy,
        "status_reads": len(tally.latencies["status"]),
        "latency_ms": args.latency_ms,
        "seconds": round(wall, 1),
        "throughput_rps": round(tally.sent / wall, 1),
        "p50_ms": milliseconds(everything, 0.50),
        "p99_ms": milliseconds(everything, 0.99),
        **{
            f"{kind}_{name}_ms": milliseconds(samples, fraction)
            for kind, samples in tally.latencies.items()
            if samples
            for name, fraction in (("p50", 0.50), ("p99", 0.99))
        },
        "errors": connection_errors,
        **{f"{kind}_errors": count for kind, count in sorted(tally.errors.items())},
        "unanswered": tally.unanswered,
        "refused": len(tally.failures) - tally.unanswered,
        **reckon(tally, recorded, started),
    }
    for failure in [*tally.first_errors, *tally.failures][:10]:
        print(failure)
    print(
        f"{result['requests']} requests from {args.concurrency} callers in {result['seconds']}s "
        f"({result['throughput_rps']}/s), p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"{result['starts']} starts ({result['replayed']} replays) -> answered {result['answered_runs']}, "
        f"registry {result['registry_runs']}, Azure {result['azure_runs']}: lost {result['lost']}, "
        f"doubled {result['doubled']}; {connection_errors} connection errors, {tally.unanswered} starts unanswered"
    )
    print(json.dumps(result))
    healthy = result["agree"] and not (result["lost"] or result["doubled"] or result["refused"] or result["unanswered"])
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
