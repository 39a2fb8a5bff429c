"""Lookups of a value the plan already holds, dropped.

A small planner chains a lookup after the step that already gave its result:
`find_user_id_by_email(email="$var1.user_id$")` after an order lookup that returned the user id.
The call hands a user id to a source that wants an email; the source refuses it, and every step
that needed the user id is skipped, though the plan held it all along. When a source returns one
plain value (`returns_one`) and the step gives it that very value (`$var1.user_id$`), the step is
dropped and its users read the value where the plan already has it.
"""

from __future__ import annotations

from typing import Any

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import Plan, Step
from sloflow.planners.plans.references import REFERENCE, find_references, reference_of


def drop_held_lookups(plan: Plan, known: list[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan without steps that look up a value their own arguments already hold, and what changed."""
    by_name = {s.name: s for s in known}
    held: dict[str, str] = {}  # label of a dropped lookup -> the reference holding its value
    changes: list[str] = []
    steps: list[Step] = []
    for step in plan.steps:
        step = step.model_copy(update={"arguments": _replaced(step.arguments, held)})
        source = by_name.get(step.name)
        given = next(
            (r for r in find_references(step.arguments) if source is not None and len(r.path) == 1 and source.returns_one(r.path[0])),
            None,
        )
        if given is not None and not step.is_result and step.label:
            held[step.label] = given.text
            changes.append(f"{step.label} ({step.name}) looked up the {given.path[0]} the plan already holds in {given.text}; its users read that instead")
            continue
        steps.append(step)
    return (Plan(steps=steps), changes) if changes else (plan, [])


def _replaced(value: Any, held: dict[str, str]) -> Any:
    """`value` with whole-output references to a dropped lookup pointed at the value it looked up."""
    if isinstance(value, dict):
        return {k: _replaced(v, held) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, held) for v in value]
    if not isinstance(value, str) or not held:
        return value

    def fix(match: Any) -> str:
        ref = reference_of(match)
        return held[ref.label] if ref.label in held and not ref.path else ref.text

    return REFERENCE.sub(fix, value)
