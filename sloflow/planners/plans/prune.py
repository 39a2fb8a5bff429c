"""Keep the sound part of a broken plan: drop the steps that cannot run and the steps that use them.

A small planner's plan is often right but for one step (an unknown source, a reference to itself
or to a later step). Replacing the whole plan with the default throws the good steps away; running
what is sound keeps them, and the dropped steps are named in the run's notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sloflow.planners.plans.catalog import plan_sources
from sloflow.planners.plans.plan import RESULT, Plan, Step, parse_plan
from sloflow.planners.plans.references import find_references


@dataclass
class Pruned:
    """The runnable rest of a plan, the labels (or positions) of the steps dropped from it, and the
    optional arguments left out (`var1.optimize_route`)."""

    plan: Plan
    dropped: list[str] = field(default_factory=list)
    dropped_arguments: list[str] = field(default_factory=list)


def prune_plan(raw: Plan | str | list[Any] | dict[str, Any], sources: Iterable[Any], drop: Iterable[str] = ()) -> Pruned | None:
    """The calls that can run, in order, with a var_result over what is left; None if no call is left.

    An optional argument that refers to a label that is not an earlier kept call is left out (a
    grammar that admits a boolean or a reference there gets `"optimize": "$var1.time$"` in var1
    from a model that meant "time"). A call is dropped when its source is unknown, it has no label
    or a label used before, it is one of `drop` (labels), or a required argument refers to a label
    that is not an earlier kept call; dropping goes on to every call using it. Other argument
    problems do not drop a call: the source checks its arguments when it is called.
    """
    try:
        plan = parse_plan(raw)
    except Exception:  # noqa: BLE001 - an unreadable plan has nothing to keep
        return None
    known = {s.name: s for s in plan_sources(sources)}
    unwanted = set(drop)
    kept: list[Step] = []
    dropped: list[str] = []
    dropped_arguments: list[str] = []
    for i, step in enumerate(plan.calls):
        labels = {s.label for s in kept}
        if step.name in known:
            required = set(known[step.name].parameters.get("required") or [])
            loose = [k for k, v in step.arguments.items() if k not in required and not {r.label for r in find_references(v)} <= labels]
            if loose:
                step = step.model_copy(update={"arguments": {k: v for k, v in step.arguments.items() if k not in loose}})
                dropped_arguments += [f"{step.label}.{k}" for k in loose]
        refs = {r.label for r in find_references(step.arguments)}
        if step.name in known and step.label and step.label not in labels and step.label not in unwanted and step.label != RESULT and refs <= labels:
            kept.append(step)
        else:
            dropped.append(step.label or f"step {i + 1}")
    if not kept:
        return None
    return Pruned(Plan(steps=[*kept, _result(plan.result, kept)]), dropped, dropped_arguments)


def _result(result: Step | None, kept: list[Step]) -> Step:
    """The plan's var_result without references to dropped steps; if nothing is left, every leaf call."""
    labels = {s.label for s in kept}
    arguments: dict[str, Any] = {}
    if result is not None:
        arguments = {k: v for k, v in result.arguments.items() if {r.label for r in find_references(v)} <= labels and find_references(v)}
    if not arguments:
        used = {r.label for s in kept for r in find_references(s.arguments)}
        arguments = {s.label: f"${s.label}$" for s in kept if s.label not in used} or {s.label: f"${s.label}$" for s in kept}
    return Step(name=RESULT, arguments=arguments)
