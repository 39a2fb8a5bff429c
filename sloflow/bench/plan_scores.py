"""Scores of a predicted plan against a gold plan, NESTFUL-style, on lists of `{"name", "arguments", "label"}` steps.

The `var_result` step is left out of every score: its keys are free names the gold data and a
planner choose differently. Per item:
- function F1: multiset overlap of the called source names;
- argument F1: multiset overlap of (source, argument name) pairs;
- sequence accuracy: the same sources in the same order;
- exact match: the same sources, argument names and normalised values, in order, after renumbering
  labels by order of appearance (so `var2` in one plan may be `var3` in the other).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

RESULT = "var_result"
_REF = re.compile(r"\$([A-Za-z_][\w]*)((?:\.[^$]*)?)\$")


def calls(plan: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The steps that call a source (all but var_result), in order."""
    return [s for s in plan if isinstance(s, Mapping) and s.get("name") != RESULT]


def f1(predicted: Iterable[Hashable], gold: Iterable[Hashable]) -> float:
    """F1 of two multisets; 1.0 when both are empty."""
    p, g = Counter(predicted), Counter(gold)
    if not p and not g:
        return 1.0
    overlap = sum((p & g).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def function_f1(predicted: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]]) -> float:
    return f1((s["name"] for s in calls(predicted)), (s["name"] for s in calls(gold)))


def argument_f1(predicted: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]]) -> float:
    def pairs(plan: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        return [(s["name"], a) for s in calls(plan) for a in (s.get("arguments") or {})]

    return f1(pairs(predicted), pairs(gold))


def same_sequence(predicted: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]]) -> bool:
    return [s["name"] for s in calls(predicted)] == [s["name"] for s in calls(gold)]


def exact_match(predicted: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]]) -> bool:
    return _normalised(predicted) == _normalised(gold)


def _normalised(plan: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    steps = calls(plan)
    renumber = {s.get("label"): f"var{i}" for i, s in enumerate(steps, 1) if s.get("label")}
    return [(s["name"], _value(s.get("arguments") or {}, renumber)) for s in steps]


def _value(value: Any, renumber: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _value(v, renumber)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_value(v, renumber) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    text = _REF.sub(lambda m: f"${renumber.get(m.group(1), m.group(1))}{m.group(2)}$", text)
    try:
        return float(text)  # "5" and 5 are the same argument
    except ValueError:
        return " ".join(text.lower().split())
