"""Stopping a plan while it is generated, once the rest of it would cost decode time for nothing.

The planner streams its plan and hands each growing text to `close_plan`; once that returns a
plan, generation stops there and the returned text is read as the generation.

- `close_at_repeat`: a greedy small model that starts enumerating a list's items one step at a time
  (or repeats a step) does it until the step limit; one fan-out step already covers the list.
- `close_at_result`: once the model opens the final `var_result` step, every call is written. Its
  arguments (about a fifth of a retail plan's tokens) only list the calls' outputs, so the plan is
  closed with a `var_result` over every call, which is what the answer is given when a plan's
  `var_result` names none. No score reads `var_result` (its keys are free names).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sloflow.errors import SloflowError
from sloflow.planners.plans.fanout import collapse_enumerations
from sloflow.planners.plans.plan import RESULT, parse_plan, whole_outputs

_RESULT_OPENED = re.compile(r'"name"\s*:\s*"' + RESULT + '"')


def close_plan(text: str) -> str | None:
    """The plan generated so far, closed, once either early close applies; None while generation should go on."""
    return close_at_repeat(text) or close_at_result(text)


def close_at_repeat(text: str) -> str | None:
    """The plan generated so far, closed after its last whole step, once that step repeats an earlier
    one or enumerates the next item of a list; None while it does not (generation goes on)."""
    if not text.rstrip().endswith("}"):  # called per token: parse only when a step may just have closed
        return None
    steps = _whole_steps(text)
    if len(steps) < 2:
        return None
    try:
        _, folded = collapse_enumerations(parse_plan(steps))
    except SloflowError:
        return None  # not steps yet: validation will say what is wrong
    return json.dumps(steps, ensure_ascii=False) if folded else None


def close_at_result(text: str) -> str | None:
    """The calls generated so far and a `var_result` over every one of them, once the model has
    begun writing `var_result`; None before (or when no whole call precedes it)."""
    if _RESULT_OPENED.search(text) is None:
        return None
    calls = [s for s in _whole_steps(text) if isinstance(s, dict) and s.get("name") != RESULT]
    labels = [s["label"] for s in calls if isinstance(s.get("label"), str)]
    if not calls or len(labels) != len(calls):
        return None  # nothing to answer from, or unlabelled calls: let the model finish and validation speak
    return json.dumps([*calls, {"name": RESULT, "arguments": whole_outputs(labels)}], ensure_ascii=False)


def _whole_steps(text: str) -> list[Any]:
    """The complete JSON objects at the start of a JSON list that is still being written."""
    decoder = json.JSONDecoder()
    i = text.find("[") + 1
    steps: list[Any] = []
    if i == 0:
        return steps
    while True:
        while i < len(text) and text[i] in " \t\n\r,":
            i += 1
        try:
            step, i = decoder.raw_decode(text, i)
        except ValueError:
            return steps
        steps.append(step)
