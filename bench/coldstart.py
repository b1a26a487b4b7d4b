"""Benchmark: cold-start import time of the app against the floor of its unavoidable imports.

Each measurement is a fresh interpreter importing either ``function_app`` (what the Functions worker
does on a cold start) or the floor (``azure.functions``, ``azure.identity`` and ``requests`` alone);
the two alternate so machine noise hits both alike, and medians are compared.

    python -m bench.coldstart [--repeat 15]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "import function_app"
# What the first HTTP request adds: the handlers, the catalog, the kinds and the views load then.
FIRST_REQUEST = "import function_app, shared.api.handlers"
FLOOR = "import azure.functions, azure.identity, requests"
GOAL_RATIO = 1.3  # the app may add at most 30 % to what its dependencies cost anyway
TIMER = "import time; start = time.perf_counter(); {statement}; print((time.perf_counter() - start) * 1000)"


def measure(statement: str) -> float:
    output = subprocess.run(
        [sys.executable, "-c", TIMER.format(statement=statement)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONDONTWRITEBYTECODE": "", "PATH": ""},
    )
    return float(output.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    measure(APP), measure(FLOOR), measure(FIRST_REQUEST)  # warm the file cache and the bytecode cache
    app, floor, first = [], [], []
    for _ in range(args.repeat):
        app.append(measure(APP))
        floor.append(measure(FLOOR))
        first.append(measure(FIRST_REQUEST))
    app_ms, floor_ms, first_ms = statistics.median(app), statistics.median(floor), statistics.median(first)
    print(f"import function_app   median {app_ms:7.1f} ms  (min {min(app):.1f})")
    print(f"floor (functions, identity, requests) median {floor_ms:7.1f} ms  (min {min(floor):.1f})")
    print(f"function_app + the HTTP handlers (first request) median {first_ms:7.1f} ms  (min {min(first):.1f})")
    print(
        json.dumps(
            {
                "import_ms": round(app_ms, 1),
                "floor_ms": round(floor_ms, 1),
                "ratio": round(app_ms / floor_ms, 2),
                "with_handlers_ms": round(first_ms, 1),
                "with_handlers_ratio": round(first_ms / floor_ms, 2),
                "repeat": args.repeat,
                "goal": GOAL_RATIO,
                "goal_met": app_ms / floor_ms <= GOAL_RATIO,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
