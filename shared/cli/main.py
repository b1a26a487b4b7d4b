"""The ``pipeline-gateway`` commands: alerts, alert, ack, runs, run, cancel, rerun, targets, summary.

Every command reads the app's own stores through ``AppContext``, and acts through the same service
the HTTP API uses (cancel, rerun), so the CLI can never do what the API would refuse. Errors end
with a one-line message and an exit code from ``shared.cli.exits``, never a traceback (``--debug``
shows it).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shared.cli import exits
from shared.cli.inbox import Entry, Inbox, Waiting
from shared.cli.output import Output
from shared.cli.session import Session, apply_configuration, parse_overrides, settings_file_values
from shared.errors import GatewayError
from shared.runs.model import RetryState, Run, RunStatus, iso_time, utcnow

if TYPE_CHECKING:
    from shared.api.views import RunView

F = TypeVar("F", bound=Callable[..., Any])

MAX_PAGES = 20  # per target, when gathering recent runs
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in exits.TABLE) + "."


class State:
    """What the group's options set up for the command that runs."""

    def __init__(self, session: Session, output: Output) -> None:
        self.session = session
        self.out = output


def _state() -> State:
    state = click.get_current_context().find_object(State)
    assert state is not None  # the group always sets it
    return state


def json_option(help_text: str = "Print JSON for scripts instead of a table.") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=EPILOG,
)
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PIPELINE_GATEWAY_SETTINGS",
    help="A local.settings.json whose Values apply over the environment (env: PIPELINE_GATEWAY_SETTINGS).",
)
@click.option(
    "--storage-account",
    metavar="NAME",
    help="The gateway's storage account: sets GATEWAY_STORAGE__tableServiceUri and __queueServiceUri.",
)
@click.option(
    "--client-id",
    metavar="ID",
    help="Client id of a managed identity to use (AZURE_CLIENT_ID); --client-id '' uses your 'az login'.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any app setting, e.g. --set GATEWAY_RUNS_TABLE=gatewayruns (repeatable).",
)
@click.option("--color/--no-color", default=None, help="Colour; default: only on a terminal (NO_COLOR honoured).")
@click.option("--debug", is_flag=True, help="Show the Azure SDKs' warnings and tracebacks.")
@click.version_option(package_name="pipeline-gateway", prog_name="pipeline-gateway")
@click.pass_context
def cli(
    ctx: click.Context,
    settings_file: Path | None,
    storage_account: str | None,
    client_id: str | None,
    overrides: tuple[str, ...],
    color: bool | None,
    debug: bool,
) -> None:
    """On-call view of Pipeline Gateway: failure alerts, runs and targets.

    Uses the app's configuration (environment, --settings local.settings.json, or flags) and its
    identity rules: AZURE_CLIENT_ID set means that managed identity, unset means DefaultAzureCredential
    (your 'az login').
    """
    logging.basicConfig(level=logging.WARNING if debug else logging.CRITICAL, stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING if debug else logging.CRITICAL)
    try:
        named = parse_overrides(overrides)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    if storage_account:
        named.setdefault("GATEWAY_STORAGE__tableServiceUri", f"https://{storage_account}.table.core.windows.net")
        named.setdefault("GATEWAY_STORAGE__queueServiceUri", f"https://{storage_account}.queue.core.windows.net")
    if client_id is not None:
        named["AZURE_CLIENT_ID"] = client_id
    settings = apply_configuration(settings_file_values(settings_file) if settings_file else {}, named)
    ctx.obj = State(Session(settings), Output(color))


# --- alerts ----------------------------------------------------------------------------------


