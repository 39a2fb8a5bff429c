"""Plan validation: known sources, required and typed arguments, references to earlier labels only, no cycles.

Each problem is a sentence a repair prompt can quote to the planner as it is, naming the step,
what is wrong and what would be right.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sloflow.errors import InvalidRequest
from sloflow.planners.plans.catalog import PlanSource, plan_sources
from sloflow.planners.plans.plan import RESULT, Plan, Step, parse_plan
from sloflow.planners.plans.references import Reference, find_references, whole_reference

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what REFERENCE accepts as a label
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
_LISTED = 20  # source names quoted in a problem; the prompt lists them all
_ARTICLE = {"integer": "an integer", "object": "an object", "array": "an array"}


@dataclass
class Validation:
    """The parsed plan (None if it could not be parsed) and what is wrong with it.

    `argument_problems` (a missing, unknown or mistyped argument: part of `problems`) leave the
    plan runnable: the source checks its arguments when called, and if it refuses, only that
    step and the steps that use its output fail.
    """

    plan: Plan | None
    problems: list[str] = field(default_factory=list)
    argument_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Parsed, and nothing wrong."""
        return self.plan is not None and not self.problems

    @property
    def runnable(self) -> bool:
        """Parsed, and nothing wrong but arguments: known sources, sound references, no cycle."""
        return self.plan is not None and len(self.problems) == len(self.argument_problems)

    def message(self) -> str:
        """The problems as a bulleted list, for a repair prompt."""
        return "\n".join(f"- {p}" for p in self.problems)


def validate_plan(raw: Plan | str | list[Any] | dict[str, Any], sources: Iterable[Any]) -> Validation:
    """Check a plan (or the planner's raw output) against the sources it may call."""
    try:
        plan = parse_plan(raw)
    except InvalidRequest as exc:
        return Validation(None, [exc.message])
    by_name = {s.name: s for s in plan_sources(sources)}
    problems = _structure(plan)
    forms = _forms(by_name.values())
    arguments: list[str] = []
    for i, step in enumerate(plan.steps):
        if not step.is_result:
            if step.name not in by_name:
                problems.append(_unknown(step, _who(i, step), by_name))
            else:
                arguments += _arguments(step, _who(i, step), by_name[step.name], forms)
        problems += _references(i, step, plan, by_name)
    problems += _cycles(plan)
    return Validation(plan, problems + arguments, arguments)


def _who(i: int, step: Step) -> str:
    return f"step {step.label}" if step.label else f"step {i + 1}"


def _structure(plan: Plan) -> list[str]:
    """The last step is var_result, and only it; every call has its own well-formed label."""
    problems = []
    if not plan.steps or not plan.steps[-1].is_result:
        problems.append(f'the plan must end with a {RESULT} step like {{"name": "{RESULT}", "arguments": {{"answer": "$var1$"}}}}')
    for i, step in enumerate(plan.steps[:-1]):
        if step.is_result:
            problems.append(f"step {i + 1} is {RESULT}, but {RESULT} must be the last step only")
    seen: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        if step.is_result:
            continue
        if step.label is None:
            problems.append(f"step {i + 1} ({step.name}) has no label; give it one like \"var{i + 1}\"")
            continue
        if step.label == RESULT or not _LABEL.fullmatch(step.label):
            problems.append(f"step {i + 1} has the label {step.label!r}; use labels like \"var{i + 1}\"")
        if step.label in seen:
            problems.append(f"the label {step.label} is used by steps {seen[step.label] + 1} and {i + 1}; give each step its own label")
        seen.setdefault(step.label, i)
    return problems


