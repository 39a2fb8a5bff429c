"""Keep the sound part of a broken plan: drop the steps that cannot run and the steps that use them.

A small planner's plan is often right but for one step (an unknown source, a reference to itself
or to a later step, a step it skipped). Replacing the whole plan with the default throws the good
steps away; running what is sound keeps them, and what was changed is named in the run's notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sloflow.planners.plans.catalog import PlanSource, plan_sources
from sloflow.planners.plans.plan import RESULT, Plan, Step, free_label, parse_plan, whole_outputs
from sloflow.planners.plans.references import REFERENCE, Reference, find_references, reference_of
from sloflow.planners.plans.validate import path_problem


@dataclass
class Pruned:
    """The runnable rest of a plan, the labels (or positions) of the steps dropped from it, the
    optional arguments left out (`var1.optimize_route`), the references re-pointed (`$var2.time$ -> $var1.time$`)
    and the skipped steps put in (`var5 = get_user_details(user_id=$var1$)`)."""

    plan: Plan
    dropped: list[str] = field(default_factory=list)
    dropped_arguments: list[str] = field(default_factory=list)
    repointed: list[str] = field(default_factory=list)
    bridged: list[str] = field(default_factory=list)

    @property
    def changes(self) -> str:
        """What was changed besides dropping steps, for the run's notes."""
        parts = [f"skipped steps {', '.join(self.bridged)} put in"] if self.bridged else []
        parts += [f"references {', '.join(self.repointed)} re-pointed"] if self.repointed else []
        parts += [f"optional arguments {', '.join(self.dropped_arguments)} left out"] if self.dropped_arguments else []
        return "; ".join(parts) or "var_result rebuilt over them"


def prune_plan(raw: Plan | str | list[Any] | dict[str, Any], sources: Iterable[Any], drop: Iterable[str] = ()) -> Pruned | None:
    """The calls that can run, in order, with a var_result over what is left; None if no call is left.

    A reference to a field that its step cannot give (it is the step itself, a later one, or one
    whose declared output lacks the field) is re-pointed to the nearest earlier kept call whose
    declared output has that field (`"time": "$var2.time$"` in var2, after a route step var1 that
    returns `time`), or else, when the step returns one plain value (a user id) and exactly one
    source takes that value and declares the field (`orders` of get_user_details(user_id)), through
    that source, put in as the step the planner skipped. An optional argument that still refers
    to a label that is not an earlier kept call is left out (a grammar that admits a boolean or a
    reference there gets `"optimize": "$var1.time$"` in var1 from a model that meant "time").

    A call is dropped when its source is unknown, it has no label or a label used before, it is one
    of `drop` (labels), or a required argument refers to a label that is not an earlier kept call;
    dropping goes on to every call using it. Before a call of
    `drop` goes, each identifier-form literal (a declared `pattern`) is looked for in the outputs
    of the calls kept before it: a field that names the argument (`orders`, "order ids", for an
    `order_id`) replaces the literal, so the call runs on what an earlier step found instead of a
    made-up id. Other argument problems do not drop a call: the source checks its arguments when
    it is called.
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
    repointed: list[str] = []
    bridged: list[str] = []
    taken = {s.label for s in plan.steps if s.label}
    for i, step in enumerate(plan.calls):
        arguments = _repoint(step.arguments, kept, known, set(dropped), repointed, (taken, bridged))
        if arguments != step.arguments:
            step = step.model_copy(update={"arguments": arguments})
        if step.label in unwanted and step.name in known:
            found = _found_values(step, kept, known[step.name], known, (taken, bridged))
            if found is not None:
                repointed += [f"{step.label}.{k} {step.arguments[k]!r} -> {v}" for k, v in found.items() if v != step.arguments[k]]
                step = step.model_copy(update={"arguments": found})
                unwanted.discard(step.label)
        labels = {s.label for s in kept}  # after the steps put in above
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
    return Pruned(Plan(steps=[*kept, _result(plan.result, kept)]), dropped, dropped_arguments, repointed, bridged)


def _repoint(
    value: Any, kept: list[Step], known: dict[str, PlanSource], gone: set[str], repointed: list[str], bridging: tuple[set[str], list[str]]
) -> Any:
    """`value` with each reference that cannot hold pointed at the nearest earlier kept call declaring
    its field, or at a skipped step put in for it (appended to `kept`; `bridging` is the labels taken
    and the list of steps put in).

    A reference to a dropped step stays (and drops its step): it meant that step's output.
    """
    if isinstance(value, dict):
        return {k: _repoint(v, kept, known, gone, repointed, bridging) for k, v in value.items()}
    if isinstance(value, list):
        return [_repoint(v, kept, known, gone, repointed, bridging) for v in value]
    if not isinstance(value, str):
        return value

    def fix(match: re.Match[str]) -> str:
        ref = reference_of(match)
        holder = next((s for s in kept if s.label == ref.label), None)
        if not ref.path or ref.label in gone or (holder is not None and _declares(known.get(holder.name), ref)):
            return ref.text
        if holder is not None and (known.get(holder.name) is None or known[holder.name].output is None):
            return ref.text  # its output is not declared: nothing says the field is missing
        if holder is not None and len(ref.path) == 1 and known[holder.name].returns_one(ref.path[0]):
            # `$var1.user_id$` over a step that returns the user id itself: the field is the value.
            repointed.append(f"{ref.text} -> ${ref.label}$")
            return f"${ref.label}$"
        for step in reversed(kept):
            if _declares(known.get(step.name), ref):
                fixed = f"${step.label}{match.group(2)}$"
                repointed.append(f"{ref.text} -> {fixed}")
                return fixed
        bridge = _bridge(holder, ref, kept, known, *bridging) if holder is not None else None
        return f"${bridge}{match.group(2)}$" if bridge is not None else ref.text

    return REFERENCE.sub(fix, value)


def _found_values(
    step: Step, kept: list[Step], source: PlanSource, known: dict[str, PlanSource], bridging: tuple[set[str], list[str]]
) -> dict[str, Any] | None:
    """`step`'s arguments with every literal replaced by a reference to the nearest kept call's
    output field naming that argument (through a step put in after a plain value if need be); None
    if one is not an identifier (a declared `pattern`) or has no such field: the step cannot be
    trusted with any value of its own."""
    arguments = dict(step.arguments)
    properties = source.parameters.get("properties") or {}
    for name, value in step.arguments.items():
        if find_references(value):
            continue
        if not isinstance(value, str) or "pattern" not in (properties.get(name) or {}):
            return None
        reference = next((f"${s.label}.{paths[0]}$" for s in reversed(kept) if len(paths := _naming(known.get(s.name), name)) == 1), None)
        for holder in reversed(kept) if reference is None else ():
            label = _bridge(holder, lambda b, name=name: len(_naming(b, name)) == 1, kept, known, *bridging)
            if label is not None:
                reference = f"${label}.{_naming(known[kept[-1].name], name)[0]}$"  # the step just put in
                break
        if reference is None:
            return None
        arguments[name] = reference
    return arguments


def _naming(source: PlanSource | None, argument: str) -> list[str]:
    """The dotted paths of `source`'s declared output fields that name `argument` (its name, or its
    words in the field's name and description: `orders`, "order ids", for `order_id`)."""
    words = argument.replace("_", " ").casefold()
    found: list[str] = []

    def walk(schema: dict[str, Any], path: tuple[str, ...]) -> None:
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            schema = schema["items"]  # a field of every item
        for field_name, sub in (schema.get("properties") or {}).items():
            items = sub.get("items") if isinstance(sub.get("items"), dict) else {}
            plain = sub.get("type") in ("string", "integer") or (sub.get("type") == "array" and items.get("type") in ("string", "integer"))
            said = f"{field_name} {sub.get('description', '')}".replace("_", " ").casefold()
            if plain and (field_name == argument or words in said):
                found.append(".".join((*path, field_name)))
            elif len(path) < 3:
                walk(sub, (*path, field_name))

    if source is not None and source.output is not None:
        walk(source.output, ())
    return found