@cli.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="At most this many.")
@click.option("--all", "include_acknowledged", is_flag=True, help="Include acknowledged alerts from the history.")
@click.option("--follow", "-f", is_flag=True, help="Keep watching and print new alerts as they arrive (Ctrl+C ends).")
@click.option(
    "--interval", type=click.FloatRange(0.2, 3600), default=10.0, show_default=True, help="Seconds between looks."
)
@json_option("Print the raw alert messages as JSON (one per line with --follow).")
@click.option("--ids", "ids_only", is_flag=True, help="Print only the alert ids, one per line, for scripts.")
def alerts(limit: int, include_acknowledged: bool, follow: bool, interval: float, as_json: bool, ids_only: bool) -> int:
    """Failure alerts waiting for on-call, newest first.

    Read-only: nothing is taken off a queue. Without forwarding they wait on the alert queue; with
    GATEWAY_FORWARD_URL set the forwarder takes them off the queue, so they come from the
    forwarded-alerts history in the registry. Alerts the webhook kept refusing wait on the poison
    queue and show as 'undelivered'.
    """
    state = _state()
    inbox = Inbox(state.session.context)
    with state.out.progress("Reading alerts…"):
        entries = inbox.waiting(limit=limit, include_acknowledged=include_acknowledged)
    if as_json and not follow:
        state.out.json([entry.alert.queue_message() for entry in entries])
        return exits.OK
    if ids_only and not follow:
        state.out.lines(entry.alert_id for entry in entries)
        return exits.OK
    if as_json:
        for entry in reversed(entries):
            state.out.json(entry.alert.queue_message(), lines=True)
    elif ids_only:
        state.out.lines(entry.alert_id for entry in reversed(entries))
    else:
        _alerts_summary(state, inbox, entries)
    if not follow:
        return exits.OK
    from shared.cli.render import alert_line

    seen = {entry.alert_id for entry in entries}
    state.out.note(f"Watching for new alerts every {interval:g}s (Ctrl+C to stop)…")
    try:
        while True:
            time.sleep(interval)
            try:
                latest = inbox.waiting(limit=limit, include_acknowledged=False)
            except GatewayError as exc:  # a watch outlives a Storage hiccup; it says so and looks again
                state.out.problem(f"{exc.detail} (still watching)")
                continue
            fresh = [entry for entry in latest if entry.alert_id not in seen]
            for entry in reversed(fresh):
                seen.add(entry.alert_id)
                if as_json:
                    state.out.json(entry.alert.queue_message(), lines=True)
                elif ids_only:
                    state.out.lines([entry.alert_id])
                else:
                    state.out.show(alert_line(entry))
    except KeyboardInterrupt:
        return exits.OK


def _alerts_summary(state: State, inbox: Inbox, entries: list[Entry]) -> None:
    from shared.cli.render import alerts_table

    source = "the forwarded-alerts history (forwarding is on)" if inbox.forwarding else f"queue {inbox.queue_name}"
    if not entries:
        state.out.note(f"No alerts waiting on {source}.")
        return
    show_state = inbox.forwarding or any(entry.state != Waiting.QUEUED for entry in entries)
    state.out.show(alerts_table(entries, show_state=show_state))
    state.out.note(f"{len(entries)} alert(s) from {source}. 'pipeline-gateway alert ID' shows one; 'ack ID' clears it.")


@cli.command()
@click.argument("alert_id", metavar="ID")
@json_option("Print the raw alert message as JSON.")
def alert(alert_id: str, as_json: bool) -> int:
    """One alert in full, with the pipeline's runs.

    Failed activities and their messages, the Spark driver log tail, the Studio link, and the
    pipeline's runs around it from the registry. ID is the alert id, or any part of it that only one alert has.
    """
    from shared.cli.render import alert_detail

    state = _state()
    context = state.session.context
    with state.out.progress("Looking up the alert…"):
        entry = Inbox(context).find(alert_id)
        if as_json:
            state.out.json(entry.alert.queue_message())
            return exits.OK
        runs, _ = context.registry.list_runs(target=entry.alert.target, pipeline=entry.alert.pipeline, limit=8)
    state.out.show(alert_detail(entry, sorted(runs, key=lambda r: r.created_at, reverse=True)))
    return exits.OK


@cli.command()
@click.argument("alert_id", metavar="ID")
def ack(alert_id: str) -> int:
    """Acknowledge a handled alert, for everyone.

    Removes the alert and any repeat of it from the alert queue (and its poison queue) and records
    who acknowledged it, and when, in the alert history of the registry. ID is the alert id, or any
    part of it that only one alert has. Acknowledging twice is harmless.
    """
    state = _state()
    with state.out.progress("Acknowledging…"):
        done = Inbox(state.session.context).acknowledge(alert_id, by=state.session.operator())
    record = done.record
    from shared.cli.render import when

    if done.already:
        state.out.show(
            f"Alert {record.alert_id} was already acknowledged by {record.acknowledged_by} at "
            f"{when(record.acknowledged_at)} UTC."
        )
        return exits.OK
    removed = ", ".join(f"{count} from {name}" for name, count in done.removed.items()) or "none on the queues"
    state.out.show(
        f"Acknowledged {record.alert_id} as {record.acknowledged_by} at {when(record.acknowledged_at)} UTC "
        f"(messages removed: {removed})."
    )
    return exits.OK


