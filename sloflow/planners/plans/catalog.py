"""What a planner knows of a source: its name, description, argument schema and, when known, output schema.

`plan_sources` turns the entries of `SourceRegistry.catalog()` into `PlanSource`s (indexes and
databases have a known output shape); `nestful_sources` reads a NESTFUL tool spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_HIT = {
    "type": "object",
    "properties": {
        "chunk_id": {"type": "string"},
        "doc_id": {"type": "string"},
        "position": {"type": "integer"},
        "text": {"type": "string"},
        "score": {"type": "number"},
        "metadata": {"type": "object", "additionalProperties": True},
        "index": {"type": "string"},
        "store": {"type": "string"},
        "ranks": {"type": "object", "additionalProperties": True},
    },
}
# What `SourceRegistry.call` returns, as the executor hands it on (SearchHit / SqlResult as dicts).
HITS_OUTPUT: dict[str, Any] = {"type": "array", "items": _HIT, "description": "hits, best first"}
SQL_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "array"}},
        "sql": {"type": "string"},
        "truncated": {"type": "boolean"},
        "elapsed_ms": {"type": "number"},
    },
}
_KIND_OUTPUTS = {"index": HITS_OUTPUT, "schema": HITS_OUTPUT, "database": SQL_OUTPUT}


@dataclass(frozen=True)
class PlanSource:
    """A callable source as plans see it; `output` is the JSON schema of its result, None if unknown."""

    name: str
    description: str
    parameters: dict[str, Any]
    output: dict[str, Any] | None = None
    kind: str = "function"

    def returns_one(self, name: str) -> bool:
        """Whether this source returns one plain value that `name` names: `user_id` for a source
        `find_user_id_by_email` that returns "the user id" (words of `name` in its name or output's description)."""
        output = self.output or {}
        if output.get("type") not in ("string", "integer", "number", "boolean"):
            return False
        said = f"{self.name} {output.get('description', '')}".replace("_", " ").casefold()
        return name.replace("_", " ").casefold() in said


def plan_sources(sources: Iterable[Any], outputs: Mapping[str, dict[str, Any]] | None = None) -> list[PlanSource]:
    """PlanSources from `Source`s (or PlanSources, kept); `outputs` declares output schemas by source name."""
    outputs = outputs or {}
    out = []
    for s in sources:
        declared = outputs.get(s.name)
        if isinstance(s, PlanSource):
            out.append(s if declared is None else PlanSource(s.name, s.description, s.parameters, declared, s.kind))
            continue
        output = next((o for o in (declared, getattr(s, "output", None), _KIND_OUTPUTS.get(s.kind)) if o is not None), None)
        out.append(PlanSource(s.name, s.description, dict(s.parameters), output, s.kind))
    return out


def nestful_sources(spec: Iterable[Mapping[str, Any]]) -> list[PlanSource]:
    """PlanSources from a NESTFUL tool spec (`query_parameters` or `parameters` with `required` flags, `output_parameters`)."""
    seen: dict[str, PlanSource] = {}
    for tool in spec:
        if tool["name"] in seen:  # the spec repeats some tools verbatim
            continue
        params = tool.get("query_parameters", tool.get("parameters")) or {}
        properties = {name: {k: v for k, v in p.items() if k != "required"} for name, p in params.items()}
        required = [name for name, p in params.items() if p.get("required")]
        output = tool.get("output_parameters")
        seen[tool["name"]] = PlanSource(
            tool["name"],
            tool.get("description", ""),
            {"type": "object", "properties": properties, "required": required},
            {"type": "object", "properties": dict(output)} if output else None,
        )
    return list(seen.values())
