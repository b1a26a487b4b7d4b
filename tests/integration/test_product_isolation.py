"""Each API product sees and steers only its own runs and the targets its rules name; operator products
see and steer everything; calls without a product are a tenant of their own. Also: recovery references
must name the caller's own upstream run, target checks are cached, listings page exactly, old runs are
deleted, and links never trust a Host header.

The catalog is the one the issue was found with: ``daily_load`` for erp, ``copy_*`` for finance,
``ingest_*`` for both, ``long_running`` for anyone, and a target (the Synapse workspace) for admin only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offline.localhost import LocalHost
from offline.stack import ROOT, OfflineStack, catalog_for
from shared.context import AppContext, set_app_context
from shared.kinds.datafactory import DATAFACTORY
from shared.poller.poller import Poller
from shared.runs.idempotency import PARTITION as KEYS
from shared.runs.idempotency import TTL
from shared.runs.model import Run, RunStatus, new_run_id, utcnow
from shared.runs.registry import OWNER
from tests.conftest import body_of, call, http_request, install, start

OPERATOR = "platform"
ERP = {"x-apim-subscription-id": "sub-erp-1", "x-apim-product-id": "erp"}
FINANCE = {"x-apim-subscription-id": "sub-finance-1", "x-apim-product-id": "finance"}
NOBODY = {"x-apim-subscription-id": "sub-nobody-1", "x-apim-product-id": "nobody"}
PLATFORM = {"x-apim-subscription-id": "sub-platform-1", "x-apim-product-id": OPERATOR}
DIRECT: dict[str, str] = {}  # the function key used directly: no product


def as_product(product: str | None) -> dict[str, str]:
    return {"x-apim-subscription-id": f"sub-{product}", "x-apim-product-id": product} if product else {}


def catalog(stack: OfflineStack) -> dict[str, Any]:
    document = catalog_for(stack.emulator.info)
    adf, synapse = document["targets"][:2]  # the factory and the Synapse workspace; other kinds' targets left out
    adf["pipelines"] = [
        {"match": "daily_load", "products": ["erp"]},
        {"match": "copy_*", "products": ["finance"]},
        {"match": "ingest_*", "products": ["erp", "finance"]},
        "long_running",
    ]
    synapse["pipelines"] = [{"match": "*", "products": ["admin"]}]
    synapse["sparkPools"] = [{"match": "*", "products": ["admin"]}]
    return {**document, "targets": [adf, synapse], "operatorProducts": [OPERATOR]}


@pytest.fixture
def app(stack: OfflineStack, names: dict[str, str]) -> Iterator[AppContext]:
    stack.emulator.faults.clear()
    yield install(stack, names, catalog(stack))
    set_app_context(None)


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    document: dict[str, Any] = body_of(response)
    assert document["type"].endswith("/" + slug), document
    return document


def get(path: str, headers: dict[str, str], params: dict[str, str] | None = None, **route: str) -> Any:
    function = {"runs": "list_runs", "targets": "list_targets"}.get(path)
    if function is None:
        function = "get_run" if path.startswith("runs/") else "get_target"
    return call(function, http_request("GET", path, None, headers, route_params=route, params=params))


def post(function: str, run_id: str, headers: dict[str, str], body: Any = None) -> Any:
    path = f"runs/{run_id}/{'cancel' if function == 'cancel_run' else 'rerun'}"
    return call(function, http_request("POST", path, body or {}, headers, route_params={"id": run_id}))


def started(target: str, pipeline: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = start(target, pipeline, body, headers)
    assert response.status_code == 202, response.get_body()
    run: dict[str, Any] = body_of(response)
    return run


def recorded(context: AppContext, target: str, product: str | None, status: str, **fields: Any) -> Run:
    """A run written straight into the registry (past when it has ended), as if started and polled."""
    now = utcnow()
    run = Run(
        id=new_run_id(target),
        target=target,
        kind=fields.pop("kind", "datafactory"),
        pipeline=fields.pop("pipeline", "long_running"),
        status=status,
        created_at=fields.pop("created_at", now),
        updated_at=now,
        product=product,
        upstream_run_id=str(uuid.uuid4()),
        **fields,
    )
    context.registry.import_runs([run])
    return context.registry.get(run.id)


def listed(headers: dict[str, str], **params: str) -> list[str]:
    """Every run id of a listing, following nextLink."""
    ids: list[str] = []
    query = dict(params)
    for _ in range(100):
        page = body_of(get("runs", headers, query))
        ids += [run["id"] for run in page["value"]]
        if not page.get("nextLink"):
            return ids
        query = dict(parse_qsl(urlsplit(page["nextLink"]).query))
    raise AssertionError("the listing never ended")


# --- 1. Runs belong to their product ------------------------------------------------------------------


def test_another_products_run_is_not_found_on_every_route(app: AppContext, adf: str) -> None:
    """finance read erp's run, its parameters (a password among them) and all; now it is not found,
    exactly as a run that does not exist."""
    run = started(adf, "daily_load", ERP, parameters={"dbPassword": "hunter2"})
    missing = f"{adf}.0000000000000aaaaaaaa"
    for headers in (FINANCE, NOBODY, DIRECT):
        for run_id in (run["id"], missing):
            document = problem(get(f"runs/{run_id}", headers, id=run_id), 404, "run-not-found")
            assert "hunter2" not in json.dumps(document)
            assert document["detail"] == f"There is no run {run_id!r}."
            problem(post("cancel_run", run_id, headers), 404, "run-not-found")
            problem(post("rerun", run_id, headers), 404, "run-not-found")
    assert body_of(get(f"runs/{run['id']}", ERP, id=run["id"]))["parameters"] == {"dbPassword": "hunter2"}


def test_authorization_comes_before_any_state_check(app: AppContext, adf: str) -> None:
    """Cancelling another product's ended run said 409 and how it ended; of a Canceling run, 202 and the
    whole run; rerunning a run in flight, 409: each confirmed the run and told its state."""
    ended = recorded(app, adf, "erp", RunStatus.FAILED)
    canceling = recorded(app, adf, "erp", RunStatus.CANCELING)
    going = recorded(app, adf, "erp", RunStatus.IN_PROGRESS)
    for headers in (FINANCE, NOBODY, DIRECT):
        problem(post("cancel_run", ended.id, headers), 404, "run-not-found")
        problem(post("cancel_run", canceling.id, headers), 404, "run-not-found")
        problem(post("rerun", going.id, headers), 404, "run-not-found")
    problem(post("cancel_run", ended.id, ERP), 409, "run-finished")
    assert post("cancel_run", canceling.id, ERP).status_code == 202
    problem(post("rerun", going.id, ERP), 409, "run-in-progress")


def test_another_product_cannot_cancel_or_rerun_a_run(app: AppContext, stack: OfflineStack, adf: str) -> None:
    run = started(adf, "ingest_orders", ERP)
    problem(post("cancel_run", run["id"], FINANCE), 404, "run-not-found")
    assert app.registry.get(run["id"]).status == RunStatus.QUEUED
    stack.emulator.clock.advance(30)
    Poller(app).tick()
    before = len(stack.emulator.runs())
    problem(post("rerun", run["id"], FINANCE), 404, "run-not-found")
    assert app.registry.get(run["id"]).rerun_by is None and len(stack.emulator.runs()) == before


def test_a_listing_holds_only_the_callers_runs_filtered_by_the_query(app: AppContext, adf: str, synapse: str) -> None:
    mine: dict[str | None, set[str]] = {}
    for product in ("erp", "finance", None):
        mine[product] = {
            recorded(app, adf, product, RunStatus.SUCCEEDED).id,
            recorded(app, adf, product, RunStatus.IN_PROGRESS).id,
            recorded(app, synapse, product, RunStatus.FAILED, kind="synapse", pipeline="refresh_lake").id,
        }
    for limit in ("1", "2", "50"):  # across both targets, pages of every size
        assert sorted(listed(ERP, limit=limit)) == sorted(mine["erp"])
        assert sorted(listed(FINANCE, limit=limit)) == sorted(mine["finance"])
        assert sorted(listed(DIRECT, limit=limit)) == sorted(mine[None]), "no product: a tenant of its own"
        assert listed(NOBODY, limit=limit) == []
        assert sorted(listed(PLATFORM, limit=limit)) == sorted(set.union(*mine.values())), "an operator: all"
    assert set(listed(ERP, status="Failed", since="2000-01-01T00:00:00Z", pipeline="refresh_lake", limit="1")) == {
        run for run in mine["erp"] if run.startswith(synapse)
    }
    entity = next(iter(app.registry.table.query_entities("RowKey ge 'live-'", results_per_page=10)))
    assert entity["Tenant"] in ("product:erp", "product:finance", "direct")


def test_a_listing_of_a_target_the_product_cannot_see_is_not_found(app: AppContext, synapse: str) -> None:
    problem(get("runs", ERP, {"target": synapse}), 404, "target-not-found")
    assert body_of(get("runs", as_product("admin"), {"target": synapse}))["value"] == []
    assert body_of(get("runs", PLATFORM, {"target": synapse}))["value"] == []


def test_an_operator_product_sees_and_steers_every_run_which_stays_its_products(
    app: AppContext, stack: OfflineStack, adf: str
) -> None:
    run = started(adf, "long_running", ERP)
    assert get(f"runs/{run['id']}", PLATFORM, id=run["id"]).status_code == 200
    assert body_of(post("cancel_run", run["id"], PLATFORM))["status"] == RunStatus.CANCELING
    stack.emulator.clock.advance(60)
    Poller(app).tick()
    rerun = body_of(post("rerun", run["id"], PLATFORM))
    assert app.registry.get(rerun["id"]).product == "erp", "a rerun belongs to the run's product"
    assert get(f"runs/{rerun['id']}", ERP, id=rerun["id"]).status_code == 200


def test_a_rerun_chain_shows_only_the_callers_runs(app: AppContext, adf: str) -> None:
    """Before, another product could rerun your run: such a chain must not name its runs to you."""
    theirs = recorded(app, adf, "finance", RunStatus.SUCCEEDED)
    mine = recorded(app, adf, "erp", RunStatus.FAILED, rerun_by=theirs.id)
    app.registry.save(replace(theirs, rerun_of=mine.id))
    chain = body_of(get(f"runs/{mine.id}", ERP, id=mine.id))["chain"]
    assert [link["id"] for link in chain] == [mine.id]
    assert [link["id"] for link in body_of(get(f"runs/{mine.id}", PLATFORM, id=mine.id))["chain"]] == [
        mine.id,
        theirs.id,
    ]


# --- 2. Targets ------------------------------------------------------------------------------------------


def test_the_target_list_holds_only_what_the_product_may_use(app: AppContext, adf: str, synapse: str) -> None:
    def targets(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in body_of(get("targets", headers))["value"]}

    erp = targets(ERP)
    assert list(erp) == [adf]
    assert [rule["match"] for rule in erp[adf]["pipelines"]] == ["daily_load", "ingest_*", "long_running"]
    assert [rule["match"] for rule in targets(DIRECT)[adf]["pipelines"]] == ["long_running"]
    admin = targets(as_product("admin"))
    assert admin[synapse]["pipelines"] == [{"match": "*", "maxDurationMinutes": None}]
    assert admin[synapse]["sparkPools"] == [{"match": "*", "maxDurationMinutes": None}]
    everything = targets(PLATFORM)
    assert set(everything) == {adf, synapse} and len(everything[adf]["pipelines"]) == 4


def test_a_target_the_product_may_not_use_is_not_found(app: AppContext, stack: OfflineStack, synapse: str) -> None:
    before = stack.emulator.counters
    for headers in (ERP, FINANCE, DIRECT):
        document = problem(get(f"targets/{synapse}", headers, target=synapse), 404, "target-not-found")
        assert document["detail"] == problem(
            get("targets/nowhere", headers, target="nowhere"), 404, "target-not-found"
        )["detail"].replace("nowhere", synapse)
    assert stack.emulator.counters == before, "nothing was asked of Azure"
    assert get(f"targets/{synapse}", as_product("admin"), target=synapse).status_code == 200
    assert get(f"targets/{synapse}", PLATFORM, target=synapse).status_code == 200


def test_target_checks_are_reused_for_a_minute_and_say_how_old(app: AppContext, stack: OfflineStack, adf: str) -> None:
    """Five requests made 20 Azure calls; now one round of checks serves them all."""
    before = stack.emulator.counters
    first = get(f"targets/{adf}", ERP, target=adf)
    assert first.status_code == 200
    once = stack.emulator.counters
    answers = [get(f"targets/{adf}", headers, target=adf) for headers in (ERP, FINANCE, DIRECT, PLATFORM)]
    assert stack.emulator.counters == once and once != before
    report = body_of(answers[0])
    assert report["checkedAt"] == body_of(first)["checkedAt"] and report["checks"] == body_of(first)["checks"]
    assert 0 <= int(answers[0].headers["Age"]) <= 60
    assert [r["match"] for r in body_of(answers[1])["target"]["pipelines"]] == ["copy_*", "ingest_*", "long_running"]


# --- 4. Recovery references ---------------------------------------------------------------------------


def test_a_recovery_reference_must_name_the_callers_own_run_of_that_pipeline(
    app: AppContext, stack: OfflineStack, adf: str
) -> None:
    """erp recovered finance's run (finance's parameters, in finance's run group) while the gateway
    recorded parameters {}: now only an upstream run the gateway recorded for erp, on the same pipeline."""
    finance = started(adf, "ingest_orders", FINANCE, parameters={"secret": "finance-only"})
    own = started(adf, "ingest_orders", ERP)
    other_pipeline = started(adf, "daily_load", ERP)
    stack.emulator.clock.advance(30)
    Poller(app).tick()
    before = len(stack.emulator.runs())
    for reference in (finance["upstreamRunId"], other_pipeline["upstreamRunId"], str(uuid.uuid4())):
        for recovery in ({"isRecovery": True}, {"startActivityName": "CopyOrdersToLake"}, {}):
            body = {"referencePipelineRunId": reference, **recovery}
            document = problem(start(adf, "ingest_orders", body, ERP), 403, "not-allowed")
            assert reference in document["detail"]
    assert len(stack.emulator.runs()) == before, "nothing reached Azure"
    assert started(adf, "ingest_orders", ERP, referencePipelineRunId=own["upstreamRunId"], isRecovery=True)


# --- 9. Listing and retention ---------------------------------------------------------------------------


def test_next_link_keeps_the_filters_and_the_page_size(app: AppContext, adf: str) -> None:
    """Page 2 of ?status=Succeeded&limit=1 returned 32 runs, Failed ones among them."""
    succeeded = {recorded(app, adf, "erp", RunStatus.SUCCEEDED).id for _ in range(3)}
    for _ in range(3):
        recorded(app, adf, "erp", RunStatus.FAILED)
    first = body_of(get("runs", ERP, {"status": "Succeeded", "limit": "1", "target": adf}))
    query = dict(parse_qsl(urlsplit(first["nextLink"]).query))
    assert query == {"status": "Succeeded", "limit": "1", "target": adf, "continuation": first["continuation"]}
    pages = [first["value"]]
    while query:
        page = body_of(get("runs", ERP, query))
        pages.append(page["value"])
        query = dict(parse_qsl(urlsplit(page["nextLink"]).query)) if page.get("nextLink") else {}
    assert all(len(page) <= 1 for page in pages)
    assert {run["id"] for page in pages for run in page} == succeeded


def test_a_run_that_ends_between_two_pages_is_listed_once(app: AppContext, adf: str) -> None:
    """Its row moves from live- to past- between the pages: it was listed again, from its past row."""
    runs = [recorded(app, adf, "erp", RunStatus.IN_PROGRESS) for _ in range(3)]
    first = body_of(get("runs", ERP, {"limit": "1"}))
    ended = app.registry.get(first["value"][0]["id"])
    app.registry.save(ended.evolve(status=RunStatus.SUCCEEDED))
    assert not app.registry.is_live(app.registry.get(ended.id))
    rest = listed(ERP, limit="1", continuation=first["continuation"])
    assert [first["value"][0]["id"], *rest] == [run.id for run in sorted(runs, key=lambda r: r.id)]


def test_old_runs_are_deleted_in_batches_with_their_index_rows_and_expired_keys(app: AppContext, adf: str) -> None:
    long_ago = utcnow() - app.settings.retention - timedelta(days=1)
    model = recorded(app, adf, "erp", RunStatus.SUCCEEDED)
    old = [
        replace(
            model,
            id=new_run_id(adf, now=long_ago.timestamp() - i),
            created_at=long_ago - timedelta(seconds=i),
            upstream_run_id=str(uuid.uuid4()),
        )
        for i in range(120)
    ]
    app.registry.import_runs(old)
    still_live = recorded(app, adf, "erp", RunStatus.IN_PROGRESS, created_at=long_ago)
    recent = recorded(app, adf, "erp", RunStatus.SUCCEEDED)
    table = app.registry.table
    for run in (*old, model, recent):
        key = DATAFACTORY.ownership_key(run, run.upstream_run_id or "")
        table.create_entity({"PartitionKey": adf, "RowKey": OWNER + key, "RunId": run.id})
    table.create_entity({"PartitionKey": KEYS, "RowKey": "a" * 64, "RunId": "x", "CreatedAt": utcnow() - 2 * TTL})
    table.create_entity({"PartitionKey": KEYS, "RowKey": "b" * 64, "RunId": "y", "CreatedAt": utcnow()})

    swept = Poller(app).sweep()
    assert (swept.runs, swept.keys) == (100, 1), "a bounded batch per tick"
    assert Poller(app).tick().swept.runs == 20

    left = {entity["RowKey"] for entity in table.query_entities(f"PartitionKey eq '{adf}'")}
    kept = (model, recent)
    assert {key for key in left if key.startswith("past-")} == {"past-" + run.id.partition(".")[2] for run in kept}
    assert {key for key in left if key.startswith(OWNER)} == {
        OWNER + DATAFACTORY.ownership_key(run, run.upstream_run_id or "") for run in kept
    }
    assert app.registry.get(still_live.id).status == RunStatus.IN_PROGRESS, "a live run is never deleted"
    assert [e["RowKey"] for e in table.query_entities(f"PartitionKey eq '{KEYS}'")] == ["b" * 64]


# --- 10. Hostile input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["1²", "٣", "1.0", " 5", "-1"])
def test_a_page_size_that_is_not_ascii_digits_is_422(app: AppContext, limit: str) -> None:
    document = problem(get("runs", ERP, {"limit": limit}), 422, "validation")
    assert document["errors"][0]["field"] == "limit"


def test_links_never_carry_a_spoofed_host(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    """Through the local host, which tells the app its address as App Service does (WEBSITE_HOSTNAME)."""
    from function_app import app as function_app

    with LocalHost(function_app, host_json=ROOT / "host.json") as host:
        install(stack, names, catalog_for(stack.emulator.info))
        api = host.api_url
        url = f"{api}/targets/{adf}/pipelines/daily_load/runs"
        key = {"x-functions-key": host.function_key}
        try:
            spoofed = requests.post(url, json={}, headers={**key, "Host": "evil.example"}, timeout=30)
            honest = requests.post(url, json={}, headers=key, timeout=30)
            listing = requests.get(f"{api}/runs", params={"limit": "1"}, headers=key, timeout=30)
        finally:
            set_app_context(None)
    assert spoofed.status_code == 202 and spoofed.headers["Location"].startswith("/api/runs/")
    assert "evil" not in spoofed.text
    assert honest.headers["Location"] == f"{api}/runs/{honest.json()['id']}"
    assert listing.json()["nextLink"].startswith(f"{api}/runs?limit=1&continuation=")


def test_links_use_the_public_url_when_it_is_set(stack: OfflineStack, names: dict[str, str], adf: str) -> None:
    install(stack, names, settings={"GATEWAY_PUBLIC_BASE_URL": "https://apim.example/pipelines/api"})
    try:
        response = start(adf, "daily_load", {}, {"Host": "evil.example"})
    finally:
        set_app_context(None)
    assert response.headers["Location"] == f"https://apim.example/pipelines/api/runs/{body_of(response)['id']}"


# --- The property: products x routes x ownership -------------------------------------------------------

CALLERS = ["erp", "finance", "admin", "nobody", None, OPERATOR]
OWNERS = ["erp", "finance", None]
ROUTES = ["get", "list", "chain", "cancel", "rerun", "target", "targets"]


def sees(caller: str | None, owner: str | None) -> bool:
    return caller in (OPERATOR, owner)


def may_use(caller: str | None, target: int) -> bool:
    """From the catalog above: everyone may start long_running on the factory; the workspace is admin's."""
    return target == 0 or caller in ("admin", OPERATOR)


