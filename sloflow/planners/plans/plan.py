"""Retrieval plans in the NESTFUL convention: labelled steps, `$varN.field$` references, a final `var_result`.

A plan is a JSON list of steps `{"label": "var1", "name": source, "arguments": {...}}`; an
argument may reference an earlier step's output. The last step `{"name": "var_result",
"arguments": {"hits": "$var1$"}}` names what the answer needs; as in the NESTFUL gold data it has
no label of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import count
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from sloflow.errors import InvalidRequest

RESULT = "var_result"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def whole_outputs(labels: Iterable[str | None]) -> dict[str, str]:
    """`var_result` arguments naming each step's whole output, keyed by the step's label."""
    return {str(label): f"${label}$" for label in labels}


def free_label(taken: set[str]) -> str:
    """The first `varN` not in `taken`, added to it: the label of a step put into a plan."""
    label = next(f"var{n}" for n in count(1) if f"var{n}" not in taken)
    taken.add(label)
    return label


class Step(BaseModel):
    """One call: `name` is the source, `arguments` may hold references, `label` names the output."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @model_validator(mode="after")
    def _result_label(self) -> Step:
        # The gold data leaves var_result unlabelled; one label for it keeps the rest of the code simple.
        if self.name == RESULT and self.label is None:
            self.label = RESULT
        return self

    @property
    def is_result(self) -> bool:
        """Whether this is the final `var_result` step."""
        return self.name == RESULT

    def to_nestful(self) -> dict[str, Any]:
        """The step as the NESTFUL data writes it (var_result without a label)."""
        # The label first: a planner that has written it knows which labels its arguments may not use.
        out: dict[str, Any] = {}
        if self.label is not None and not (self.is_result and self.label == RESULT):
            out["label"] = self.label
        return out | {"name": self.name, "arguments": self.arguments}


class Plan(BaseModel):
    """The steps in the order the planner wrote them; the last should be `var_result`."""

    steps: list[Step]

    @property
    def calls(self) -> list[Step]:
        """The steps that call a source (all but `var_result`)."""
        return [s for s in self.steps if not s.is_result]

    @property
    def result(self) -> Step | None:
        """The final `var_result` step, if the plan ends with one."""
        return self.steps[-1] if self.steps and self.steps[-1].is_result else None

    def with_calls(self, added: list[Step], result: dict[str, Any]) -> Plan:
        """This plan's calls, then `added`, under its `var_result` (or one over every call's whole
        output, when it has none) extended by `result`."""
        kept = self.result.arguments if self.result is not None else whole_outputs(s.label for s in self.calls)
        return Plan(steps=[*self.calls, *added, Step(name=RESULT, arguments={**kept, **result})])

    def to_nestful(self) -> list[dict[str, Any]]:
        """The plan as a JSON-ready list of steps, in the NESTFUL form."""
        return [s.to_nestful() for s in self.steps]

    def to_json(self) -> str:
        """The plan as compact JSON text (what a planner writes)."""
        return json.dumps(self.to_nestful(), ensure_ascii=False)


@dataclass(frozen=True)
class PlanExample:
    """A request, the plan that served it, and its similarity to the request at hand (1.0 if not looked up)."""

    request: str
    plan: Plan
    similarity: float = 1.0


def parse_plan(raw: Plan | str | list[Any] | dict[str, Any]) -> Plan:
    """A plan from model output (JSON text, maybe fenced), a list of steps or {"steps": [...]}; InvalidRequest if malformed."""
    if isinstance(raw, Plan):
        return raw
    data: Any = raw
    if isinstance(raw, str):
        data = _load_json(raw)
    if isinstance(data, dict):
        # {"steps": [...]} is our own dump; {"output": [...]} a NESTFUL record.
        data = data.get("steps", data.get("output", data))
    if not isinstance(data, list):
        raise InvalidRequest("the plan must be a JSON list of steps like [{\"label\": \"var1\", \"name\": ..., \"arguments\": {...}}, ...]")
    try:
        return Plan(steps=data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]  # ("steps", index, field...)
        where = f"step {loc[1] + 1}" if len(loc) > 1 and isinstance(loc[1], int) else "the top level"
        field = ".".join(str(p) for p in loc[2:])
        where += f", field '{field}'" if field else ""
        raise InvalidRequest(f"the plan is malformed at {where}: {first['msg']}") from None


def _load_json(text: str) -> Any:
    fenced = _FENCE.search(text)
    text = (fenced.group(1) if fenced else text).strip()
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        raise InvalidRequest("the plan is not JSON: no list of steps found")
    try:
        # Small models add prose after the JSON: read one value and ignore the rest.
        value, _ = json.JSONDecoder().raw_decode(text, min(starts))
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the plan is not valid JSON: {exc.msg} at character {exc.pos}") from None
    return value
