"""Chaos: mixed starts through crashes and faults, then three truths (and the alert queue) compared.

The guarantees the README makes (nothing Azure accepts goes unrecorded, one run per ``Idempotency-Key``,
every failure alerted once under a stable id) are easy to keep on a quiet afternoon. This script runs the
gateway the way it fails in production and then checks them against what actually happened, so the
figures are the truth, good or bad; it is a benchmark, not a test, and prints what it finds.

**Processes**, each of its own: the Azure emulator (``python -m offline.emulator``), Azurite (node, driven
by :class:`offline.azurite.Azurite`) and ``--hosts`` local Functions hosts (``python -m bench.harness
--serve --triggers``, each on a fixed port with one shared function key). Every host serves HTTP and runs
the poller with fan-out (``GATEWAY_POLL_FANOUT=true``, the timer every ``--poll-seconds``): each timer
enqueues one message per target and every host's queue trigger polls, so several pollers overlap as
instances do in Azure (where only the timer is a singleton). The app's timings are scaled to the run
(``SCALED_TIMINGS``: a lost start left alone 15 s, declared ``Unknown`` after 60 s, an alert claim held
30 s; production defaults 2 min, 10 min, 3 min), so every record can settle within the default run;
the guarantees do not depend on them, only how soon a stuck record is settled.

**Load**: ``--starts`` logical starts spread over the first ``START_SHARE`` of the run: ADF and Synapse
pipelines and Spark batches, about a third of them on targets that fail. Half carry an
``Idempotency-Key`` and are retried by the client after a connection error, a timeout, a 409 (in
progress), a 429 or a 5xx, with the same key, as a careful client does; the others are sent once (a client
without a key must not retry), and only a connection that was never made is tried on another host, as a
load balancer would. ``IDENTICAL_SHARE`` of the starts have exactly the same parameters as others to the
same pipeline (none, or the same Spark batch name), so reconciling a lost answer cannot lean on unique
parameters. Every request carries its own ``x-correlation-id``; the app sends it to Azure as
``x-ms-correlation-request-id``, the emulator keeps it on the run it created (``createCorrelationId``) and
the registry on the record (``correlation_id``), which tells which request created which record and
which Azure run.

**Chaos**, until ``CHAOS_SHARE`` of the run, all drawn from ``--seed``: ``kill -9`` of a random host at
random moments (restarted on its port after a pause); one Azurite restart on its data folder (stopped by
pid, started again with the same ``--location`` and ports); and, through the emulator's admin API,
faults on creates (connection dropped before or after the run is created, 429 with a short or a too long
``Retry-After``, 503, delays) and on the pollers' reads (503, 429, delays, dropped connections).

**Settling**: then the faults are cleared and the pollers keep running until no record is live (every
one terminal and alerted) or the deadline; the hosts are stopped and the three truths read: the client's
answers (202 bodies per logical start), the registry (``RunRegistry.list_runs`` through the app's own
``AppContext``, with the stack's settings), the alert queue (every message, with its insertion time) and
the emulator's runs (``GET /_emulator/runs``).

**Figures** (per logical start, record, Azure run or alert id, never per attempt):

* ``starts``: logical starts sent (the retries of one are one start).
* ``lost``: an Azure run created by one of the gateway's requests that no record owns (``upstreamRunId``)
  and whose own request's record is neither still ``Submitting`` (then it is counted ``stuck``) nor
  ``Unknown`` (then ``unknown``); plus a run answered ``202`` that is not in the registry.
* ``doubled``: a logical start with two records that were not refused (``Rejected`` records started
  nothing and free their key by design) or two Azure runs; likewise an automatic retry (every target has
  ``RETRY_POLICY``: the retry's correlation id is its chain's first request's plus ``.retry{attempt}``).
* ``misattributed``: a record whose ``upstreamRunId`` is an Azure run created by another request than the
  record's (or by none).
* ``failed_without_alert``: an Azure run that failed, owned by a record, with no message on the alert
  queue for that record, nor a retry chain that goes on from it to an alerted or successful end.
* ``failed_with_several_alert_ids``: an Azure run that failed and was alerted under more than one alert id.
* ``repeated_sends``: alert ids with more than one message on the queue, except those counted next.
* ``repeated_sends_after_kill``: repeats explained by a crash between send and flag. The sender of a
  message is not recorded, so this is approximated by time: a repeat counts here when a host was killed
  between the first message's insertion and the second's (widened by a second each side: queue times
  have a one-second resolution). The killed host may not have been the sender, so this can flatter;
  repeats near the Azurite restart (the README's documented outage between send and flag) stay in
  ``repeated_sends`` and are shown as ``repeated_sends_near_storage_restart``.
* ``stuck``: at the deadline, records not terminal, or ``Failed``/``Unknown`` with no alert on the queue.
  Its parts are printed: ``stuck_awaiting_unknown`` are ``Submitting`` records whose create never reached
  Azure (a drop before the create, a kill between recording and the create call); the app waits
  ``GATEWAY_UNKNOWN_AFTER_SECONDS`` before declaring them ``Unknown``. ``stuck_unreconciled`` are
  ``Submitting`` with an Azure run, ``stuck_in_flight`` other live ones, ``stuck_unalerted`` ended
  without an alert, of which ``unalerted_claimed_by_killed_host`` have their alert claimed by a process
  killed since (where the app records claims, ``host/pid/invocation``).
* ``seconds``: the whole run, wall time. Extra keys follow: ``seed``, ``unknown`` (records the app marked
  ``Unknown``: not lost nor misattributed when nobody else owns their run), ``kills``, ...

    python -m bench.chaos [--starts 400] [--seed 1] [--time-limit 300] [--concurrency 24] [--hosts 3]
                          [--poll-seconds 5] [--latency-ms 20] [--workdir DIR]

Timing (which request a kill hits) is not reproducible; the plan of starts, kills and faults is, from the
seed. The last line printed is one JSON object; the exit code is 0 only when lost, doubled,
misattributed, failed_without_alert, failed_with_several_alert_ids, repeated_sends and stuck are all 0.
Everything binds 127.0.0.1 and every child stops with this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from bench.harness import wait_for
from offline.azurite import Azurite, _die_with_parent, free_ports
from offline.stack import ROOT, app_settings, catalog_for
from offline.tls import ensure_tls_files

# -- the estate and the work -------------------------------------------------------------------

FACTORY, WORKSPACE, POOL = "chaos-adf", "chaos-syn", "chaospool"
SPARK_FILES = "abfss://jobs@chaoslake.dfs.core.windows.net"


@dataclass(frozen=True)
class Work:
    """One kind of start: where it goes and whether Azure will fail it."""

    name: str
    family: str  # "pipelines" or "spark"
    target: str
    resource: str  # pipeline, or Spark pool
    fails: bool
    weight: float
    spark_file: str = ""


WORKS = (
    Work("adf", "pipelines", FACTORY, "load_orders", False, 0.22),
    Work("adf-fails", "pipelines", FACTORY, "load_sales", True, 0.12),
    Work("synapse", "pipelines", WORKSPACE, "refresh_lake", False, 0.22),
    Work("synapse-fails", "pipelines", WORKSPACE, "build_marts", True, 0.11),
    Work("spark", "spark", WORKSPACE, POOL, False, 0.22, "main.py"),
    Work("spark-fails", "spark", WORKSPACE, POOL, True, 0.11, "fail_job.py"),  # "fail" in the file fails it
)


def emulator_config() -> dict[str, Any]:
    """Short runs (about 5 s) that declare no parameters, so runs report every parameter they were given."""

    def pipeline(name: str, activity: str, fails: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": name,
            "queue_s": 1,
            "duration_s": 3,
            "activities": [{"name": activity, "type": "Copy"}],
        }
        if fails:
            spec |= {"outcome": "Failed", "failure": {"activity": activity, "message": "Chaos: the sink refused."}}
        return spec

    return {
        "factories": [
            {
                "name": FACTORY,
                "pipelines": [pipeline("load_orders", "CopyOrders", False), pipeline("load_sales", "CopySales", True)],
            }
        ],
        "workspaces": [
            {
                "name": WORKSPACE,
                "pipelines": [
                    pipeline("refresh_lake", "Refresh", False),
                    {**pipeline("build_marts", "BuildMart", True), "recover_on_rerun": False},
                ],
                "spark_pools": [{"name": POOL, "queue_s": 1, "startup_s": 1, "duration_s": 3}],
            }
        ],
    }


# -- the plan ---------------------------------------------------------------------------------

START_SHARE = 0.45  # starts are spread over this share of the time after setup ...
CHAOS_SHARE = 0.6  # ... kills and faults go on until this share; then everything settles
IDENTICAL_SHARE = 0.4  # starts whose parameters are exactly those of other starts
KEYED_SHARE = 0.5
KILL_EVERY_S = 10.0  # one kill -9 per this many seconds of chaos, on average
FAULT_EVERY_S = 2.5
RESERVE_S = 10.0  # kept at the end of --time-limit to stop the hosts and read the truths
KEYED_RETRY_BUDGET_S = 120.0  # a keyed client gives up on a start after this long
CLIENT_TIMEOUT = (3.0, 20.0)
PROGRESS_EVERY_S = 15.0
STOP_SECONDS = 5.0
QUEUE_TIME_RESOLUTION_S = 1.0

CREATE_ROUTES = ("Pipelines_CreateRun", "Pipeline_CreatePipelineRun", "SparkBatch_CreateSparkBatchJob")
READ_ROUTES = (
    "PipelineRuns_QueryByFactory",
    "PipelineRun_QueryPipelineRunsByWorkspace",
    "SparkBatch_GetSparkBatchJobs",
    "SparkBatch_GetSparkBatchJob",
    "PipelineRuns_Get",
    "PipelineRun_GetPipelineRun",
    "ActivityRuns_QueryByPipelineRun",
    "PipelineRun_QueryActivityRuns",
)
# (label, weight, fault fields): a 429 beyond the app's 10 s wait budget becomes a 503 for the caller.
CREATE_FAULTS: tuple[tuple[str, float, dict[str, Any]], ...] = (
    ("drop-before", 3, {"kind": "drop", "when": "before"}),
    ("drop-after", 3, {"kind": "drop", "when": "after"}),
    ("429-short", 2, {"kind": "status", "status": 429, "retry_after": 1}),
    ("429-long", 1, {"kind": "status", "status": 429, "retry_after": 30}),
    ("503", 2, {"kind": "status", "status": 503}),
    ("delay", 2, {"kind": "delay"}),
)
READ_FAULTS: tuple[tuple[str, float, dict[str, Any]], ...] = (
    ("503", 3, {"kind": "status", "status": 503}),
    ("429", 2, {"kind": "status", "status": 429, "retry_after": 1}),
    ("delay", 2, {"kind": "delay"}),
    ("drop", 1, {"kind": "drop", "when": "before"}),
)


@dataclass
class Attempt:
    correlation_id: str
    host: int
    result: str  # the HTTP status, "connection-error" (sent, no answer) or "not-connected" (never sent)


@dataclass
class Job:
    """One logical start and what its client saw."""

    index: int
    work: Work
    key: str | None
    body: dict[str, Any]
    at: float  # seconds after the chaos began
    attempts: list[Attempt] = field(default_factory=list)
    answer: dict[str, Any] | None = None
    replayed: bool = False
    outcome: str = "not sent"  # "answered", "refused <status>", "unanswered"


@dataclass(frozen=True)
class Event:
    at: float
    action: str  # "fault", "kill", "storage", "calm"
    detail: dict[str, Any]


def plan_jobs(rng: random.Random, starts: int, seed: int, window: float) -> list[Job]:
    jobs: list[Job] = []
    for index in range(starts):
        work = rng.choices(WORKS, weights=[w.weight for w in WORKS])[0]
        identical = rng.random() < IDENTICAL_SHARE
        key = f"chaos-{seed}-{index:05d}" if rng.random() < KEYED_SHARE else None
        if work.family == "spark":
            name = "nightly" if identical else f"job-{index:05d}"
            body: dict[str, Any] = {"name": name, "file": f"{SPARK_FILES}/{work.spark_file}"}
        else:
            body = {} if identical else {"parameters": {"batch": index}}
        jobs.append(Job(index, work, key, body, rng.uniform(0, window)))
    return sorted(jobs, key=lambda job: job.at)


def plan_chaos(rng: random.Random, budget: float, hosts: int) -> list[Event]:
    """Kills, the Azurite restart and faults, at seeded moments of the first ``CHAOS_SHARE`` of ``budget``."""
    start_window, chaos_end = START_SHARE * budget, CHAOS_SHARE * budget
    events: list[Event] = []
    for _ in range(max(1, round(chaos_end / KILL_EVERY_S))):
        at = rng.uniform(0.05 * budget, chaos_end)
        events.append(Event(at, "kill", {"host": rng.randrange(hosts), "pause": rng.uniform(0.3, 2.0)}))
    events.append(Event(rng.uniform(0.2, 0.4) * budget, "storage", {"pause": rng.uniform(1.0, 3.0)}))
    at = rng.uniform(0.5, 1.5) * FAULT_EVERY_S
    while at < chaos_end:
        creating = at < start_window and rng.random() < 0.6
        menu = CREATE_FAULTS if creating else READ_FAULTS
        label, _, fields = rng.choices(menu, weights=[weight for _, weight, _ in menu])[0]
        fault = {**fields, "route": rng.choice(CREATE_ROUTES if creating else READ_ROUTES)}
        fault["count"] = rng.randint(1, 2) if creating else rng.randint(1, 3)
        if fault["kind"] == "delay":
            fault["delay_s"] = round(rng.uniform(1.0, 6.0) if creating else rng.uniform(0.5, 3.0), 2)
        events.append(Event(at, "fault", {"label": f"{'create' if creating else 'read'} {label}", "fault": fault}))
        at += rng.uniform(0.5, 1.5) * FAULT_EVERY_S
    events.append(Event(chaos_end, "calm", {}))
    return sorted(events, key=lambda event: event.at)


# -- processes --------------------------------------------------------------------------------


def _spawn(arguments: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child that stops with the thread that started it (always the main thread here)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, *arguments],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=output,
            preexec_fn=_die_with_parent(),
        )


def _stop(process: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


class Host:
    """One local Functions host process serving the app and running its triggers, on a fixed port."""

    def __init__(self, index: int, port: int, function_key: str, workdir: Path, env: Mapping[str, str]) -> None:
        self.index, self.port, self.function_key, self.env = index, port, function_key, env
        self.info = workdir / f"host-{index}.json"
        self.log = workdir / f"host-{index}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def arguments(self) -> list[str]:
        """The host's command line. "--function-key=K": a key may begin with "-" (token_urlsafe's
        alphabet has it), which argparse would take for an option and exit 2."""
        return ["-m", "bench.harness", "--serve", str(self.info), "--port", str(self.port),
                f"--function-key={self.function_key}", "--triggers"]  # fmt: skip

    def start(self) -> None:
        self.info.unlink(missing_ok=True)
        self.process = _spawn(self.arguments(), self.env, self.log)
        wait_for(self.info, self.process, f"local host {self.index}")

    def kill(self) -> int:
        """``kill -9``: whatever it was doing (a start, a poll, an alert) stops there."""
        assert self.process is not None
        pid = self.process.pid
        os.kill(pid, signal.SIGKILL)
        self.process.wait()
        return pid

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def admin(info: Mapping[str, Any], method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """The emulator's control API (faults, runs), never faulted itself."""
    response = requests.request(
        method, f"{info['admin_endpoint']}/{path}", json=body, verify=info["ca_bundle"], timeout=30
    )
    response.raise_for_status()
    return response.json() if response.content else None