@pytest.fixture(scope="module")
def world(stack: OfflineStack) -> Iterator[tuple[AppContext, dict[str | None, dict[str, Run]], list[str]]]:
    """Per owner: a run that ended (rerun once, by the next owner: a chain across products, as the bug
    made them) and a run still going. Nothing the property does changes them."""
    suffix = uuid.uuid4().hex[:10]
    context = install(stack, {"GATEWAY_RUNS_TABLE": f"iso{suffix}"}, catalog(stack))
    targets = [t["name"] for t in catalog(stack)["targets"]]
    runs = {owner: {"ended": recorded(context, targets[0], owner, RunStatus.SUCCEEDED)} for owner in OWNERS}
    for index, owner in enumerate(OWNERS):
        heir = OWNERS[(index + 1) % len(OWNERS)]
        tail = recorded(context, targets[0], heir, RunStatus.FAILED, rerun_of=runs[owner]["ended"].id)
        runs[owner]["ended"] = context.registry.save(replace(runs[owner]["ended"], rerun_by=tail.id))
        runs[owner]["tail"] = tail
        runs[owner]["going"] = recorded(context, targets[0], owner, RunStatus.IN_PROGRESS)
    yield context, runs, targets
    set_app_context(None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    caller=st.sampled_from(CALLERS),
    owner=st.sampled_from(OWNERS),
    route=st.sampled_from(ROUTES),
    target=st.integers(0, 1),
)
def test_who_sees_and_steers_what(
    world: tuple[AppContext, dict[str | None, dict[str, Run]], list[str]],
    caller: str | None,
    owner: str | None,
    route: str,
    target: int,
) -> None:
    context, runs, targets = world
    set_app_context(context)
    headers = as_product(caller)
    ended, going = runs[owner]["ended"], runs[owner]["going"]
    visible = sees(caller, owner)
    if route == "get":
        response = get(f"runs/{going.id}", headers, id=going.id)
        assert response.status_code == (200 if visible else 404)
    elif route == "chain":
        response = get(f"runs/{ended.id}", headers, id=ended.id)
        if not visible:
            problem(response, 404, "run-not-found")
        else:
            tail = runs[owner]["tail"]
            expected = [ended.id, tail.id] if sees(caller, tail.product) else [ended.id]
            assert [link["id"] for link in body_of(response)["chain"]] == expected
    elif route == "list":
        everything = [run for mine in runs.values() for run in mine.values()]
        assert set(listed(headers, limit="4")) == {run.id for run in everything if sees(caller, run.product)}
    elif route == "cancel":
        response = post("cancel_run", ended.id, headers)
        problem(response, *((409, "run-finished") if visible else (404, "run-not-found")))
    elif route == "rerun":
        response = post("rerun", going.id, headers)
        problem(response, *((409, "run-in-progress") if visible else (404, "run-not-found")))
    elif route == "target":
        name = targets[target]
        response = get(f"targets/{name}", headers, target=name)
        assert response.status_code == (200 if may_use(caller, target) else 404)
    else:
        names = [t["name"] for t in body_of(get("targets", headers))["value"]]
        assert names == [name for index, name in enumerate(targets) if may_use(caller, index)]