# --- runs ------------------------------------------------------------------------------------


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``90m``, ``2h``, ``3d``, ``1w`` ago, or an ISO 8601 date or time (UTC unless it says otherwise)."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use a duration such as 90m, 2h, 3d, or an ISO date such as 2026-11-21") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _status(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """Statuses are matched without regard to case, as people type them."""
    if value is None:
        return None
    for known in RunStatus.ALL:
        if known.lower() == value.lower():
            return known
    raise click.BadParameter(f"one of {', '.join(RunStatus.ALL)}")


def recent_runs(
    session: Session,
    *,
    target: str | None,
    pipeline: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[Run]:
    """The newest runs first, of every product (on-call is an operator); across targets, each target's
    newest are merged. The registry lists each target newest first, so per target the pages are
    followed until ``limit`` runs are in hand."""
    context = session.context
    registry = context.registry
    names = [target] if target else [t.name for t in context.catalog.targets]
    if target:
        context.catalog.get(target)  # an unknown target is an error, not an empty list

    def gather(name: str) -> list[Run]:
        found: list[Run] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            page, token = registry.list_runs(
                target=name, pipeline=pipeline, status=status, since=since, limit=limit, continuation=token
            )
            found.extend(page)
            if token is None or len(found) >= limit:
                break
        return found

    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = [run for chunk in pool.map(gather, names) for run in chunk]
    return sorted(runs, key=lambda run: run.created_at, reverse=True)[:limit]


@cli.command()
@click.option("--target", "-t", metavar="NAME", help="Only this target.")
@click.option("--pipeline", "-p", metavar="NAME", help="Only this pipeline (or Spark batch name).")
@click.option("--status", "-s", callback=_status, metavar="STATUS", help="Only this status, e.g. Failed.")
@click.option("--since", metavar="WHEN", help="Created since: 90m, 2h, 3d, 1w, or an ISO date or time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="At most this many.")
@json_option("Print the runs as the API shows them (JSON).")
@click.option("--ids", "ids_only", is_flag=True, help="Print only the run ids, one per line, for scripts.")
def runs(
    target: str | None,
    pipeline: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
    ids_only: bool,
) -> int:
    """Recent runs, newest first, with filters."""
    from shared.cli.render import runs_table

    state = _state()
    started_after = parse_since(since)
    with state.out.progress("Reading runs…"):
        found = recent_runs(
            state.session, target=target, pipeline=pipeline, status=status, since=started_after, limit=limit
        )
    if as_json:
        state.out.json([_run_view(state.session, run).json_view() for run in found])
    elif ids_only:
        state.out.lines(run.id for run in found)
    elif found:
        state.out.show(runs_table(found))
    else:
        state.out.note("No runs match.")
    return exits.OK


def _run_view(session: Session, run: Run) -> RunView:
    """The run as the API shows it; with no public URL configured there is no ``self`` link to give."""
    from shared.api.views import run_view

    settings = session.settings
    return run_view(run, catalog=session.context.catalog, settings=settings, base_url=settings.public_base_url)


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Wait for the run to end, printing each change; exit as it ended.")
@click.option(
    "--interval", type=click.FloatRange(0.2, 3600), default=10.0, show_default=True, help="Seconds between looks."
)
@json_option("Print the run, its rerun chain and its alerts as JSON (with --follow: each change, one per line).")
def run(run_id: str, follow: bool, interval: float, as_json: bool) -> int:
    """One run: details, rerun chain, alerts, the pipeline's runs.

    With --follow, wait until it ends and the poller is done with it (its alert sent), printing each
    change of status, and exit as it ended: 0 succeeded, 8 failed (or refused), 9 cancelled, 10 unknown;
    scripts can wait on a run as on a process.
    """
    if follow:
        return _follow(run_id, interval, as_json)
    from shared.api.views import with_chain
    from shared.cli.render import run_detail
    from shared.runs.service import Caller, RunService

    state = _state()
    context = state.session.context
    with state.out.progress("Reading the run…"):
        found = context.registry.get(run_id)
        chain = RunService(context).chain(
            found, Caller(subscription=None, product=None, correlation_id="", operator=True)
        )
        records = context.alert_history.for_run(found.id)
        if found.chain_root != found.id:  # a retry chain's failure is alerted under its first run
            records += context.alert_history.for_run(found.chain_root)
        recent, _ = context.registry.list_runs(target=found.target, pipeline=found.pipeline, limit=8)
    view = with_chain(_run_view(state.session, found), chain)
    if as_json:
        state.out.json(
            {
                **view.json_view(),
                "alerts": [
                    {
                        "alertId": record.alert_id,
                        "forwardedAt": iso_time(record.forwarded_at),
                        "forwardedTo": record.forwarded_to,
                        "acknowledgedAt": iso_time(record.acknowledged_at),
                        "acknowledgedBy": record.acknowledged_by,
                    }
                    for record in records
                ],
            }
        )
        return exits.OK
    state.out.show(run_detail(view, chain, records, sorted(recent, key=lambda r: r.created_at, reverse=True)))
    return exits.OK


def _follow(run_id: str, interval: float, as_json: bool) -> int:
    """Reads the run until it ends (the poller records how), printing it whenever its status changes.

    An ended run whose alert is still to be sent stays among the live records; the wait lasts until it
    leaves them, so a script that reads the alert next finds it. So does a failed run whose automatic
    retry is due; once retried, the wait goes on with the retry, and the chain's end is the exit code.
    """
    state = _state()
    registry = state.session.context.registry
    seen: str | None = None
    try:
        while True:
            try:
                current = registry.get(run_id)
            except GatewayError as exc:
                if exc.status == 404:
                    raise
                state.out.problem(f"{exc.detail} (still following)")  # a Storage hiccup does not end a wait
                time.sleep(interval)
                continue
            if current.status != seen:
                seen = current.status
                if as_json:
                    state.out.json(_run_view(state.session, current).json_view(), lines=True)
                else:
                    message = f": {current.message}" if current.message and current.terminal else ""
                    state.out.show(f"{iso_time(utcnow())} {current.id} {current.status}{message}")
            if current.retry_state == RetryState.RETRIED and current.rerun_by:
                if not as_json:
                    state.out.show(f"{iso_time(utcnow())} {current.id} retried as {current.rerun_by}")
                run_id, seen = current.rerun_by, None
                continue
            if current.terminal and not registry.is_live(current):
                return exits.for_run(current.status)
            time.sleep(interval)
    except KeyboardInterrupt:
        return exits.INTERRUPTED


def _caller(session: Session, run: Run) -> Any:
    """The CLI acts as an operator (on-call may act on any run) for the run's own product, named in the
    audit trail."""
    from shared.runs.service import Caller

    return Caller(
        subscription=f"cli:{session.operator()}",
        product=run.product,
        correlation_id=str(uuid.uuid4()),
        operator=True,
    )


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("--recursive", is_flag=True, help="Also cancel the runs this pipeline started (ADF, Synapse).")
@json_option("Print the run as JSON.")
def cancel(run_id: str, recursive: bool, as_json: bool) -> int:
    """Cancel a run in flight (twice is harmless).

    Azure is asked to cancel; the poller records Cancelled on its next tick. Acts for the run's own
    API product; the audit trail names you (cancelRequestedBy cli:...).
    """
    from shared.runs.service import RunService

    state = _state()
    context = state.session.context
    with state.out.progress("Cancelling…"):
        found = context.registry.get(run_id)
        cancelled = RunService(context).cancel(found.id, recursive=recursive, caller=_caller(state.session, found))
    if as_json:
        state.out.json(_run_view(state.session, cancelled).json_view())
    else:
        state.out.show(f"Run {cancelled.id} is {cancelled.status}; the poller records the end on its next tick.")
    return exits.OK


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("--from-failure", is_flag=True, help="Start from the failed activity (ADF only).")
@click.option("--from-activity", metavar="NAME", help="Start from this activity.")
@click.option("--idempotency-key", metavar="KEY", help="Makes a retried rerun return the same run.")
@json_option("Print the new run as JSON.")
def rerun(
    run_id: str, from_failure: bool, from_activity: str | None, idempotency_key: str | None, as_json: bool
) -> int:
    """Rerun an ended run, linked to it.

    An Azure recovery rerun of the pipeline (all of it, from the failed activity, or from a named
    one), or the same Spark batch again. The new run's rerunOf and the old one's rerunBy link them.
    """
    from shared.api.requests import RerunRequest, parse_body
    from shared.runs.service import RunService

    state = _state()
    context = state.session.context
    body: dict[str, Any] = {}
    if from_failure:
        body["startFromFailure"] = True
    if from_activity:
        body["startActivityName"] = from_activity
    request = parse_body(RerunRequest, body)
    with state.out.progress("Starting the rerun…"):
        found = context.registry.get(run_id)
        result = RunService(context).rerun(found.id, request, _caller(state.session, found), idempotency_key)
    new = result.run
    if as_json:
        state.out.json(_run_view(state.session, new).json_view())
    else:
        again = " (replayed: this key already started it)" if result.replayed else ""
        state.out.show(f"Rerun of {found.id} started as {new.id}: {new.status}{again}.")
    return exits.OK


# --- targets ---------------------------------------------------------------------------------


@cli.command()
@click.option("--check/--no-check", default=True, show_default=True, help="Run the diagnostics check per target.")
@json_option("Print the catalog and the diagnostics as JSON (what GET /api/targets/{target} returns).")
def targets(check: bool, as_json: bool) -> int:
    """The catalog's targets and their diagnostics check.

    The check makes the app's own read-only calls per target (management plane, pipeline runs, Spark
    pools, private endpoints and DNS) with its identity; each check is ok, a warning or an error, a
    refused one names the missing role, and each target gets a summary line. Exit 7 when any check is a
    warning or an error.
    """
    from shared.api.views import target_view
    from shared.cli.render import failed_checks, needs_action, targets_table

    state = _state()
    context = state.session.context
    catalog = context.catalog
    reports: dict[str, dict[str, Any]] | None = None
    if check:
        from shared.api.diagnostics import diagnose

        with state.out.progress(f"Checking {len(catalog.targets)} target(s)…"), ThreadPoolExecutor(8) as pool:
            found = list(
                pool.map(lambda target: diagnose(context, target, operator=True)[0].json_view(), catalog.targets)
            )
        reports = {target.name: report for target, report in zip(catalog.targets, found, strict=True)}
    if as_json:
        state.out.json(
            {
                "value": list(reports.values())
                if reports
                else [target_view(t, None, operator=True).json_view() for t in catalog.targets]
            }
        )
    else:
        state.out.show(targets_table(catalog.targets, reports))
        if reports and any(needs_action(report) for report in reports.values()):
            state.out.show(failed_checks(reports))
    attention = reports is not None and any(needs_action(report) for report in reports.values())
    return exits.UNHEALTHY if attention else exits.OK


# --- summary ---------------------------------------------------------------------------------


@cli.command()
@click.option("--since", metavar="WHEN", default="24h", show_default=True, help="The shift: 8h, 24h, 3d, or ISO.")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True, help="Rows in the top-N lists.")
@json_option("Print the summary as JSON.")
def summary(since: str, top: int, as_json: bool) -> int:
    """The hand-over view of a shift.

    Per target and pipeline (or Spark pool): runs, failures, success rate, p50/p95 duration. Then the
    longest-running live runs, the activities that failed most (from the alerts), the alerts waiting,
    undelivered and acknowledged, and a chart of failures per hour.
    """
    from shared.cli.render import summary_view
    from shared.cli.summary import shift_summary

    state = _state()
    until = utcnow()
    start = parse_since(since, until)
    assert start is not None  # the option has a default
    with state.out.progress("Reading the shift…"):
        found = shift_summary(state.session.context, since=start, until=until, top=top)
    if as_json:
        state.out.json(found.json_view())
    else:
        state.out.show(summary_view(found))
    return exits.OK


# --- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    output = Output(False if "--no-color" in args else None)
    try:
        result = cli.main(args=args, prog_name="pipeline-gateway", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exits.USAGE if isinstance(exc, click.UsageError) else exits.FAILED
    except (click.Abort, KeyboardInterrupt):
        output.note("Interrupted.")
        return exits.INTERRUPTED
    except GatewayError as exc:
        output.problem(exc.detail)
        return exits.for_error(exc)
    except Exception as exc:  # noqa: BLE001  # the last resort: one line, not a traceback
        if "--debug" in args:
            traceback.print_exc()
        output.problem(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return exits.FAILED
    return result if isinstance(result, int) else exits.OK