# The app's waits, scaled to a five-minute run (see the module docstring).
SCALED_TIMINGS = {
    "GATEWAY_SUBMIT_GRACE_SECONDS": "15",
    "GATEWAY_UNKNOWN_AFTER_SECONDS": "60",
    "GATEWAY_ALERT_CLAIM_SECONDS": "30",
}


# Every target retries any failure once, two seconds later: failed pipeline runs recover when rerun
# (Synapse's build_marts does not), Spark batches fail again; so chains end both ways, under the chaos.
RETRY_POLICY = {"attempts": 2, "delaySeconds": 2}


def app_environment(info: Mapping[str, Any], azurite: Azurite, ca_bundle: Path, poll_seconds: int) -> dict[str, str]:
    """The app settings of the stack: identity, catalog (with ``RETRY_POLICY``), storage, and a poller that
    fans out every few seconds."""
    catalog = catalog_for(info)
    catalog["targets"] = [{**target, "retry": RETRY_POLICY} for target in catalog["targets"]]
    return {
        **app_settings(info, azurite, ca_bundle, catalog),
        "GATEWAY_POLL_SCHEDULE": f"*/{poll_seconds} * * * * *",
        "GATEWAY_POLL_FANOUT": "true",
        "GATEWAY_POLL_QUEUE": "gateway-poll",
        "GATEWAY_ALERT_QUEUE": "pipeline-failures",
        **SCALED_TIMINGS,
    }


