"""A plan from calls that were made (an agent's trace, a recorded session): values passed along become references.

Plan memory learns from plans that worked. A trace of calls worked too, but as written it holds
another request's ids: `get_order_details(order_id="#W123")` after `get_user_details` returned
`{"orders": ["#W123", ...]}`. Written as a plan, that argument is `"$var2.orders$"` (every order
of the user, one call each), which a planner can reuse for the next customer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sloflow.planners.plans.plan import RESULT, Plan, Step, whole_outputs
from sloflow.planners.plans.references import plain

_SHORTEST = 4  # shorter values (quantities, "yes") match outputs by chance


def plan_from_calls(calls: Sequence[tuple[str, Mapping[str, Any], Any]]) -> Plan:
    """A plan of `(source, arguments, output)` calls, in order.

    A literal argument equal to an earlier output becomes `$varN$`; one found inside an earlier
    output becomes `$varN.path$`, list indexes dropped so the step runs for every item (the trace
    looked up some items; the plan looks up all). Calls that become the same step are one step.
    """
    steps: list[Step] = []
    seen: list[tuple[str, Any]] = []  # (label of the step a call became, that call's output)
    for name, arguments, output in calls:
        args = {k: _reference_to(v, seen) for k, v in arguments.items()}
        same = next((s for s in steps if s.name == name and s.arguments == args), None)
        if same is None:
            same = Step(name=name, arguments=args, label=f"var{len(steps) + 1}")
            steps.append(same)
        seen.append((str(same.label), plain(output)))
    result = Step(name=RESULT, arguments=whole_outputs(s.label for s in steps))
    return Plan(steps=[*steps, result])


def _reference_to(value: Any, seen: list[tuple[str, Any]]) -> Any:
    """`value`, or a reference to where an earlier output holds it (a whole output first, then the first field)."""
    if isinstance(value, (dict, list, bool)) or value is None or len(str(value)) < _SHORTEST:
        return value
    for label, output in seen:
        if _same(output, value):
            return f"${label}$"
    for label, output in seen:
        path = _path_to(output, value)
        if path is not None:
            fields = [p for p in path if not p.lstrip("-").isdigit()]  # every item, not the one the trace used
            return f"${'.'.join([label, *fields])}$"
    return value


def _path_to(output: Any, value: Any) -> list[str] | None:
    """The first path (keys and indexes) at which `output` holds `value`, or None."""
    if isinstance(output, Mapping):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in output.items()]
    elif isinstance(output, list):
        items = [(str(i), v) for i, v in enumerate(output)]
    else:
        return [] if _same(output, value) else None
    for key, inner in items:
        path = _path_to(inner, value)
        if path is not None:
            return [key, *path]
    return None


def _same(output: Any, value: Any) -> bool:
    return not isinstance(output, (dict, list)) and output is not None and str(output) == str(value)
