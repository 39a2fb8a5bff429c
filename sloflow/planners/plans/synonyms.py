"""Between sources that do the same job, the one the question names.

Tool catalogues repeat themselves (`find_song_lyrics` and `get_song_lyrics`, same arguments, same
output), and a small planner picks between such twins by chance. Two sources do the same job for a
step when both declare the same output fields and the step's arguments fit both (every argument
known, every required one given); the question's own wording then decides: the source whose name
has more of the question's words is the one meant ("find the lyrics of ..."). Ties keep the
planner's choice.
"""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import Plan, Step
from sloflow.planners.plans.wording import stems


def prefer_named_sources(plan: Plan, question: str, known: list[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan with each step's source swapped for a twin the question names more closely, and what changed."""
    asked = set(stems(question))
    by_name = {s.name: s for s in known}
    changes: list[str] = []
    steps: list[Step] = []
    for step in plan.steps:
        source = by_name.get(step.name)
        if source is not None and not step.is_result:
            twins = [s for s in known if s.name != source.name and _same_job(source, s, step)]
            best = max([source, *twins], key=lambda s: _named(s, asked))  # the first of equals: the planner's
            if best is not source:
                changes.append(f"{step.label} {source.name} became {best.name}, which does the same job and is what the question calls it")
                step = step.model_copy(update={"name": best.name})
        steps.append(step)
    return (Plan(steps=steps), changes) if changes else (plan, [])


def _same_job(source: PlanSource, twin: PlanSource, step: Step) -> bool:
    """Both declare the same output fields, and the step's arguments fit the twin."""
    outputs = [set(((s.output or {}).get("properties") or {})) for s in (source, twin)]
    if not outputs[0] or outputs[0] != outputs[1]:
        return False
    properties = set(twin.parameters.get("properties") or {})
    required = set(twin.parameters.get("required") or [])
    return set(step.arguments) <= properties and required <= set(step.arguments)


def _named(source: PlanSource, asked: set[str]) -> float:
    """The share of the words of the source's name that the question uses."""
    words = stems(source.name)
    return sum(w in asked for w in words) / len(words) if words else 0.0