def _bridge(
    holder: Step,
    gives: Reference | Callable[[PlanSource], bool],
    kept: list[Step],
    known: dict[str, PlanSource],
    taken: set[str],
    bridged: list[str],
) -> str | None:
    """The label of a step put in after `holder` that turns its one plain value into an output that
    `gives` (a reference's field, or a test of the source): the only source whose one required
    argument the value names (`user_id` for "the user id"). None when there is not exactly one."""
    source = known[holder.name]
    fits = [
        (s, required[0])
        for s in known.values()
        if len(required := list(s.parameters.get("required") or [])) == 1
        and source.returns_one(required[0])
        and (gives(s) if callable(gives) else _declares(s, gives))
    ]
    if len(fits) != 1:
        return None
    bridge, argument = fits[0]
    label = free_label(taken)
    kept.append(Step(label=label, name=bridge.name, arguments={argument: f"${holder.label}$"}))
    bridged.append(f"{label} = {bridge.name}({argument}=${holder.label}$)")
    return label


def _declares(source: PlanSource | None, ref: Reference) -> bool:
    """Whether `source`'s declared output names the first field of `ref` and has its whole path."""
    if source is None or source.output is None:
        return False
    output = source.output
    top = output.get("items") if output.get("type") == "array" and isinstance(output.get("items"), dict) else output
    return ref.path[0] in (top.get("properties") or {}) and path_problem(ref, source) is None


def _result(result: Step | None, kept: list[Step]) -> Step:
    """The plan's var_result without references to dropped steps; if nothing is left, every leaf call."""
    labels = {s.label for s in kept}
    arguments: dict[str, Any] = {}
    if result is not None:
        arguments = {k: v for k, v in result.arguments.items() if {r.label for r in find_references(v)} <= labels and find_references(v)}
    if not arguments:
        used = {r.label for s in kept for r in find_references(s.arguments)}
        arguments = whole_outputs(s.label for s in kept if s.label not in used) or whole_outputs(s.label for s in kept)
    return Step(name=RESULT, arguments=arguments)