def _unknown(step: Step, who: str, by_name: Mapping[str, PlanSource]) -> str:
    close = difflib.get_close_matches(step.name, list(by_name), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = sorted(by_name)
    known = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
    return f"{who} calls unknown source {step.name!r}{hint}; known sources: {known or 'none'}"


def _forms(sources: Iterable[PlanSource]) -> dict[str, str]:
    """Argument name -> its declared `pattern`, for the names that keep one form across the sources
    (`user_id` is a user id wherever it is taken)."""
    seen: dict[str, set[str]] = {}
    for source in sources:
        for name, schema in (source.parameters.get("properties") or {}).items():
            if isinstance(schema, dict) and isinstance(schema.get("pattern"), str):
                seen.setdefault(name, set()).add(schema["pattern"])
    return {name: next(iter(patterns)) for name, patterns in seen.items() if len(patterns) == 1}


def _arguments(step: Step, who: str, source: PlanSource, forms: Mapping[str, str]) -> list[str]:
    """The source gets its required arguments, each of the right type, and no others; an argument
    of a declared form does not take a field named for another form (`email` given `$var1.user_id$`)."""
    schema = source.parameters
    properties: dict[str, Any] = schema.get("properties") or {}
    problems = []
    for name in schema.get("required") or []:
        if name not in step.arguments:
            problems.append(f"{who} ({step.name}) is missing the required argument {name!r} ({_type_name(properties.get(name, {}), schema)})")
    for name, value in step.arguments.items():
        if properties and name not in properties:
            problems.append(f"{who} ({step.name}) has no argument {name!r}; its arguments are: {', '.join(properties)}")
        elif name in properties:
            problems += [f"{who} ({step.name}): {p}" for p in _type_problems(value, properties[name], schema, repr(name))]
            ref, pattern = whole_reference(value), properties[name].get("pattern")
            field_form = forms.get(ref.path[-1]) if ref is not None and ref.path else None
            if ref is not None and isinstance(pattern, str) and field_form is not None and field_form != pattern:
                what = properties[name].get("description") or f"a value matching {pattern}"
                problems.append(
                    f"{who} ({step.name}): argument {name!r} takes {what}, but {ref.text} is a {ref.path[-1]}, another form; "
                    f"write the {name} the question gives or refer to a step that returns one"
                )
    return problems


def _deref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (pydantic puts nested models under `$defs`)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return target if isinstance(target, dict) else {}
    return schema


def _type_problems(value: Any, schema: dict[str, Any], root: dict[str, Any], what: str) -> list[str]:
    """Why `value` does not fit `schema` (basic types, enum, array items, object properties); a reference fits anything."""
    schema = _deref(schema, root)
    if whole_reference(value) is not None:
        return []
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        if any(not _type_problems(value, alt, root, what) for alt in alternatives):
            return []
        return [f"argument {what} should be {_type_name(schema, root)}, not {_show(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"argument {what} should be one of {', '.join(map(_show, schema['enum']))}, not {_show(value)}"]
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    known = [t for t in types if t in _PYTHON_TYPES]
    if known and not any(_fits(value, t) for t in known):
        return [f"argument {what} should be {_type_name(schema, root)}, not {_show(value)}"]
    pattern = schema.get("pattern")
    if isinstance(value, str) and isinstance(pattern, str) and not find_references(value) and not re.search(pattern, value):
        about = f" ({schema['description']})" if schema.get("description") else ""
        return [f"argument {what} should match {pattern}{about}, not {_show(value)}; write such a value or refer to the step that returns one"]
    problems = []
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for j, item in enumerate(value):
            problems += _type_problems(item, schema["items"], root, f"{what}[{j}]")
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        for key, item in value.items():
            if key in schema["properties"]:
                problems += _type_problems(item, schema["properties"][key], root, f"{what}.{key}")
    return problems


def _fits(value: Any, type_name: str) -> bool:
    # bool is an int in Python but not in JSON; 3.0 is a JSON integer.
    if isinstance(value, bool):
        return type_name == "boolean"
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PYTHON_TYPES[type_name])


def _type_name(schema: dict[str, Any], root: dict[str, Any]) -> str:
    schema = _deref(schema, root)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return " or ".join(_type_name(a, root) for a in alternatives)
    types = schema.get("type")
    if isinstance(types, list):
        return " or ".join(_ARTICLE.get(t, f"a {t}") for t in types)
    if isinstance(types, str):
        return _ARTICLE.get(types, f"a {types}")
    return "any value"


def _show(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    kind = {str: "the string", bool: "the boolean", int: "the integer", float: "the number", list: "the list", dict: "the object"}
    return f"{kind.get(type(value), 'the value')} {shown}"


def _references(i: int, step: Step, plan: Plan, by_name: Mapping[str, PlanSource]) -> list[str]:
    """References name an earlier step, not this one or a later one, and fields its output has."""
    who = _who(i, step) if not step.is_result else RESULT
    position = {s.label: j for j, s in reversed(list(enumerate(plan.steps))) if s.label}
    problems = []
    for ref in find_references(step.arguments):
        j = position.get(ref.label)
        if ref.label == step.label:
            problems.append(f"{who} refers to its own output ({ref.text}); a step may only use the outputs of earlier steps")
        elif j is None or plan.steps[j].is_result:
            earlier = ", ".join(s.label for s in plan.steps[:i] if s.label and not s.is_result) or "none"
            problems.append(f"{who} refers to {ref.text}, but no step is labelled {ref.label}; earlier labels: {earlier}")
        elif j > i:
            problems.append(f"{who} refers to {ref.text}, which comes later; a step may only use the outputs of earlier steps")
        else:
            source = by_name.get(plan.steps[j].name)
            if source is not None and source.output is not None:
                problem = path_problem(ref, source)
                if problem:
                    problems.append(f"{who} refers to {ref.text}, but {problem}")
    return problems


def path_problem(ref: Reference, source: PlanSource) -> str | None:
    """Why `ref.path` does not exist in the declared output schema of `source`, else None."""
    root = source.output or {}
    schema, here = root, ref.label
    for segment in ref.path:
        schema = _deref(schema, root)
        kind = schema.get("type")
        if kind == "array":
            schema = schema["items"] if isinstance(schema.get("items"), dict) else {}
            if not segment.lstrip("-").isdigit():  # a field of every item
                schema = _deref(schema, root)
                properties = schema.get("properties") or {}
                if properties and segment not in properties and not schema.get("additionalProperties"):
                    return f"the items of {here} (from {source.name}) have no field {segment!r}; their fields: {', '.join(properties)}"
                schema = properties.get(segment, {})
        elif kind == "object" or "properties" in schema:
            properties = schema.get("properties") or {}
            if segment in properties:
                schema = properties[segment]
            elif properties and not schema.get("additionalProperties"):
                return f"{here} (from {source.name}) has no field {segment!r}; its fields: {', '.join(properties)}"
            else:
                return None
        elif kind in ("string", "integer", "number", "boolean"):
            return f"{here} (from {source.name}) is {_type_name(schema, root)}, which has no field {segment!r}"
        else:
            return None  # the shape below this point is not declared
        here = f"{here}.{segment}"
    return None


def _cycles(plan: Plan) -> list[str]:
    """One problem per group of steps that reference each other in a loop (Tarjan's strongly connected components)."""
    edges = {s.label: sorted({r.label for r in find_references(s.arguments)} - {s.label}) for s in plan.calls if s.label}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    problems: list[str] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                order = [s.label for s in plan.calls if s.label in group]
                problems.append(f"steps {', '.join(order)} depend on each other in a cycle; each step may only use the outputs of earlier steps")

    for node in edges:
        if node not in index:
            visit(node)
    return problems
