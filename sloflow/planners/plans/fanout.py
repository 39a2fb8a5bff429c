"""Turn steps that enumerate a list's items one by one into one step that runs per item, and drop repeated steps.

Small planners write `get_product(product_id="$var2.items.0.id$")`, then `.1.`, `.2.` ... where
one step with `"$var2.items.id$"` means every item (the executor fans it out). Enumerating covers
only the items the planner happened to write, and runs on until the step limit; one fan-out step
covers the list whatever its length. Indexes may count up from 0 or down from -1 (the last item
first). A step that repeats an earlier one exactly (a small model looping) is dropped as well, its
label standing for the earlier step's. (`closing.close_at_repeat` stops a plan being written at
its first such step.)
"""

from __future__ import annotations

import re
from typing import Any

from sloflow.planners.plans.plan import Plan, Step
from sloflow.planners.plans.references import REFERENCE, whole_reference

_INDEXED = re.compile(r"^(?P<head>\$[A-Za-z_][A-Za-z0-9_]*(?:\.[^.$\s]+)*?)\.(?P<n>-?\d+)(?P<tail>(?:\.[^.$\s]+)*)\$$")


def collapse_enumerations(plan: Plan) -> tuple[Plan, list[str]]:
    """The plan with each run of item-by-item steps made one step and repeated steps dropped; the labels folded away."""
    steps: list[Step] = []
    renamed: dict[str, str] = {}
    i = 0
    while i < len(plan.steps):
        run = _enumeration(plan.steps, i)
        first = plan.steps[i]
        if len(run) >= 2:
            name, template = run[0]
            first = Step(name=first.name, arguments={**first.arguments, name: template}, label=first.label)
            for step in plan.steps[i + 1 : i + len(run)]:
                renamed[str(step.label)] = str(first.label)
        i += max(len(run), 1)
        same = next((s for s in steps if not first.is_result and (s.name, s.arguments) == (first.name, first.arguments)), None)
        if same is not None and first.label:
            renamed[first.label] = str(same.label)
        else:
            steps.append(first)
    if not renamed:
        return plan, []
    steps = [Step(name=s.name, arguments=_relabel(s.arguments, renamed), label=s.label) for s in steps]
    return Plan(steps=steps), sorted(renamed, key=lambda label: (len(label), label))


def _enumeration(steps: list[Step], start: int) -> list[tuple[str, str]]:
    """(argument, fan-out reference) for each step of the run of enumerating steps starting at `start`."""
    run: list[tuple[str, str]] = []
    base = steps[start]
    for n, step in enumerate(steps[start:]):
        if step.is_result or step.name != base.name or step.arguments.keys() != base.arguments.keys():
            break
        found = _indexed_argument(step, base, n)
        if found is None:
            break
        run.append(found)
    return run if len({template for _, template in run}) == 1 else run[:1]


def _indexed_argument(step: Step, base: Step, n: int) -> tuple[str, str] | None:
    """The one argument that is `$list.I.field$` where `base` has `$list.0.field$` (I = n) or `$list.-1.field$`
    (I = -1 - n), the rest equal to `base`'s; else None."""
    found = None
    for name, value in step.arguments.items():
        mine, theirs = _indexed(value), _indexed(base.arguments[name])
        counts = theirs is not None and (theirs[0] == 0 and mine == (n, theirs[1]) or theirs[0] == -1 and mine == (-1 - n, theirs[1]))
        if counts and found is None and mine is not None:
            found = (name, mine[1])
        elif value != base.arguments[name]:
            return None
    return found


def _indexed(value: Any) -> tuple[int, str] | None:
    """(N, the fan-out reference) for `$head.N$` or `$head.N.field...$`, where `field` is a name, not another index."""
    match = _INDEXED.match(value) if isinstance(value, str) and whole_reference(value) else None
    if match is None or match["tail"][1:].split(".")[0].lstrip("-").isdigit():
        return None
    return int(match["n"]), f"{match['head']}{match['tail']}$"


def _relabel(value: Any, renamed: dict[str, str]) -> Any:
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: f"${renamed.get(m.group(1), m.group(1))}{m.group(2)}$", value)
    if isinstance(value, dict):
        return {k: _relabel(v, renamed) for k, v in value.items()}
    if isinstance(value, list):
        return [_relabel(v, renamed) for v in value]
    return value
