"""The DAG executor: concurrency of independent steps, dependency order, failure isolation, cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sloflow.errors import InvalidRequest
from sloflow.planners.plans.catalog import plan_sources
from sloflow.planners.plans.default import default_plan
from sloflow.planners.plans.execute import execute_plan
from sloflow.planners.plans.plan import RESULT, parse_plan
from sloflow.planners.plans.validate import validate_plan
from sloflow.retrieval.chunking import Document
from sloflow.retrieval.sources import SourceRegistry


class FakeSources:
    """Sleeps `delay` per call, fails the names in `failing`, and logs (name, start, end) in wall time."""

    def __init__(self, delay: float = 0.2, failing: tuple[str, ...] = ()) -> None:
        self.delay, self.failing = delay, failing
        self.log: list[tuple[str, float, float]] = []
        self.cancelled: list[str] = []

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        self.log.append((name, start, time.perf_counter()))
        if name in self.failing:
            raise InvalidRequest(f"{name} is down")
        return {"name": name, "args": args, "items": [{"id": len(self.log)}]}


def step(label: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "label": label}


async def test_independent_steps_overlap_in_time() -> None:
    fake = FakeSources(delay=0.2)
    plan = parse_plan([step("var1", "a", q=1), step("var2", "b", q=2), {"name": RESULT, "arguments": {"a": "$var1$", "b": "$var2$"}}])
    started = time.perf_counter()
    run = await execute_plan(plan, fake.call)
    assert time.perf_counter() - started < 0.35
    assert run.ok and [r.status for r in run.steps] == ["ok", "ok"]
    first, second = run.steps
    assert first.started_s is not None and second.started_s is not None and first.ended_s is not None
    assert second.started_s < first.ended_s  # the second began before the first had finished
    assert run.result == {"a": first.output, "b": second.output}


async def test_a_dependent_step_starts_after_its_input_ends_and_gets_the_resolved_value() -> None:
    fake = FakeSources(delay=0.1)
    plan = parse_plan(
        [
            step("var1", "find", q="x"),
            step("var2", "other", q="y"),
            step("var3", "use", id="$var1.items.0.id$", text="from $var1.name$"),
            {"name": RESULT, "arguments": {"used": "$var3.args$"}},
        ]
    )
    run = await execute_plan(plan, fake.call)
    find, _, use = run.steps
    assert use.started_s is not None and find.ended_s is not None and use.started_s >= find.ended_s
    ends = {name: end for name, _, end in fake.log}
    starts = {name: start for name, start, _ in fake.log}
    assert starts["use"] >= ends["find"]
    assert use.arguments == {"id": find.output["items"][0]["id"], "text": "from find"}
    assert run.result == {"used": use.arguments}


async def test_a_failing_source_skips_only_the_steps_that_depend_on_it() -> None:
    fake = FakeSources(delay=0.05, failing=("broken",))
    plan = parse_plan(
        [
            step("var1", "broken", q=1),
            step("var2", "fine", q=2),
            step("var3", "needs_broken", x="$var1.items$"),
            step("var4", "needs_var3", x="$var3$"),
            step("var5", "needs_fine", x="$var2.name$"),
            {"name": RESULT, "arguments": {"b": "$var4$", "f": "$var5$"}},
        ]
    )
    run = await execute_plan(plan, fake.call)
    status = {r.label: r.status for r in run.steps}
    assert status == {"var1": "failed", "var2": "ok", "var3": "skipped", "var4": "skipped", "var5": "ok"}
    assert run.record("var1").error == "InvalidRequest: broken is down"
    assert run.record("var3").error == "needs var1, which failed (InvalidRequest: broken is down)"
    assert run.record("var4").error.startswith("needs var3, which was skipped: needs var1, which failed")
    assert run.record("var3").started_s is None and [n for n, _, _ in fake.log].count("needs_broken") == 0
    assert run.result == {"f": run.record("var5").output} and run.result["f"]["args"] == {"x": "fine"}
    assert list(run.missing) == ["b"] and run.missing["b"].startswith("var4 skipped: needs var3") and not run.ok


async def test_bad_references_unknown_labels_and_cycles_are_recorded_not_raised() -> None:
    fake = FakeSources(delay=0.01)
    plan = parse_plan(
        [
            step("var1", "a", q=1),
            step("var2", "b", x="$var1.nope$"),
            step("var3", "c", x="$var9$"),
            step("var4", "d", x="$var5$"),
            step("var5", "e", x="$var4$"),
            step("var1", "dup", q=2),
            {"name": RESULT, "arguments": {"a": "$var1$"}},
        ]
    )
    run = await execute_plan(plan, fake.call)
    by_label = [(r.label, r.source, r.status) for r in run.steps]
    assert by_label == [
        ("var1", "a", "ok"),
        ("var2", "b", "failed"),
        ("var3", "c", "failed"),
        ("var4", "d", "skipped"),
        ("var5", "e", "skipped"),
        ("var1", "dup", "failed"),
    ]
    assert run.steps[1].error == "cannot resolve $var1.nope$: var1 has no field 'nope' (fields: name, args, items)"
    assert run.steps[2].error == "cannot resolve $var9$: there is no output of var9"
    assert run.steps[3].error == "is in or waits on a reference cycle"
    assert run.steps[5].error == "the label var1 is used by an earlier step"
    assert [n for n, _, _ in fake.log] == ["a"]


async def test_a_slow_step_times_out_and_its_sibling_still_succeeds() -> None:
    async def call(name: str, args: dict[str, Any]) -> Any:
        await asyncio.sleep(1.0 if name == "slow" else 0.01)
        return name

    plan = parse_plan([step("var1", "slow"), step("var2", "quick"), {"name": RESULT, "arguments": {"q": "$var2$"}}])
    started = time.perf_counter()
    run = await execute_plan(plan, call, step_timeout_s=0.1)
    assert time.perf_counter() - started < 0.5
    assert (run.steps[0].status, run.steps[0].error) == ("failed", "timed out after 0.1 s")
    assert run.steps[1].status == "ok" and run.result == {"q": "quick"}


async def test_cancelling_the_run_cancels_the_steps_in_flight() -> None:
    fake = FakeSources(delay=5.0)
    plan = parse_plan([step("var1", "a"), step("var2", "b"), step("var3", "c", x="$var1$"), {"name": RESULT, "arguments": {}}])
    task = asyncio.create_task(execute_plan(plan, fake.call))
    await asyncio.sleep(0.05)
    task.cancel()
    started = time.perf_counter()
    try:
        await task
        raise AssertionError("the run was not cancelled")
    except asyncio.CancelledError:
        pass
    assert time.perf_counter() - started < 0.5
    assert sorted(fake.cancelled) == ["a", "b"] and fake.log == []


async def test_a_real_registry_runs_a_dependent_plan_and_the_default_plan(registry: SourceRegistry) -> None:
    registry.indexes.get("policies", create=True).add_documents(
        [Document("returns", "Items can be returned within 30 days for a full refund."), Document("ship", "Shipping takes 3 days.")]
    )
    plan = parse_plan(
        [
            step("var1", "sql:shop", sql="SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 2"),
            step("var2", "order_status", order_id="$var1.rows.1.0$"),
            step("var3", "policies", query="can I return order $var2.items.0.sku$?", k=1),
            step("var4", "schema:shop", query="the total of each order", k=1),
            {"name": RESULT, "arguments": {"status": "$var2.status$", "policy": "$var3.0.doc_id$", "table": "$var4.0.metadata.table$"}},
        ]
    )
    assert validate_plan(plan, plan_sources(registry.catalog())).ok
    run = await execute_plan(plan, registry.call)
    assert run.ok, [r.error for r in run.steps]
    assert run.record("var2").arguments == {"order_id": 3}
    assert run.record("var3").arguments["query"] == "can I return order SKU-3?"
    assert run.result == {"status": "shipped", "policy": "returns", "table": "orders"}
    fallback = await execute_plan(default_plan("how long do refunds take?", registry.catalog(), k=1), registry.call)
    assert fallback.ok and fallback.result["policies"][0]["doc_id"] == "returns"


async def test_a_source_that_cancels_its_own_call_fails_its_step_without_cancelling_the_run() -> None:
    async def call(name: str, args: dict[str, Any]) -> Any:
        if name == "gives_up":
            raise asyncio.CancelledError()
        return "fine"

    plan = parse_plan([step("var1", "gives_up"), step("var2", "ok"), {"name": RESULT, "arguments": {"a": "$var1$", "b": "$var2$"}}])
    run = await execute_plan(plan, call)
    assert [(r.status, r.error) for r in run.steps] == [("failed", "the source cancelled the call"), ("ok", None)]
    assert run.result == {"b": "fine"} and run.missing == {"a": "var1 failed: the source cancelled the call"}


async def test_a_list_where_one_value_is_expected_runs_the_step_once_per_item() -> None:
    from sloflow.planners.plans.catalog import PlanSource

    orders = {"#1": {"items": [{"pid": "p1"}, {"pid": "p2"}]}, "#2": {"items": [{"pid": "p2"}, {"pid": "p3"}]}}
    asked: list[tuple[str, dict[str, Any]]] = []

    async def call(name: str, args: dict[str, Any]) -> Any:
        asked.append((name, args))
        await asyncio.sleep(0.1)
        if name == "user":
            return {"orders": list(orders)}
        if name == "order":
            return orders[args["order_id"]]
        if args["product_id"] == "p3":
            raise InvalidRequest("product p3 is gone")
        return {"product": args["product_id"]}

    one = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    product = {"type": "object", "properties": {"product_id": {"type": "string"}}, "required": ["product_id"]}
    sources = [PlanSource("user", "", {"type": "object", "properties": {}}), PlanSource("order", "", one), PlanSource("product", "", product)]
    plan = parse_plan(
        [
            step("var1", "user"),
            step("var2", "order", order_id="$var1.orders$"),
            step("var3", "product", product_id="$var2.items.pid$"),
            {"name": RESULT, "arguments": {"products": "$var3$"}},
        ]
    )
    started = time.perf_counter()
    run = await execute_plan(plan, call, sources=sources)
    assert time.perf_counter() - started < 0.45  # the items of a step run at the same time
    orders_step, products_step = run.record("var2"), run.record("var3")
    assert orders_step.per_item == "order_id" and orders_step.output == [orders["#1"], orders["#2"]]
    assert [c["arguments"] for c in orders_step.calls()] == [{"order_id": "#1"}, {"order_id": "#2"}]
    assert products_step.arguments == {"product_id": ["p1", "p2", "p3"]}  # each distinct item once
    assert products_step.status == "ok" and products_step.output == [{"product": "p1"}, {"product": "p2"}]
    assert "product_id='p3'" in products_step.error and "gone" in products_step.error
    assert len([a for a in asked if a[0] == "product"]) == 3
    # Without the sources' schemas a list is passed on as it is.
    plain_run = await execute_plan(plan, call)
    assert plain_run.record("var2").status == "failed"
