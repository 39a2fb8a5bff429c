"""Literal values of a plan grounded in the question.

A small planner often writes a value of the right form that the question does not hold: it builds
an email from the user id (`mia_garcia_4516@example.com` where the question gives
`mia.garcia2723@example.com`), or retypes an order id. When an argument's schema declares its form
(a `pattern`) and the question holds exactly one value of that form that no other argument of the
plan already takes, that value is what was meant. Anything less certain is left to validation,
which refuses the value as unfounded and asks for a repair.

Likewise a step that looks up what the question already gives (`find_user_id_by_email` for a
customer who also wrote their user id): its output is the question's value, so the steps using it
get that value and do not wait for, or fail with, the lookup (which still runs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import Plan
from sloflow.planners.plans.references import find_references, whole_reference

_EDGE = "A-Za-z0-9_"  # a value found in the question is not part of a longer word


def ground_values(plan: Plan, question: str, known: Sequence[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan with ungrounded literals replaced by the question's only value of their form, and what changed."""
    forms = {s.name: s.parameters.get("properties") or {} for s in known}
    by_name = {s.name: s for s in known}
    made_by = {s.label: by_name.get(s.name) for s in plan.calls}
    asked = _key(question)
    used = {_key(v) for step in plan.calls for v in step.arguments.values() if isinstance(v, str)}
    changes: list[str] = []
    steps = []
    for step in plan.steps:
        arguments = dict(step.arguments)
        for name, value in step.arguments.items():
            pattern = (forms.get(step.name, {}).get(name) or {}).get("pattern")
            if not isinstance(value, str) or not isinstance(pattern, str) or _key(value) in asked:
                continue
            ref = whole_reference(value)
            lookup = made_by.get(ref.label) if ref is not None and not ref.path else None
            if find_references(value) and not (lookup is not None and lookup.returns_one(name)):
                continue  # a field of a step, or a step that returns something else
            offered = list(dict.fromkeys(v for v in values_of_form(pattern, question) if _key(v) not in used))
            if len(offered) == 1:
                arguments[name] = offered[0]
                used.add(_key(offered[0]))
                changes.append(f"{step.label} {name}={value!r} became {offered[0]!r}, the question's only value of that form")
        steps.append(step.model_copy(update={"arguments": arguments}))
    return (Plan(steps=steps), changes) if changes else (plan, [])


def values_of_form(pattern: str, text: str) -> list[str]:
    """The substrings of `text` that match an anchored `pattern` as whole words, in order."""
    core = pattern.removeprefix("^").removesuffix("$")
    try:
        found = re.finditer(f"(?<![{_EDGE}])(?:{core})(?![{_EDGE}])", text)
        return [m.group(0) for m in found]
    except re.error:
        return []


def _key(value: str) -> str:
    return value.strip().casefold().lstrip("#")
