"""Records a step lists by id and the plan never reads are read: one hop, like a join path from a key.

A small planner reads a customer's profile (`get_user_details`, which lists `orders` as ids) and
stops there, though the question is about what the customer bought: the ids alone tell the answer
nothing. When a step's declared output holds a list of plain ids, and one source takes exactly that
id (`orders` -> `get_order_details(order_id)`) while no step of the plan calls that source, the plan
also reads every listed record (`"$var2.orders$"`, run once per id). Calls to local sources cost
milliseconds; the answer's evidence stays within its budget (`evidence.EVIDENCE_CHARS`).

Only lists of plain values are followed, and only from the planner's own steps: a list of objects
(an order's items) would fan out over records the question may not need, and following added steps
would chain without end.
"""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import Plan, Step, free_label, whole_outputs
from sloflow.planners.plans.wording import stems


def read_listed_records(plan: Plan, known: list[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan with a step added for each list of ids a step returns that no step reads; what changed."""
    by_name = {s.name: s for s in known}
    called = {s.name for s in plan.calls}
    taken = {s.label for s in plan.steps if s.label}
    added: list[Step] = []
    changes: list[str] = []
    for step in plan.calls:
        source = by_name.get(step.name)
        if source is None or step.label is None:
            continue
        for field, reader, argument in _listed_ids(source, known):
            if reader.name in called:
                continue
            label = free_label(taken)
            called.add(reader.name)
            listed = f"${step.label}.{field}$"
            added.append(Step(name=reader.name, arguments={argument: listed}, label=label))
            changes.append(f"{label} reads each record {listed} lists ({reader.name}); no step read them")
    if not added:
        return plan, []
    return plan.with_calls(added, whole_outputs(s.label for s in added)), changes


def _listed_ids(source: PlanSource, known: list[PlanSource]) -> list[tuple[str, PlanSource, str]]:
    """(field, reader, argument): each top-level list of plain values in `source`'s output that exactly
    one other source takes as its only required argument (`orders` or "order ids" -> `order_id`)."""
    properties = (source.output or {}).get("properties") or {}
    found = []
    for field, schema in properties.items():
        items = schema.get("items") if schema.get("type") == "array" else None
        if not isinstance(items, dict) or items.get("type") not in ("string", "integer"):
            continue
        named = {*stems(field), *stems(schema.get("description", ""))}
        readers = [(s, arg) for s in known if s.name != source.name and (arg := _only_required(s)) and _names_an_id_of(arg, named)]
        if len(readers) == 1:
            found.append((field, *readers[0]))
    return found


def _only_required(source: PlanSource) -> str | None:
    """The source's one required argument, if it has exactly one."""
    required = source.parameters.get("required") or []
    return required[0] if len(required) == 1 else None


def _names_an_id_of(argument: str, named: set[str]) -> bool:
    """Whether `argument` is an id of what the list is named for: `order_id` for `orders`."""
    words = set(stems(argument))
    return "id" in words and bool(words - {"id"}) and words - {"id"} <= named
