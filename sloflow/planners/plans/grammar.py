"""The JSON schema of a whole plan, for grammar-constrained generation (llama.cpp's `LlamaGrammar.from_json_schema`).

Only constructs llama.cpp's converter handles are used: type, properties, required, enum, const,
anyOf, items, additionalProperties and string patterns; no `$ref`. The schema cannot say "the last
step is var_result"; `validate_plan` checks that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sloflow.planners.plans.catalog import PlanSource, plan_sources
from sloflow.planners.plans.plan import RESULT

LABEL_PATTERN = r"^var[1-9][0-9]*$"
# A whole reference, as the planner writes it: `$var1$`, `$var1.items.0.id$`. Literal `$` and `.` are
# written as classes: llama.cpp's converter copies `\$` into the grammar, which llama.cpp rejects.
REFERENCE_PATTERN = r"^[$]var[1-9][0-9]*([.][A-Za-z0-9_]+)*[$]$"
_REFERENCE = {"type": "string", "pattern": REFERENCE_PATTERN}
_SCALARS = ("integer", "number", "boolean")
# Any JSON value: llama.cpp reads an empty schema as "an object", not as "anything".
_ANY = {"type": ["string", "number", "boolean", "array", "object", "null"]}


def plan_json_schema(sources: Iterable[Any], per_source_arguments: bool = True, max_steps: int | None = None) -> dict[str, Any]:
    """A JSON list of steps: each a call of a known source (its own argument schema if `per_source_arguments`), or var_result."""
    known = plan_sources(sources)
    if per_source_arguments:
        calls = [_call_schema({"const": s.name}, _arguments_schema(s)) for s in known]
    else:
        calls = [_call_schema({"type": "string", "enum": [s.name for s in known]}, {"type": "object"})] if known else []
    result = {
        "type": "object",
        "properties": {
            "name": {"const": RESULT},
            # Every var_result value in the NESTFUL data is a whole reference.
            "arguments": {"type": "object", "additionalProperties": _REFERENCE},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {"type": "array", "items": {"anyOf": [*calls, result]}, "minItems": 1}
    if max_steps is not None:
        schema["maxItems"] = max_steps + 1
    return schema


def _call_schema(name: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    # llama.cpp emits properties in this order: the label first, so the model has written a step's
    # own label before its arguments (NESTFUL's data puts it last; the planner referred to it then).
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "pattern": LABEL_PATTERN}, "name": name, "arguments": arguments},
        "required": ["label", "name", "arguments"],
        "additionalProperties": False,
    }


def _arguments_schema(source: PlanSource) -> dict[str, Any]:
    root = source.parameters
    properties = {name: _value_schema(p, root) for name, p in (root.get("properties") or {}).items()}
    return {"type": "object", "properties": properties, "required": list(root.get("required") or []), "additionalProperties": False}


def _value_schema(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """An argument's schema, simplified, that also admits a whole reference where the type is not a string."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = (root.get("$defs") or {}).get(ref.rsplit("/", 1)[1], {})
    if depth > 3:  # deep nesting only bloats the grammar; validation checks the rest
        return _ANY
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        simple = [_value_schema(a, root, depth + 1) for a in alternatives]
        return {"anyOf": simple if _REFERENCE in simple or {"type": "string"} in simple else [*simple, _REFERENCE]}
    if "enum" in schema:
        return {"anyOf": [{"enum": list(schema["enum"])}, _REFERENCE]}
    kind = schema.get("type")
    if kind == "string":
        # A reference is a string too; an id with a known form is that form or a reference
        # (a name where a user id belongs cannot be written).
        pattern = schema.get("pattern")
        return {"anyOf": [{"type": "string", "pattern": pattern}, _REFERENCE]} if _anchored(pattern) else {"type": "string"}
    if kind in _SCALARS or kind == "null":
        return {"anyOf": [{"type": kind}, _REFERENCE]}
    if kind == "array":
        items = schema.get("items")
        # Without a known item type, a plain "array" (llama.cpp fails on empty `items`).
        array = {"type": "array", "items": _value_schema(items, root, depth + 1)} if isinstance(items, dict) and items else {"type": "array"}
        return {"anyOf": [array, _REFERENCE]}
    if kind == "object":
        return {"anyOf": [{"type": "object"}, _REFERENCE]}
    return _ANY


def _anchored(pattern: Any) -> bool:
    """A pattern llama.cpp's converter takes: anchored at both ends, no escapes it would copy as they are."""
    return isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$") and "\\" not in pattern


FINISH = "finish"


def action_json_schema(sources: Iterable[Any], thought_chars: int = 300) -> dict[str, Any]:
    """One ReAct step: a short thought, then a call of a known source with its arguments, or `finish` with the answer."""
    thought = {"type": "string", "maxLength": thought_chars}

    def step(name: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"thought": thought, "name": name, "arguments": arguments},
            "required": ["thought", "name", "arguments"],
            "additionalProperties": False,
        }

    answer = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": False}
    return {"anyOf": [*(step({"const": s.name}, _arguments_schema(s)) for s in plan_sources(sources)), step({"const": FINISH}, answer)]}
