"""A minimal caller of Pipeline Gateway: start a pipeline run, wait for it to end, exit as it ended.

    python examples/caller.py TARGET PIPELINE --parameters '{"date": "2026-11-21"}' --idempotency-key erp-close-42

Reads GATEWAY_API (the API's base URL) and GATEWAY_KEY (your API Management subscription key), and
GATEWAY_KEY_HEADER (default Ocp-Apim-Subscription-Key; x-functions-key against the app itself, as with
`make run`'s $API and $KEY). Exit 0 when the run succeeded, 1 when it failed, was cancelled or could not
be confirmed, 2 when the gateway refused the request. Only `requests` is needed.

The Idempotency-Key should come from the caller's own job (its run id): a retried job then gets back
the run it started instead of starting another.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import requests

ENDED = {"Succeeded", "Failed", "Cancelled", "Rejected", "Unknown"}
RETRIED = {429, 500, 502, 503, 504}  # throttled or unavailable: the same request is safe to send again


def send(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """The answer, after waiting out throttling, outages and lost connections (Retry-After when given)."""
    pause = 2.0
    while True:
        try:
            response = session.request(method, url, timeout=30, **kwargs)
        except requests.ConnectionError as exc:
            print(f"{method} {url}: {exc}; retrying in {pause:g}s", file=sys.stderr)
        else:
            if response.status_code not in RETRIED:
                return response
            after = response.headers.get("Retry-After", "")
            pause = float(after) if after.isdigit() else pause
            print(f"{method} {url}: HTTP {response.status_code}; retrying in {pause:g}s", file=sys.stderr)
        time.sleep(pause)
        pause = min(pause * 2, 60.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start a pipeline run through Pipeline Gateway and wait for it.")
    parser.add_argument("target")
    parser.add_argument("pipeline")
    parser.add_argument("--parameters", default="{}", help="the pipeline parameters, as a JSON object")
    parser.add_argument("--idempotency-key", required=True, help="the same for every retry of this start")
    parser.add_argument("--poll", type=float, default=10.0, help="first pause between reads, in seconds")
    parser.add_argument("--poll-max", type=float, default=120.0, help="longest pause between reads")
    args = parser.parse_args(argv)

    api = os.environ["GATEWAY_API"].rstrip("/")
    session = requests.Session()
    session.headers[os.environ.get("GATEWAY_KEY_HEADER", "Ocp-Apim-Subscription-Key")] = os.environ["GATEWAY_KEY"]

    started = send(
        session,
        "POST",
        f"{api}/targets/{args.target}/pipelines/{args.pipeline}/runs",
        json={"parameters": json.loads(args.parameters)},
        headers={"Idempotency-Key": args.idempotency_key},
    )
    if not started.ok:
        print(f"The gateway refused the start (HTTP {started.status_code}): {started.text}", file=sys.stderr)
        return 2
    run = started.json()
    replayed = " (replayed: this key started it before)" if started.headers.get("Idempotent-Replayed") else ""
    print(f"Run {run['id']} of {args.target}/{args.pipeline}{replayed}", flush=True)

    pause, seen = args.poll, ""
    while True:
        answer = send(session, "GET", f"{api}/runs/{run['id']}")
        if not answer.ok:
            print(f"Reading run {run['id']} failed (HTTP {answer.status_code}): {answer.text}", file=sys.stderr)
            return 2
        run = answer.json()
        if run["status"] != seen:
            seen = run["status"]
            print(f"{time.strftime('%H:%M:%S', time.gmtime())} {run['id']} {seen}", flush=True)
        if seen in ENDED:
            break
        time.sleep(pause)
        pause = min(pause * 2, args.poll_max)

    if seen != "Succeeded":
        print(f"Run {run['id']} ended {seen}: {run.get('message', '')}", file=sys.stderr)
        return 1
    print(f"Run {run['id']} succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
