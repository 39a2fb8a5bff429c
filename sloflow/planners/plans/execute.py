"""Runs a plan as a DAG on asyncio: a step starts as soon as the steps it references have finished.

Independent steps overlap in time. A failing step is recorded with its error and every step that
depends on it, directly or not, is skipped with the reason; nothing but cancellation leaves
`execute_plan`, and cancelling it cancels the steps in flight.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sloflow.errors import SloflowError
from sloflow.planners.plans.plan import Plan, Step
from sloflow.planners.plans.catalog import plan_sources
from sloflow.planners.plans.references import UnresolvedReference, find_references, plain, resolve, whole_reference

# `SourceRegistry.call` has this shape; so do test fakes.
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]
StepStatus = Literal["ok", "failed", "skipped"]


@dataclass
class StepRecord:
    """What happened to one step; times are seconds since the run started (None if it never ran)."""

    label: str
    source: str
    arguments: dict[str, Any]  # resolved if the step ran, as planned otherwise
    status: StepStatus
    output: Any = None  # JSON-like (see `references.plain`); a list of outputs if it ran per item
    error: str | None = None  # why it failed or was skipped (or, per item, which items failed)
    started_s: float | None = None
    ended_s: float | None = None
    per_item: str | None = None  # the argument given a list where one value is expected: one call per item

    def calls(self) -> list[dict[str, Any]]:
        """The calls this step made, each with its own arguments (one per item when it ran per item)."""
        if self.status == "skipped" or self.started_s is None:
            return []
        if self.per_item is None:
            return [{"name": self.source, "arguments": self.arguments}]
        return [{"name": self.source, "arguments": {**self.arguments, self.per_item: v}} for v in self.arguments[self.per_item]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (outputs already are)."""
        return asdict(self)


