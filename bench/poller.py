"""Benchmark: one poller tick over N runs in flight across T targets, beside a per-run-GET poller.

Both pollers run the same code on the same seeded data (emulator runs, identical registry tables),
each in a process of its own so time and peak memory are their own; only the way they observe Azure
differs: ``queryPipelineRuns`` pages per target, or one ``GET pipelineruns/{id}`` per run (what users
of the official SDKs do). The emulator pages at 100 runs, like the service.

    python -m bench.poller [--runs 10000] [--targets 10] [--kind datafactory|machinelearning|fabric]

``--kind machinelearning`` runs the same comparison over Azure ML jobs: ``Jobs_List`` pages of the
gateway's tagged jobs per workspace (plus one run-history read per job that ended), against one
``Jobs_Get`` per job.

``--kind fabric`` runs it over Fabric pipeline runs, where ``--targets`` counts the pipelines of one
Fabric workspace (``python -m bench.poller --kind fabric --runs 1000 --targets 20``): Fabric lists job
instances per pipeline only, so the bulk poller makes one List Item Job Instances call per pipeline
with runs in flight and page of 100, against one Get Item Job Instance per run.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from offline.azurite import Azurite
from offline.stack import app_settings, catalog_for
from offline.tls import ensure_tls_files

LONG, DONE, FAILS = "etl_long", "etl_done", "etl_fails"
# Steady state: most runs are still going; a quarter finished since the last tick; a few failed.
SHARES = {LONG: 0.75, DONE: 0.245, FAILS: 0.005}
STATUS_ROUTES = {
    "datafactory": ("PipelineRuns_QueryByFactory", "PipelineRuns_Get"),
    "machinelearning": ("Jobs_List", "Jobs_Get"),
    "fabric": ("JobScheduler_ListItemJobInstances", "JobScheduler_GetItemJobInstance"),
}
# The short runs end this long after they start; the clock is moved past it between the two ticks.
FINISH_S = 600


def emulator_config(targets: int, kind: str) -> dict[str, Any]:
    if kind == "machinelearning":
        return {"page_size": 100, "factories": [], "workspaces": [], "ml_workspaces": ml_workspaces(targets)}
    if kind == "fabric":
        return {"page_size": 100, "factories": [], "workspaces": [], "fabric_workspaces": [fabric_workspace(targets)]}
    pipelines = [
        {"name": LONG, "queue_s": 0, "duration_s": 36_000, "activities": [{"name": "Transform", "type": "Copy"}]},
        {"name": DONE, "queue_s": 0, "duration_s": FINISH_S, "activities": [{"name": "Copy", "type": "Copy"}]},
        {
            "name": FAILS,
            "outcome": "Failed",
            "queue_s": 0,
            "duration_s": FINISH_S,
            "activities": [{"name": "LoadWarehouse", "type": "Copy"}],
            "failure": {
                "activity": "LoadWarehouse",
                "error_code": "2200",
                "failure_type": "UserError",
                "message": "Cannot connect to the warehouse.",
            },
        },
    ]
    return {
        "page_size": 100,
        "factories": [
            {"name": f"bench-adf-{index:02d}", "resource_group": "rg-bench", "pipelines": pipelines}
            for index in range(targets)
        ],
        "workspaces": [],
    }


def ml_workspaces(targets: int) -> list[dict[str, Any]]:
    """Azure ML workspaces whose jobs go like the pipelines above (command jobs, no queueing)."""
    timing = {"job_type": "Command", "start_s": 0, "prepare_s": 0, "queue_s": 0}
    templates = [
        {"name": LONG, **timing, "duration_s": 36_000},
        {"name": DONE, **timing, "duration_s": FINISH_S},
        {"name": FAILS, **timing, "duration_s": FINISH_S, "outcome": "Failed", "log_lines": ["Traceback ..."]},
    ]
    return [
        {"name": f"bench-aml-{index:02d}", "resource_group": "rg-bench", "templates": templates}
        for index in range(targets)
    ]


def fabric_workspace(pipelines: int) -> dict[str, Any]:
    """One Fabric workspace whose pipelines go like the ones above: three quarters run long, one fails
    (each Fabric pipeline has one outcome in the emulator), the rest end; ``etl_long_00`` and so on."""
    if pipelines < 3:
        raise SystemExit("--kind fabric needs at least 3 pipelines (--targets): one runs long, one ends, one fails")
    long_running = min(round(pipelines * SHARES[LONG]), pipelines - 2)
    kinds = [LONG] * long_running + [DONE] * (pipelines - long_running - 1) + [FAILS]
    timing = {LONG: 36_000, DONE: FINISH_S, FAILS: FINISH_S}
    specs = []
    for index, share in enumerate(kinds):
        spec: dict[str, Any] = {
            "id": f"00000000-0000-4000-8000-{index:012d}",
            "name": f"{share}_{index:02d}",
            "queue_s": 0,
            "duration_s": timing[share],
            "activities": [{"name": "Copy", "type": "Copy"}],
        }
        if share == FAILS:
            spec |= {
                "outcome": "Failed",
                "failure": {"activity": "Copy", "message": "Cannot connect to the warehouse."},
            }
        specs.append(spec)
    return {"id": "0be0c0ab-0000-4000-8000-000000000001", "name": "bench-fabric", "pipelines": specs}


def start_emulator(workdir: Path, targets: int, kind: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    config = workdir / "emulator.json"
    config.write_text(json.dumps(emulator_config(targets, kind)))
    info_path = workdir / "emulator-info.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "offline.emulator",
            "--port",
            "0",
            "--info",
            str(info_path),
            "--config",
            str(config),
            "--tls-dir",
            str(workdir / "tls"),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not info_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the emulator did not start")
        time.sleep(0.1)
    return process, json.loads(info_path.read_text())


def admin(info: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The emulator's control API (counters, clock)."""
    response = requests.request(
        method, f"{info['admin_endpoint']}/{path}", json=body, verify=info["ca_bundle"], timeout=30
    )
    response.raise_for_status()
    return response.json() if response.content else None