@contextlib.contextmanager
def environment(settings: Mapping[str, str]) -> Iterator[None]:
    """``settings`` in this process's environment, for the app's own code reading the registry and the queue
    (azure-identity and requests read it there); restored afterwards, since a test may run this in-process."""
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the clients ------------------------------------------------------------------------------


def _never_sent(error: requests.RequestException) -> bool:
    """A connection that was never made: nothing reached the gateway, so even a client without a key may retry."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    cause = error.args[0] if error.args else None
    return isinstance(cause, NewConnectionError) or isinstance(getattr(cause, "reason", None), NewConnectionError)


class Clients:
    """The callers: each logical start from a worker thread, at its planned moment, retried as its client would."""

    _local = threading.local()

    def __init__(self, hosts: Sequence[Host], function_key: str, seed: int, began: float, give_up_at: float) -> None:
        self.urls = [host.api_url for host in hosts]
        self.function_key, self.seed, self.began, self.give_up_at = function_key, seed, began, give_up_at

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["x-functions-key"] = self.function_key
            self._local.session = session
        return session

    def run(self, job: Job) -> None:
        time.sleep(max(0.0, self.began + job.at - time.monotonic()))
        rng = random.Random(f"{self.seed}:{job.index}")
        give_up = min(time.monotonic() + KEYED_RETRY_BUDGET_S, self.give_up_at)
        while True:
            host = rng.randrange(len(self.urls))
            correlation_id = f"chaos-{job.index:05d}-{len(job.attempts) + 1}-{uuid.uuid4().hex[:12]}"
            headers = {"x-correlation-id": correlation_id}
            if job.key is not None:
                headers["Idempotency-Key"] = job.key
            try:
                response = self.session.post(
                    self._url(host, job), json=job.body, headers=headers, timeout=CLIENT_TIMEOUT
                )
            except requests.RequestException as error:
                never_sent = _never_sent(error)
                job.attempts.append(
                    Attempt(correlation_id, host, "not-connected" if never_sent else "connection-error")
                )
                if (job.key is not None or never_sent) and time.monotonic() < give_up:
                    time.sleep(_backoff(rng, len(job.attempts)))
                    continue
                job.outcome = "unanswered"
                return
            job.attempts.append(Attempt(correlation_id, host, str(response.status_code)))
            if response.status_code == 202:
                job.answer = response.json()
                job.replayed = response.headers.get("Idempotent-Replayed") == "true"
                job.outcome = "answered"
                return
            retryable = response.status_code in (409, 429) or response.status_code >= 500
            if job.key is not None and retryable and time.monotonic() < give_up:
                time.sleep(_retry_after(response) or _backoff(rng, len(job.attempts)))
                continue
            job.outcome = f"refused {response.status_code}"
            return

    def _url(self, host: int, job: Job) -> str:
        work = job.work
        if work.family == "spark":
            return f"{self.urls[host]}/targets/{work.target}/sparkpools/{work.resource}/batches"
        return f"{self.urls[host]}/targets/{work.target}/pipelines/{work.resource}/runs"


def _backoff(rng: random.Random, attempt: int) -> float:
    return min(5.0, 0.25 * 2.0 ** min(attempt, 5)) * rng.uniform(0.5, 1.0)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return min(5.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


# -- the chaos --------------------------------------------------------------------------------


@dataclass
class Chaos:
    """What the controller did and when (``time.time()``, to compare with queue and registry times)."""

    kills: list[tuple[float, int, int]] = field(default_factory=list)  # (when, host, pid)
    storage_outages: list[tuple[float, float]] = field(default_factory=list)  # (stopped, answering again)
    faults: Counter[str] = field(default_factory=Counter)
    fault_calls: int = 0  # calls the injected faults were to affect


class ChaosRun:
    """The stack, the plan and the progress lines, driven from the main thread: children started by another
    thread would be stopped by the kernel when that thread ends (see ``offline.azurite._die_with_parent``)."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.t0 = time.monotonic()
        self.deadline: float = self.t0 + float(args.time_limit) - RESERVE_S
        self.rng = random.Random(args.seed)
        self.chaos = Chaos()
        self._next_progress = 0.0

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def execute(self) -> dict[str, Any]:
        args, workdir = self.args, self.workdir
        tls = ensure_tls_files(workdir / "tls")
        config = workdir / "estate.json"
        config.write_text(json.dumps(emulator_config()))
        emulator_info = workdir / "emulator.json"
        emulator = _spawn(
            ["-m", "offline.emulator", "--port", "0", "--info", str(emulator_info), "--config", str(config),
             "--tls-dir", str(workdir / "tls"), "--latency-ms", str(args.latency_ms)],
            os.environ,
            workdir / "emulator.log",
        )  # fmt: skip
        try:
            info = wait_for(emulator_info, emulator, "the emulator")
            with Azurite(workdir / "azurite", tls) as azurite:
                settings = app_environment(info, azurite, tls.ca_bundle, args.poll_seconds)
                with environment(settings):
                    return self._with_stack(info, azurite, settings)
        finally:
            _stop(emulator)

    def _with_stack(self, info: dict[str, Any], azurite: Azurite, settings: dict[str, str]) -> dict[str, Any]:
        from shared.config.settings import Settings
        from shared.context import AppContext

        args = self.args
        env = {**os.environ, **settings}
        for unwanted in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "GATEWAY_FORWARD_URL"):
            env.pop(unwanted, None)  # no forwarder: the alerts must stay on the queue to be counted
        key = secrets.token_urlsafe(32)
        hosts = [Host(i, port, key, self.workdir, env) for i, port in enumerate(free_ports(args.hosts))]
        context = AppContext(Settings(settings))
        try:
            for host in hosts:
                host.start()
            context.registry  # noqa: B018 - the table exists before the first count
            budget = self.deadline - time.monotonic()
            if budget < 10:
                raise SystemExit(f"--time-limit {args.time_limit} leaves {budget:.0f}s after setup: too short")
            jobs = plan_jobs(self.rng, args.starts, args.seed, START_SHARE * budget)
            events = plan_chaos(self.rng, budget, len(hosts))
            kills = sum(e.action == "kill" for e in events)
            self.say(
                f"seed {args.seed}: {len(jobs)} starts over {START_SHARE * budget:.0f}s to {len(hosts)} hosts; "
                f"{kills} kills, 1 Azurite restart, {sum(e.action == 'fault' for e in events)} faults until "
                f"{CHAOS_SHARE * budget:.0f}s; settling until {budget:.0f}s"
            )
            began = time.monotonic()
            clients = Clients(hosts, key, args.seed, began, self.deadline)
            with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="client") as pool:
                futures = [pool.submit(clients.run, job) for job in jobs]
                self._chaos(events, began, hosts, azurite, info, jobs, context)
                while not all(f.done() for f in futures):
                    self._pause(1.0, jobs, context)
                for future in futures:
                    future.result()
            self._settle(jobs, context)
        finally:
            for host in hosts:
                if host.process is not None and host.process.poll() is None:
                    host.process.send_signal(signal.SIGTERM)
            for host in hosts:
                host.stop()
        self.say("hosts stopped; reading the registry, the alert queue and the emulator's runs")
        records = read_records(context)
        alerts = read_alerts(context)
        azure_runs: list[dict[str, Any]] = admin(info, "GET", "runs")["value"]
        return {"jobs": jobs, "records": records, "alerts": alerts, "azure_runs": azure_runs, "chaos": self.chaos}

    def _chaos(
        self,
        events: list[Event],
        began: float,
        hosts: list[Host],
        azurite: Azurite,
        info: dict[str, Any],
        jobs: list[Job],
        context: Any,
    ) -> None:
        for event in events:
            self._pause(began + event.at - time.monotonic(), jobs, context)
            if event.action == "kill":
                host = hosts[event.detail["host"]]
                killed_at = time.time()
                pid = host.kill()
                time.sleep(event.detail["pause"])
                host.start()
                self.chaos.kills.append((killed_at, host.index, pid))
                self.say(f"kill -9 host {host.index} (pid {pid}); up again after {time.time() - killed_at:.1f}s")
            elif event.action == "storage":
                stopped = time.time()
                azurite.stop()
                time.sleep(event.detail["pause"])
                azurite.start()
                self.chaos.storage_outages.append((stopped, time.time()))
                self.say(f"Azurite stopped by pid, restarted on its data: {time.time() - stopped:.1f}s without storage")
            elif event.action == "fault":
                fault = event.detail["fault"]
                admin(info, "POST", "faults", fault)
                self.chaos.faults[event.detail["label"]] += 1
                self.chaos.fault_calls += fault["count"]
            else:
                remaining = sum(f.get("remaining") or 0 for f in admin(info, "GET", "faults")["value"])
                admin(info, "DELETE", "faults")
                self.chaos.fault_calls -= remaining
                self.say(
                    f"chaos over: {len(self.chaos.kills)} kills, {sum(self.chaos.faults.values())} faults "
                    f"({self.chaos.fault_calls} calls hit); faults cleared"
                )

    def _pause(self, seconds: float, jobs: list[Job], context: Any) -> None:
        """Sleeps, printing a progress line every ``PROGRESS_EVERY_S``."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            now = time.monotonic()
            if now >= self._next_progress:
                self._next_progress = now + PROGRESS_EVERY_S
                self.say(self._progress(jobs, context))
            if now >= end:
                return
            time.sleep(min(end - now, 0.5))

    def _progress(self, jobs: list[Job], context: Any) -> str:
        outcomes = Counter(job.outcome.split()[0] for job in jobs)
        attempts = sum(len(job.attempts) for job in jobs)
        live = live_records(context)
        return (
            f"starts: {outcomes['answered']} answered, {outcomes['refused']} refused, {outcomes['unanswered']} "
            f"unanswered, {outcomes['not']} to go ({attempts} requests); live records: {live}"
        )

    def _settle(self, jobs: list[Job], context: Any) -> None:
        self.say(f"clients done; pollers settle until every record is terminal and alerted, or {self._left():.0f}s")
        while time.monotonic() < self.deadline:
            live = live_records(context)
            if live == "0":
                self.say("every record is terminal and alerted")
                return
            self._pause(min(3.0, self.deadline - time.monotonic()), jobs, context)
        self.say(f"deadline: {live_records(context)} records still live")

    def _left(self) -> float:
        return self.deadline - time.monotonic()


def live_records(context: Any) -> str:
    """How many records the poller still has work on (in flight, or an alert not yet sent); "?" without storage."""
    try:
        return str(sum(sum(1 for _ in context.registry.live_runs(t.name)) for t in context.catalog.targets))
    except Exception:  # noqa: BLE001 - storage may be restarting; a progress line is no reason to stop
        return "?"


def read_records(context: Any) -> list[dict[str, Any]]:
    """Every record of every target, through the app's own registry code."""
    records: list[dict[str, Any]] = []
    for target in context.catalog.targets:
        token: str | None = None
        while True:
            page, token = context.registry.list_runs(target=target.name, limit=1000, continuation=token)
            records.extend(
                {
                    "id": run.id,
                    "target": run.target,
                    "kind": run.kind,
                    "status": run.status,
                    "upstreamRunId": run.upstream_run_id,
                    "sparkPool": run.spark_pool,
                    "correlationId": run.correlation_id,
                    "message": run.message,
                    # Who holds the alert's claim, where the app records one: "host/pid/invocation".
                    "alertClaimedBy": getattr(run, "alert_claimed_by", None),
                    # An automatic retry's attempt, and a failed run's retry ("retried": its chain goes on).
                    "attempt": getattr(run, "attempt", 1),
                    "retryState": getattr(run, "retry_state", None),
                    "rerunBy": run.rerun_by,
                }
                for run in page
            )
            if not token:
                break
    return records


