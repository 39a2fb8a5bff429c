"""Prompts of the retrieval planner: the whole plan in one generation, and one repair with the validator's problems.

The repair continues the planner's conversation (the plan as the model's turn, then the problems),
so a worker that served the plan prefills only the problems; examples, which differ per question,
come after the instructions and the sources.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sloflow.llm.types import Message
from sloflow.planners.plans.catalog import PlanSource, plan_sources
from sloflow.planners.plans.plan import Plan, PlanExample

INSTRUCTIONS = """\
You plan how to gather the evidence for a question, in one go: which sources to call, in what order, with which arguments.
Answer with a JSON list of steps and nothing else.
- A call is {"label": "var1", "name": "<source>", "arguments": {...}}; label the calls var1, var2, ... in order.
- An argument may use the output of an earlier step: "$var1$" is the whole output, "$var1.field$" one field, "$var1.0.text$" a field of its first item.
- A reference may also stand inside a longer string: "reviews of $var1.name$".
- A field of a list is that field of every item: "$var1.items.id$" is the id of each item; given where one value is expected, the step runs once per item. Write an index ("$var1.items.0.id$") only when the question is about that one item.
- Copy ids, names and numbers the question gives into the arguments as they are. Never make up an id: one the question does not give comes from an earlier step that looks it up.
- Steps that do not use each other's outputs run at the same time; a step may only use the outputs of steps before it.
- The last step is {"name": "var_result", "arguments": {"<what>": "$var1$", ...}}: the outputs the answer needs.
- Call only the sources below, with the arguments they take."""

# Other, made-up sources, so the examples teach the convention and not an answer for these sources.
BUILTIN_EXAMPLES_NOTE = (
    "Examples (with other sources: sql:store runs a SELECT on table orders(id, product, total), "
    "manuals and reviews search documents, get_customer(email) returns {id, name, orders}, "
    "get_order(order_id) returns {status, items: [{sku, name}]}, get_item(sku) returns {name, colours, stock}):"
)
BUILTIN_EXAMPLES: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "What does the manual say about descaling the product of order 1042?",
        [
            {"label": "var1", "name": "sql:store", "arguments": {"sql": "SELECT product FROM orders WHERE id = 1042"}},
            {"label": "var2", "name": "manuals", "arguments": {"query": "descaling $var1.rows.0.0$", "k": 3}},
            {"name": "var_result", "arguments": {"order": "$var1$", "manual": "$var2$"}},
        ],
    ),
    (
        "Is the X200 kettle quiet, and how long is its warranty?",
        [
            {"label": "var1", "name": "reviews", "arguments": {"query": "X200 kettle noise"}},
            {"label": "var2", "name": "manuals", "arguments": {"query": "X200 kettle warranty period"}},
            {"name": "var_result", "arguments": {"noise": "$var1$", "warranty": "$var2$"}},
        ],
    ),
    (
        "I am Ana Diaz, ana@example.com. Order #A17 came broken: what is in it, and how do I send it back?",
        [
            {"label": "var1", "name": "get_customer", "arguments": {"email": "ana@example.com"}},
            {"label": "var2", "name": "get_order", "arguments": {"order_id": "#A17"}},
            {"label": "var3", "name": "get_item", "arguments": {"sku": "$var2.items.sku$"}},
            {"label": "var4", "name": "manuals", "arguments": {"query": "returning a broken item", "k": 3}},
            {"name": "var_result", "arguments": {"customer": "$var1$", "order": "$var2$", "items": "$var3$", "returns": "$var4$"}},
        ],
    ),
    (
        "I am ana@example.com: in which colours do the items of my last order come?",
        [
            {"label": "var1", "name": "get_customer", "arguments": {"email": "ana@example.com"}},
            {"label": "var2", "name": "get_order", "arguments": {"order_id": "$var1.orders.-1$"}},
            {"label": "var3", "name": "get_item", "arguments": {"sku": "$var2.items.sku$"}},
            {"name": "var_result", "arguments": {"order": "$var2$", "items": "$var3$"}},
        ],
    ),
]


def planner_prompt(question: str, sources: Iterable[Any], examples: Sequence[PlanExample] = ()) -> list[Message]:
    """Ask for the whole plan; `examples` (from plan memory) replace the built-in ones when given."""
    return [Message(role="system", content=_system(plan_sources(sources), examples)), Message(role="user", content=f"Question: {question.strip()}")]


def repair_prompt(
    question: str, sources: Iterable[Any], previous: Plan | str, problems: Sequence[str], examples: Sequence[PlanExample] = ()
) -> list[Message]:
    """Ask once more in the same conversation: the plan as the model's turn, then what the validator found wrong.

    The messages extend the planner prompt, so a worker that kept the plan's conversation in its
    prompt cache prefills only the problems.
    """
    text = previous.to_json() if isinstance(previous, Plan) else previous.strip()
    found = "\n".join(f"- {p}" for p in problems)
    user = f"That plan has these problems:\n{found}\n\nWrite the whole corrected plan as a JSON list of steps."
    return [*planner_prompt(question, sources, examples), Message(role="assistant", content=text), Message(role="user", content=user)]


def _system(sources: list[PlanSource], examples: Sequence[PlanExample]) -> str:
    lines = [INSTRUCTIONS, "", "Sources:", *(describe_source(s) for s in sources), ""]
    if examples:
        # Plans from memory carry their own question's ids and names; a small planner copies them.
        lines.append(
            "Plans that served similar earlier questions. Their ids, names and values belong to those questions: "
            "take the ones this question gives, and change the steps where this question differs:"
        )
        lines += [f"Question: {e.request}\nPlan: {e.plan.to_json()}" for e in examples]
    else:
        lines.append(BUILTIN_EXAMPLES_NOTE)
        lines += [f"Question: {q}\nPlan: {json.dumps(plan, ensure_ascii=False)}" for q, plan in BUILTIN_EXAMPLES]
    return "\n".join(lines)


def describe_source(source: PlanSource) -> str:
    """One prompt line: name, description, arguments (type, required, description) and output shape when known."""
    properties: dict[str, Any] = source.parameters.get("properties") or {}
    required = set(source.parameters.get("required") or [])
    args = []
    for name, schema in properties.items():
        flags = ", required" if name in required else ""
        about = f": {schema['description']}" if schema.get("description") else ""
        args.append(f"{name} ({shape(schema, source.parameters)}{flags}){about}")
    line = f"- {source.name}: {source.description.strip().rstrip('.')}. Arguments: {'; '.join(args) or 'none'}."
    if source.output is not None:
        line += f" Output: {shape(source.output, source.output)}."
    return line


def shape(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> str:
    """A compact JSON-like picture of a schema: `{columns: [string], rows: [[...]]}`."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = (root.get("$defs") or {}).get(ref.rsplit("/", 1)[1], {})
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return " or ".join(shape(a, root, depth) for a in alternatives)
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"[{shape(items, root, depth + 1)}]" if isinstance(items, dict) and items and depth < 3 else "[...]"
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if not properties or depth >= 3:
            return "{...}"
        return "{" + ", ".join(f"{k}: {shape(v, root, depth + 1)}" for k, v in properties.items()) + "}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"