def environment(info: dict[str, Any], azurite: Azurite, ca_bundle: Path) -> dict[str, str]:
    return {**os.environ, **app_settings(info, azurite, ca_bundle, catalog_for(info))}


def seed(runs: int, targets: int, tables: list[str], kind: str) -> dict[str, int]:
    """Starts the runs in the emulator through the app's own client, then records them in each table."""
    from shared.config.settings import Settings
    from shared.context import AppContext
    from shared.kinds.datafactory import DATAFACTORY
    from shared.kinds.fabric import FABRIC
    from shared.kinds.machinelearning import MACHINE_LEARNING, job_name
    from shared.kinds.pipelines import StartOptions
    from shared.runs.model import Run, RunStatus, new_run_id, utcnow

    context = AppContext(Settings())
    names = [t.name for t in context.catalog.targets]
    rng = random.Random(7)
    plan = [(names[i % len(names)], rng.choices(list(SHARES), weights=list(SHARES.values()))[0]) for i in range(runs)]
    if kind == "fabric":  # one workspace: each run goes to a pipeline that goes as its share says
        pipelines = [rule.match for rule in FABRIC.rules(context.catalog.get(names[0]))]
        plan = [(target, rng.choice([p for p in pipelines if p.startswith(share)])) for target, share in plan]

    def submit(target: str, pipeline: str, run_id: str) -> str:
        entry = context.catalog.get(target)
        if kind == "machinelearning":
            ml, _ = MACHINE_LEARNING.clients(context, entry)
            (template,) = (t for t in MACHINE_LEARNING.rules(entry) if t.match == pipeline)
            job, _ = ml.create_job(job_name(run_id), template.job(run_id, template.resolve({})))
            return job.name
        if kind == "fabric":
            item = FABRIC.item(context, entry, pipeline)
            return FABRIC.client(context, entry).run_on_demand_item_job(item.id, {}).run_id
        return DATAFACTORY.client(context, entry).create_run(pipeline, {}, StartOptions()).run_id

    def options(target: str, pipeline: str) -> dict[str, str]:
        if kind == "machinelearning":
            return {"jobType": "Command"}
        if kind == "fabric":
            return {"itemId": FABRIC.item(context, context.catalog.get(target), pipeline).id}
        return {}

    def create(item: tuple[str, str]) -> Run:
        target, pipeline = item
        run_id = new_run_id(target)
        upstream = submit(target, pipeline, run_id)
        now = utcnow() - timedelta(seconds=5)
        return Run(
            id=run_id,
            target=target,
            kind=kind,
            pipeline=pipeline,
            status=RunStatus.IN_PROGRESS,
            upstream_status=RunStatus.IN_PROGRESS,
            created_at=now,
            updated_at=now,
            run_start=now,
            upstream_run_id=upstream,
            options=options(target, pipeline),
            correlation_id="bench",
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        records = list(pool.map(create, plan))
    for table in tables:
        registry = AppContext(Settings({**os.environ, "GATEWAY_RUNS_TABLE": table})).registry
        registry.import_runs(records)
    return {share: sum(1 for _, p in plan if p.startswith(share)) for share in SHARES}


def tick(role: str) -> dict[str, Any]:
    """One tick in this process (a child of the benchmark); prints its figures as JSON."""
    from shared.config.settings import Settings
    from shared.context import AppContext
    from shared.kinds.base import Observation
    from shared.poller.poller import Poller

    class PerRunPoller(Poller):
        """The common approach: no bulk answer, one GET per run in flight."""

        def _sources(self, target: Any, runs: list[Any]) -> list[tuple[Any, Any, list[Any]]]:
            sources = super()._sources(target, runs)
            for _, source, _ in sources:
                source.observe = lambda runs, now: Observation()  # type: ignore[method-assign]
            return sources

    context = AppContext(Settings())
    poller = (PerRunPoller if role == "naive" else Poller)(context)
    context.registry  # noqa: B018 - connect before the clock starts
    context.alerts  # noqa: B018
    started = time.perf_counter()
    report = poller.tick(budget_seconds=3600)
    seconds = time.perf_counter() - started
    return {
        "tick_s": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "updated": sum(t.updated for t in report.targets),
        "alerts": sum(t.alerts for t in report.targets),
        "single_gets": sum(t.single_gets for t in report.targets),
        "errors": [t.error for t in report.targets if t.error],
    }


def measure(role: str, env: dict[str, str], table: str, queue: str, info: dict[str, Any], kind: str) -> dict[str, Any]:
    admin(info, "POST", "counters/reset")
    output = subprocess.run(
        [sys.executable, "-m", "bench.poller", "--role", role],
        check=True,
        capture_output=True,
        text=True,
        env={**env, "GATEWAY_RUNS_TABLE": table, "GATEWAY_ALERT_QUEUE": queue},
    )
    figures: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    counters = admin(info, "GET", "counters")
    figures["calls"] = sum(v for k, v in counters.items() if not k.startswith("ManagedIdentity_"))
    figures["status_calls"] = sum(counters.get(route, 0) for route in STATUS_ROUTES[kind])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--kind", choices=sorted(STATUS_ROUTES), default="datafactory")
    parser.add_argument("--role", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        print(json.dumps(tick(args.role)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-poller-") as directory:
        workdir = Path(directory)
        tls = ensure_tls_files(workdir / "tls")
        emulator, info = start_emulator(workdir, args.targets, args.kind)
        try:
            with Azurite(workdir / "azurite", tls) as azurite:
                env = environment(info, azurite, tls.ca_bundle)
                os.environ.update(env)
                unit = "pipelines of one workspace" if args.kind == "fabric" else "targets"
                print(f"Seeding {args.runs} {args.kind} runs across {args.targets} {unit} ...", flush=True)
                started = time.perf_counter()
                mix = seed(args.runs, args.targets, ["benchours", "benchnaive"], args.kind)
                print(f"  seeded in {time.perf_counter() - started:.1f}s: {mix}", flush=True)
                # A first tick brings both registries to the steady state (every run seen once) ...
                for role, table in (("ours", "benchours"), ("naive", "benchnaive")):
                    measure(role, env, table, f"bench-{role}", info, args.kind)
                # ... then a quarter of the runs end before the measured tick.
                admin(info, "POST", "clock/advance", {"seconds": FINISH_S + 60})
                ours = measure("ours", env, "benchours", "bench-ours", info, args.kind)
                naive = measure("naive", env, "benchnaive", "bench-naive", info, args.kind)
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
    print(f"{'':<22}{'bulk (ours)':>14}{'per-run GET':>14}{'ratio':>10}")
    for label, key in (
        ("upstream calls", "calls"),
        ("status calls", "status_calls"),
        ("tick wall time s", "tick_s"),
        ("peak RSS MB", "peak_rss_mb"),
    ):
        ratio = naive[key] / ours[key] if ours[key] else float("inf")
        print(f"{label:<22}{ours[key]:>14}{naive[key]:>14}{ratio:>9.1f}x")
    print(f"{'runs updated':<22}{ours['updated']:>14}{naive['updated']:>14}")
    print(f"{'alerts':<22}{ours['alerts']:>14}{naive['alerts']:>14}")
    result = {
        "kind": args.kind,
        "runs": args.runs,
        "targets": args.targets,
        "calls": ours["calls"],
        "naive_calls": naive["calls"],
        "calls_per_1000_runs": round(ours["calls"] * 1000 / args.runs, 1),
        "tick_s": ours["tick_s"],
        "naive_tick_s": naive["tick_s"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "naive_peak_rss_mb": naive["peak_rss_mb"],
        "call_ratio": round(naive["calls"] / max(1, ours["calls"]), 1),
        "errors": ours["errors"] + naive["errors"],
    }
    print(json.dumps(result))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
