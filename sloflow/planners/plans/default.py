"""The safe default plan: search every document index with the question itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sloflow.planners.plans.catalog import plan_sources
from sloflow.planners.plans.plan import RESULT, Plan, Step


def default_plan(question: str, sources: Iterable[Any], k: int = 5) -> Plan:
    """One search per index source with the question as the query, all independent, all in var_result."""
    indexes = [s for s in plan_sources(sources) if s.kind == "index"]
    steps = [search_step(s.name, question, f"var{i}", k) for i, s in enumerate(indexes, 1)]
    result = {s.name: f"${step.label}$" for s, step in zip(indexes, steps)}
    return Plan(steps=[*steps, Step(name=RESULT, arguments=result)])


def search_step(index: str, question: str, label: str, k: int = 5) -> Step:
    """A search of `index` with the question itself as the query."""
    return Step(name=index, arguments={"query": question.strip(), "k": k}, label=label)