def read_alerts(context: Any) -> list[dict[str, Any]]:
    """Every message on the alert queue (hidden for an hour while read, never deleted), with its insertion time."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = context.alerts.receive(32, visibility_timeout=3600)
        if not batch:
            return messages
        for message in batch:
            inserted: datetime | None = message.inserted_on
            messages.append({"alert": message.json(), "inserted": inserted.timestamp() if inserted else None})


# -- the reckoning ----------------------------------------------------------------------------

Key = tuple[str, ...]
_RETRY_SUFFIX = re.compile(r"\.retry\d+$")
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled", "Rejected", "Unknown"})
NEEDS_ALERT = frozenset({"Failed", "Unknown"})


def azure_key(run: Mapping[str, Any]) -> Key:
    """An Azure run's identity: a pipeline run id, or workspace, pool and Livy batch id."""
    if run.get("service") == "spark":
        return ("spark", str(run["scope"]).partition(":")[2].lower(), str(run["pool"]).lower(), str(run["batchId"]))
    if "runId" in run:
        return ("pipeline", str(run["runId"]))
    # Work the gateway does not start (the emulator also lists Fabric and Azure ML jobs): never a record's.
    return ("other", str(run.get("service")), json.dumps(run, sort_keys=True, default=str))


def upstream_key(kind: str | None, target: str, pool: str | None, upstream_run_id: str) -> Key:
    """The Azure run a record or an alert names (a Synapse target is named after its workspace)."""
    if kind == "spark":
        return ("spark", target.lower(), (pool or "").lower(), upstream_run_id)
    return ("pipeline", upstream_run_id)