@dataclass
class PlanRun:
    """Per-step records in plan order, and the var_result arguments resolved against the outputs."""

    steps: list[StepRecord]
    result: dict[str, Any]
    missing: dict[str, str] = field(default_factory=dict)  # var_result key -> why it has no value
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every step ran and every var_result value is there."""
        return not self.missing and all(r.status == "ok" for r in self.steps)

    def record(self, label: str) -> StepRecord:
        """The record of the step with this label."""
        return next(r for r in self.steps if r.label == label)


async def execute_plan(
    plan: Plan,
    call: Call,
    step_timeout_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sources: Iterable[Any] = (),
) -> PlanRun:
    """Run the calls of `plan` concurrently in dependency order, then resolve its var_result.

    With `sources` (their argument schemas), a step whose reference gives a list where one value
    is expected runs once per item (`get_product_details` for `$var2.items.product_id$`).
    """
    start = clock()
    scalars = {s.name: _scalar_arguments(s.parameters) for s in plan_sources(sources)}
    records: dict[int, StepRecord] = {}
    outputs: dict[str, Any] = {}
    calls = {i: s for i, s in enumerate(plan.steps) if not s.is_result}
    label_of: dict[int, str] = {}
    index_of: dict[str, int] = {}
    for i, step in calls.items():
        label = step.label or f"step{i + 1}"
        if label in index_of:
            records[i] = StepRecord(label, step.name, step.arguments, "failed", error=f"the label {label} is used by an earlier step")
        else:
            label_of[i], index_of[label] = label, i
    # Unknown labels and self references are not waited for: resolving them fails the step itself.
    needs = {i: sorted(({r.label for r in find_references(calls[i].arguments)} & index_of.keys()) - {label}) for i, label in label_of.items()}
    order = _dependency_order(needs, index_of)
    for i in label_of.keys() - set(order):
        records[i] = StepRecord(label_of[i], calls[i].name, calls[i].arguments, "skipped", error="is in or waits on a reference cycle")

    async def run(i: int, inputs: list[asyncio.Task[StepRecord]]) -> StepRecord:
        bad = [r for r in [await t for t in inputs] if r.status != "ok"]
        if bad:
            why = "; ".join(
                f"{r.label}, which failed ({r.error})" if r.status == "failed" else f"{r.label}, which was skipped: {r.error}" for r in bad
            )
            return StepRecord(label_of[i], calls[i].name, calls[i].arguments, "skipped", error=f"needs {why}")
        record = await _call_step(calls[i], label_of[i], outputs, call, step_timeout_s, clock, start, scalars.get(calls[i].name, set()))
        if record.status == "ok":
            outputs[record.label] = record.output
        return record

    tasks: dict[str, asyncio.Task[StepRecord]] = {}
    # The task group cancels the steps in flight when the run itself is cancelled.
    async with asyncio.TaskGroup() as group:
        for i in order:
            tasks[label_of[i]] = group.create_task(run(i, [tasks[d] for d in needs[i]]))
    for label, task in tasks.items():
        records[index_of[label]] = task.result()
    result, missing = _result(plan, outputs, {label: records[i] for label, i in index_of.items()})
    return PlanRun([records[i] for i in sorted(records)], result, missing, clock() - start)


def _dependency_order(needs: dict[int, list[str]], index_of: dict[str, int]) -> list[int]:
    """Steps in an order where each comes after the steps it needs (Kahn); steps in or behind a cycle are left out."""
    waiting = {i: {index_of[d] for d in deps} for i, deps in needs.items()}
    order: list[int] = []
    ready = sorted(i for i, deps in waiting.items() if not deps)
    while ready:
        i = ready.pop(0)
        order.append(i)
        for j, deps in sorted(waiting.items()):
            if i in deps:
                deps.discard(i)
                if not deps:
                    ready.append(j)
    return order


def _scalar_arguments(parameters: dict[str, Any]) -> set[str]:
    """Arguments declared with one non-array type: a list given to one of them means one call per item."""
    properties = parameters.get("properties") or {}
    return {name for name, schema in properties.items() if isinstance(schema.get("type"), str) and schema["type"] != "array"}


def _per_item(step: Step, arguments: dict[str, Any], scalars: set[str]) -> str | None:
    for name, value in arguments.items():
        if name in scalars and isinstance(value, list) and whole_reference(step.arguments.get(name)) is not None:
            return name
    return None


async def _call_step(
    step: Step,
    label: str,
    outputs: dict[str, Any],
    call: Call,
    timeout_s: float | None,
    clock: Callable[[], float],
    start: float,
    scalars: set[str] = frozenset(),  # type: ignore[assignment]
) -> StepRecord:
    try:
        arguments = resolve(step.arguments, outputs)
    except UnresolvedReference as exc:
        return StepRecord(label, step.name, step.arguments, "failed", error=f"cannot resolve {exc.message}")
    started = clock() - start
    per_item = _per_item(step, arguments, scalars)
    if per_item is not None:
        return await _call_per_item(step, label, arguments, per_item, call, timeout_s, clock, start, started)
    try:
        async with asyncio.timeout(timeout_s):
            output = plain(await call(step.name, arguments))
    except TimeoutError:
        return StepRecord(label, step.name, arguments, "failed", error=f"timed out after {timeout_s} s", started_s=started, ended_s=clock() - start)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the run is being cancelled: let it go through
        # A source that cancelled its own work is a failed step, not a cancelled run.
        return StepRecord(label, step.name, arguments, "failed", error="the source cancelled the call", started_s=started, ended_s=clock() - start)
    except Exception as exc:  # a source's failure belongs in its record, never in the caller's stack
        return StepRecord(label, step.name, arguments, "failed", error=_why(exc, timeout_s), started_s=started, ended_s=clock() - start)
    return StepRecord(label, step.name, arguments, "ok", output=output, started_s=started, ended_s=clock() - start)


async def _call_per_item(
    step: Step,
    label: str,
    arguments: dict[str, Any],
    per_item: str,
    call: Call,
    timeout_s: float | None,
    clock: Callable[[], float],
    start: float,
    started: float,
) -> StepRecord:
    """One call per item of `arguments[per_item]`, concurrently; the output lists what the items gave."""
    items = list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in arguments[per_item]))  # each distinct item once
    values = [json.loads(v) for v in items]
    arguments = {**arguments, per_item: values}

    async def one(value: Any) -> Any:
        async with asyncio.timeout(timeout_s):
            return plain(await call(step.name, {**arguments, per_item: value}))

    results = await asyncio.gather(*(one(v) for v in values), return_exceptions=True)
    for r in results:
        if isinstance(r, asyncio.CancelledError):
            raise r
    failed = [(v, r) for v, r in zip(values, results) if isinstance(r, BaseException)]
    output = [r for r in results if not isinstance(r, BaseException)]
    why = "; ".join(f"{per_item}={v!r}: {_why(r, timeout_s)}" for v, r in failed[:5]) or None
    status: StepStatus = "failed" if values and len(failed) == len(values) else "ok"
    return StepRecord(label, step.name, arguments, status, output=output, error=why, started_s=started, ended_s=clock() - start, per_item=per_item)


def _why(exc: BaseException, timeout_s: float | None) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s} s"
    message = exc.message if isinstance(exc, SloflowError) else str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"


def _result(plan: Plan, outputs: dict[str, Any], by_label: dict[str, StepRecord]) -> tuple[dict[str, Any], dict[str, str]]:
    """The var_result arguments resolved, leaving out (with a reason) the values whose steps did not succeed."""
    final = plan.result
    if final is None:  # an invalid plan still gives its answer model every output it has
        return dict(outputs), {}
    result, missing = {}, {}
    for key, value in final.arguments.items():
        try:
            result[key] = resolve(value, outputs)
        except UnresolvedReference as exc:
            failed = [by_label[r.label] for r in find_references(value) if r.label in by_label and by_label[r.label].status != "ok"]
            missing[key] = f"{failed[0].label} {failed[0].status}: {failed[0].error}" if failed else exc.message
    return result, missing