def azure_failed(run: Mapping[str, Any]) -> bool:
    return run.get("result") == "Failed" if run.get("service") == "spark" else run.get("status") == "Failed"


def reckon(
    jobs: Sequence[Job],
    records: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    azure_runs: Sequence[Mapping[str, Any]],
    chaos: Chaos,
) -> dict[str, Any]:
    """The figures of the module docstring, from the four truths."""
    sent = [job for job in jobs if job.attempts]
    job_of = {attempt.correlation_id: job for job in sent for attempt in job.attempts}
    by_id = {record["id"]: record for record in records}
    records_of: dict[str, list[Mapping[str, Any]]] = defaultdict(list)  # correlation id -> records it created
    owners: dict[Key, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        records_of[record["correlationId"] or ""].append(record)
        if record["upstreamRunId"]:
            owners[upstream_key(record["kind"], record["target"], record["sparkPool"], record["upstreamRunId"])].append(
                record
            )
    azure = {azure_key(run): run for run in azure_runs}
    created_by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for run in azure_runs:
        created_by[run.get("createCorrelationId") or ""].append(run)
    messages: dict[str, list[float]] = defaultdict(list)
    alerted: set[str] = set()
    alert_ids_of: dict[Key, set[str]] = defaultdict(set)
    for message in alerts:
        alert = message["alert"]
        messages[alert["alertId"]].append(message["inserted"] or 0.0)
        alerted.add(alert["runId"])
        if alert.get("upstreamRunId"):
            key = upstream_key(alert.get("targetKind"), alert["target"], alert.get("sparkPool"), alert["upstreamRunId"])
            alert_ids_of[key].add(alert["alertId"])

    ours = [run for run in azure_runs if requester(run.get("createCorrelationId") or "") in job_of]
    lost = pending = unknown_runs = 0
    problems: list[str] = []
    for run in ours:
        key = azure_key(run)
        if owners.get(key):
            continue
        creators = records_of[run["createCorrelationId"]]
        if any(r["status"] == "Submitting" for r in creators):
            pending += 1  # its record is counted stuck
        elif any(r["status"] == "Unknown" for r in creators):
            unknown_runs += 1
        else:
            lost += 1
            problems.append(
                f"lost: Azure run {'/'.join(key)} of request {run['createCorrelationId']}, no record owns it"
            )
    recorded_ids = {record["id"] for record in records}
    for job in sent:
        if job.answer is not None and job.answer["id"] not in recorded_ids:
            lost += 1
            problems.append(f"lost: start {job.index} was answered run {job.answer['id']}, not in the registry")

    doubled = 0
    for job in sent:
        ids = [a.correlation_id for a in job.attempts]
        started = [r for cid in ids for r in records_of.get(cid, []) if r["status"] != "Rejected"]
        runs = [run for cid in ids for run in created_by.get(cid, [])]
        if len(started) > 1 or len(runs) > 1:
            doubled += 1
            problems.append(
                f"doubled: start {job.index} (key {job.key}): {len(started)} records, {len(runs)} Azure runs"
            )

    for retry_id in sorted({r["correlationId"] for r in records if r.get("attempt", 1) > 1 and r["correlationId"]}):
        started = [r for r in records_of[retry_id] if r["status"] != "Rejected"]
        if len(started) > 1 or len(created_by.get(retry_id, [])) > 1:
            doubled += 1
            problems.append(
                f"doubled: automatic retry {retry_id}: {len(started)} records, "
                f"{len(created_by.get(retry_id, []))} Azure runs"
            )

    misattributed = 0
    for record in records:
        if not record["upstreamRunId"]:
            continue
        held = azure.get(upstream_key(record["kind"], record["target"], record["sparkPool"], record["upstreamRunId"]))
        if held is None or held.get("createCorrelationId") != record["correlationId"]:
            misattributed += 1
            creator = held.get("createCorrelationId") if held else "nobody"
            problems.append(
                f"misattributed: record {record['id']} of {record['correlationId']} holds a run of {creator}"
            )

    failed_without_alert = several_ids = 0
    for run in ours:
        if not azure_failed(run):
            continue
        key = azure_key(run)
        holders = owners.get(key, [])
        if holders and not any(r["id"] in alerted or _retried_to_an_end(r, by_id, alerted) for r in holders):
            failed_without_alert += 1
            problems.append(f"failed without alert: Azure run {'/'.join(key)} of record {holders[0]['id']}")
        if len(alert_ids_of.get(key, set())) > 1:
            several_ids += 1
            problems.append(f"several alert ids for Azure run {'/'.join(key)}: {sorted(alert_ids_of[key])}")

    repeated = after_kill = near_storage = 0
    kill_times = [when for when, _, _ in chaos.kills]
    slack = QUEUE_TIME_RESOLUTION_S
    for alert_id, times in messages.items():
        if len(times) < 2:
            continue
        first, second = sorted(times)[:2]
        if any(first - slack <= when <= second + slack for when in kill_times):
            after_kill += 1
            continue
        repeated += 1
        if any(stop - slack <= second and first <= up + slack for stop, up in chaos.storage_outages):
            near_storage += 1
        problems.append(f"repeated: alert {alert_id} sent {len(times)} times, no kill between the first two")

    stuck: Counter[str] = Counter()
    killed_pids = {pid for _, _, pid in chaos.kills}
    unalerted_claims = 0
    for record in records:
        status = record["status"]
        if status == "Submitting":
            reached = any(created_by.get(record["correlationId"] or "", []))
            stuck["stuck_unreconciled" if reached else "stuck_awaiting_unknown"] += 1
        elif status not in TERMINAL:
            stuck["stuck_in_flight"] += 1
        elif status in NEEDS_ALERT and record["id"] not in alerted and not _retried(record, by_id):
            stuck["stuck_unalerted"] += 1
            claimant = record.get("alertClaimedBy") or ""
            if _claimant_pid(claimant) in killed_pids:
                unalerted_claims += 1
                why = f", its alert claimed by {claimant}, a host killed -9 since"
            else:
                why = f", its alert claimed by {claimant}" if claimant else ""
            problems.append(f"stuck: record {record['id']} is {status} with no alert on the queue{why}")

    outcomes = Counter(job.outcome.split()[0] for job in sent)
    return {
        "starts": len(sent),
        "lost": lost,
        "doubled": doubled,
        "misattributed": misattributed,
        "failed_without_alert": failed_without_alert,
        "failed_with_several_alert_ids": several_ids,
        "repeated_sends": repeated,
        "repeated_sends_after_kill": after_kill,
        "stuck": sum(stuck.values()),
        "unknown": sum(1 for record in records if record["status"] == "Unknown"),
        "unknown_azure_runs": unknown_runs,
        **{
            name: stuck[name]
            for name in ("stuck_awaiting_unknown", "stuck_unreconciled", "stuck_in_flight", "stuck_unalerted")
        },
        "pending_azure_runs": pending,
        "unalerted_claimed_by_killed_host": unalerted_claims,
        "repeated_sends_near_storage_restart": near_storage,
        "keyed_starts": sum(1 for job in sent if job.key is not None),
        "identical_parameter_starts": sum(1 for job in sent if job.body in ({}, _identical_spark(job))),
        "requests": sum(len(job.attempts) for job in sent),
        "answered": outcomes["answered"],
        "replayed": sum(1 for job in sent if job.replayed),
        "refused": outcomes["refused"],
        "unanswered": outcomes["unanswered"],
        "connection_errors": sum(a.result in ("connection-error", "not-connected") for j in sent for a in j.attempts),
        "records": len(records),
        "records_by_status": dict(sorted(Counter(record["status"] for record in records).items())),
        "foreign_records": sum(1 for record in records if requester(record["correlationId"] or "") not in job_of),
        "automatic_retries": sum(1 for record in records if record.get("attempt", 1) > 1),
        "azure_runs": len(ours),
        "azure_failed": sum(1 for run in ours if azure_failed(run)),
        "foreign_azure_runs": len(azure_runs) - len(ours),
        "alert_messages": len(alerts),
        "alert_ids": len(messages),
        "kills": len(chaos.kills),
        "azurite_restarts": len(chaos.storage_outages),
        "faults": dict(sorted(chaos.faults.items())),
        "fault_calls_hit": chaos.fault_calls,
        "problems": problems,
    }


def requester(correlation_id: str) -> str:
    """The request a correlation id is of: an automatic retry's is its chain's first request's plus
    ``.retry{attempt}``."""
    return _RETRY_SUFFIX.sub("", correlation_id)


def _retried(record: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> bool:
    """A failed record whose automatic retry was submitted: its chain goes on at the retry's record."""
    return record.get("retryState") == "retried" and record.get("rerunBy") in by_id


def _retried_to_an_end(record: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]], alerted: set[str]) -> bool:
    """A failed record whose retry chain ended alerted or without failing (a chain still going is stuck)."""
    seen = 0
    while _retried(record, by_id) and seen < 20:
        record, seen = by_id[record["rerunBy"]], seen + 1
    return seen > 0 and (record["id"] in alerted or record["status"] not in NEEDS_ALERT)


def _claimant_pid(claimant: str) -> int | None:
    """The process in an alert claim (``host/pid/invocation``, as the poller names itself), if it names one."""
    parts = claimant.split("/")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _identical_spark(job: Job) -> dict[str, Any]:
    return {"name": "nightly", "file": f"{SPARK_FILES}/{job.work.spark_file}"}


HEADLINE = (
    "starts",
    "lost",
    "doubled",
    "misattributed",
    "failed_without_alert",
    "failed_with_several_alert_ids",
    "repeated_sends",
    "repeated_sends_after_kill",
    "stuck",
    "seconds",
)
MUST_BE_ZERO = (
    "lost",
    "doubled",
    "misattributed",
    "failed_without_alert",
    "failed_with_several_alert_ids",
    "repeated_sends",
    "stuck",
)


def summary(figures: Mapping[str, Any]) -> str:
    """What a reader needs first: the guarantees, then how hard they were tested."""
    f = figures
    lines = [
        f"{f['starts']} logical starts ({f['keyed_starts']} with an Idempotency-Key, {f['identical_parameter_starts']} "
        f"with parameters identical to others) in {f['requests']} requests: {f['answered']} answered 202 "
        f"({f['replayed']} replayed), {f['refused']} refused, {f['unanswered']} unanswered; "
        f"{f['connection_errors']} connection errors",
        f"chaos: {f['kills']} kill -9 of a host, {f['azurite_restarts']} Azurite restart, "
        f"{sum(f['faults'].values())} faults ({f['fault_calls_hit']} calls hit): "
        + ", ".join(f"{label} {count}" for label, count in f["faults"].items()),
        f"truths: {f['records']} records {f['records_by_status']}, {f['azure_runs']} Azure runs "
        f"({f['azure_failed']} failed), {f['alert_messages']} alert messages under {f['alert_ids']} ids",
        "",
        f"  lost                           {f['lost']}",
        f"  doubled                        {f['doubled']}",
        f"  misattributed                  {f['misattributed']}",
        f"  failed without alert           {f['failed_without_alert']}",
        f"  failed with several alert ids  {f['failed_with_several_alert_ids']}",
        f"  repeated sends                 {f['repeated_sends']} (near the storage restart: "
        f"{f['repeated_sends_near_storage_restart']}); after a kill: {f['repeated_sends_after_kill']}",
        f"  stuck                          {f['stuck']}: {f['stuck_awaiting_unknown']} Submitting that never reached "
        f"Azure (Unknown only after GATEWAY_UNKNOWN_AFTER_SECONDS), "
        f"{f['stuck_unreconciled']} Submitting with an Azure run, "
        f"{f['stuck_in_flight']} in flight, {f['stuck_unalerted']} ended without alert "
        f"({f['unalerted_claimed_by_killed_host']} of them claimed by a host killed since)",
        f"  unknown                        {f['unknown']} records marked Unknown "
        f"({f['unknown_azure_runs']} Azure runs whose record is Unknown)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=400, help="logical starts (default: about 5 minutes in all)")
    parser.add_argument("--seed", type=int, help="of every random choice (default: a new one, printed)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds for the whole run, setup included")
    parser.add_argument("--concurrency", type=int, default=24, help="client threads")
    parser.add_argument("--hosts", type=int, default=3, help="local hosts, each serving and polling")
    parser.add_argument("--poll-seconds", type=int, default=5, choices=[1, 2, 3, 4, 5, 6, 10, 15, 20, 30])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="emulated latency of every Azure call")
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    print(f"bench.chaos seed {args.seed} (python -m bench.chaos --seed {args.seed} repeats the plan)", flush=True)
    began = time.monotonic()
    with _workdir(args.workdir) as workdir:
        truths = ChaosRun(args, workdir).execute()
    if any("createCorrelationId" not in run for run in truths["azure_runs"]):
        # Without it every Azure run would look foreign and nothing could be lost: figures that lie.
        raise SystemExit("the emulator's runs carry no createCorrelationId: runs cannot be tied to requests")
    figures = reckon(truths["jobs"], truths["records"], truths["alerts"], truths["azure_runs"], truths["chaos"])
    figures["seconds"] = round(time.monotonic() - began, 1)
    problems: list[str] = figures.pop("problems")
    for problem in problems[:20]:
        print(f"  {problem}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")
    print(summary(figures))
    result = {name: figures[name] for name in HEADLINE}
    result |= {"seed": args.seed, "time_limit": args.time_limit}
    result |= {name: value for name, value in figures.items() if name not in result}
    print(json.dumps(result))
    return 0 if all(result[name] == 0 for name in MUST_BE_ZERO) else 1


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as directory:
        yield Path(directory)


if __name__ == "__main__":
    sys.exit(main())
