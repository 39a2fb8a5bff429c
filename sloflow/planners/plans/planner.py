"""The retrieval planner: the whole plan in one constrained generation, one repair, then the sound
part of the plan (`prune`), and only if nothing of it can run, the default plan. Each attempt's
literal values of a declared form are first grounded in the question (`grounding`), its lookups
of values it already holds dropped (`lookups`) and its sources swapped for the twin the question
names (`synonyms`). A plan that leaves out an index the question speaks of also searches it
(`coverage`), and one that gets a list of ids no step reads also reads those records (`listed`).

`make_plan` takes any `llm` with the `ctx.llm.json` signature, so a workflow stage passes its
`ctx.llm` (the calls then carry the run's deadline) and a benchmark can pass a bare client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sloflow.errors import DeadlineExceeded, SloflowError
from sloflow.llm.types import Message
from sloflow.planners.plans.catalog import PlanSource, plan_sources
from sloflow.planners.plans.coverage import cover_asked_indexes
from sloflow.planners.plans.default import default_plan
from sloflow.planners.plans.closing import close_plan
from sloflow.planners.plans.fanout import collapse_enumerations
from sloflow.planners.plans.grammar import plan_json_schema
from sloflow.planners.plans.grounding import ground_values
from sloflow.planners.plans.listed import read_listed_records
from sloflow.planners.plans.lookups import drop_held_lookups
from sloflow.planners.plans.plan import Plan, PlanExample, parse_plan
from sloflow.planners.plans.prompts import planner_prompt, repair_prompt
from sloflow.planners.plans.prune import Pruned, prune_plan
from sloflow.planners.plans.synonyms import prefer_named_sources
from sloflow.planners.plans.validate import validate_plan

Outcome = Literal["valid", "repaired", "default"]
PLAN_TOKENS = 512  # room for about ten steps
PLAN_STEPS = 8  # calls in a plan at most: the grammar closes the list there (a step may run per item)


@dataclass
class Planned:
    """The plan to run, how it came about, the model's raw attempts, and notes for the run's output."""

    plan: Plan
    outcome: Outcome
    attempts: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prompt: list[Message] = field(default_factory=list)  # the planner's first prompt, for an answer to continue


async def make_plan(
    llm: Any,
    question: str,
    sources: Sequence[Any],
    examples: Sequence[PlanExample] = (),
    *,
    repair: bool = True,
    max_tokens: int = PLAN_TOKENS,
    model: str | None = None,
) -> Planned:
    """Plan in one generation; on a validation failure repair once (if `repair`), then run the sound
    part of the last plan (the calls that can run), else the default plan. Records a step lists by
    id that no step reads are read, and indexes the question speaks of and the plan leaves out are
    searched with the question."""
    known = plan_sources(sources)
    planned = await _make_plan(llm, question, known, examples, repair=repair, max_tokens=max_tokens, model=model)
    if planned.outcome != "default":  # the default plan searches every index already
        planned.plan, listed = read_listed_records(planned.plan, known)
        planned.plan, covered = cover_asked_indexes(planned.plan, question, known)
        planned.notes += [f"planning: {change}" for change in [*listed, *covered]]
    planned.prompt = planner_prompt(question, known, examples)
    return planned


async def _make_plan(
    llm: Any, question: str, known: list[PlanSource], examples: Sequence[PlanExample], *, repair: bool, max_tokens: int, model: str | None
) -> Planned:
    """`make_plan` without the prompt bookkeeping."""
    schema = plan_json_schema(known, max_steps=PLAN_STEPS)
    attempts: list[Any] = []
    candidates: list[tuple[Plan, dict[str, str]]] = []  # each attempt as read (item-by-item steps folded into one), and its unfounded values
    notes: list[str] = []
    previous: Any = None
    problems: list[str] = []
    runnable: list[tuple[Plan, dict[str, str]]] = []  # plans with argument problems only (and their unfounded values), best first
    for attempt in ("plan", "repair"):
        if attempt == "repair" and not repair:
            break
        messages = (
            planner_prompt(question, known, examples)
            if attempt == "plan"
            else repair_prompt(question, known, _text(previous), problems, examples)
        )
        try:
            previous = await llm.json(messages, schema=schema, max_tokens=max_tokens, model=model, cut=close_plan)
        except DeadlineExceeded:
            notes.append(f"planning: the deadline passed during the {attempt}; the default plan ran instead")
            return Planned(default_plan(question, known), "default", attempts, notes)
        except SloflowError as exc:
            previous, problems = None, [exc.message]
        attempts.append(previous)
        if previous is not None:
            previous = _folded(previous, notes)
            if isinstance(previous, Plan):
                previous, changed = _tidied(previous, question, known)
                notes += [f"planning: {change}" for change in changed]
            validation = validate_plan(previous, known)
            unfounded = unfounded_values(validation.plan, question, examples, known) if validation.plan is not None else {}
            if isinstance(previous, Plan):
                candidates.append((previous, unfounded))
            validation.problems += unfounded.values()
            validation.argument_problems += unfounded.values()
            if validation.ok and validation.plan is not None:
                outcome: Outcome = "valid" if attempt == "plan" else "repaired"
                calls = len(validation.plan.calls)
                if outcome == "repaired":
                    notes.append(f"planning: the first plan was invalid ({'; '.join(problems)[:300]}); the repaired plan of {calls} calls ran")
                else:
                    notes.append(f"planning: a valid plan of {calls} calls in one generation")
                return Planned(validation.plan, outcome, attempts, notes)
            problems = validation.problems
            rebuilt = _prune(previous, known, question, unfounded, notes) if repair else None
            # Nothing dropped means every unfounded value was replaced by what an earlier step finds.
            if rebuilt is not None and not rebuilt.dropped and validate_plan(rebuilt.plan, known).ok:
                # Every call is sound once references are re-pointed, skipped steps put in and
                # optional arguments left out, or only var_result was wrong: no need to ask again.
                notes.append(f"planning: the plan's calls were sound ({'; '.join(problems)[:300]}); it ran with {rebuilt.changes}")
                return Planned(rebuilt.plan, "repaired", attempts, notes)
            if validation.runnable and validation.plan is not None:
                runnable.insert(0, (validation.plan, unfounded))  # a repaired plan goes before the first
    if runnable and repair:
        # Only arguments are in doubt: the sources check them, and a refused call fails its own
        # branch of the plan, not the whole question. A value the question does not give is never
        # sent to a source: those steps (and the steps using them) are left out.
        plan, unfounded = runnable[0]
        clean = _prune(plan, known, question, unfounded, notes) if unfounded else None
        if clean is not None:
            what = f"without {', '.join(clean.dropped)}" if clean.dropped else f"with {clean.changes}"
            notes.append(f"planning: the plan still used values the question does not give ({'; '.join(unfounded.values())[:300]}); it ran {what}")
            return Planned(clean.plan, "repaired", attempts, notes)
        if unfounded:
            notes.append(f"planning: every call of the plan used values the question does not give ({'; '.join(unfounded.values())[:300]}); the default plan ran")
            return Planned(default_plan(question, known), "default", attempts, notes)
        notes.append(f"planning: the plan still has argument problems ({'; '.join(problems)[:300]}); it ran, the sources checking them")
        return Planned(plan, "repaired", attempts, notes)
    if repair:
        pruned = [p for p in (prune_plan(c, known, drop=u) for c, u in reversed(candidates)) if p is not None]
        if pruned:
            best = _grounded(max(pruned, key=lambda p: len(p.plan.calls)), question, known, notes)  # the repair first among equals
            kept = f"{len(best.plan.calls)} calls ran"
            kept += f" without {', '.join(best.dropped)} (they could not run, used a value the question does not give, or used a step that did)" if best.dropped else " under a rebuilt var_result"
            notes.append(f"planning: no valid plan ({'; '.join(problems)[:300]}); its sound part of {kept}")
            return Planned(best.plan, "repaired", attempts, notes)
    notes.append("planning: no valid plan (" + "; ".join(problems)[:300] + "); the default plan (every index searched) ran")
    return Planned(default_plan(question, known), "default", attempts, notes)


def unfounded_values(plan: Plan, question: str, examples: Sequence[PlanExample], known: Sequence[PlanSource] = ()) -> dict[str, str]:
    """Step label -> problem, for steps with a literal identifier the question does not give.

    Two kinds, both never sent to a source. An identifier-form argument (its schema declares a
    `pattern`, like the retail demo's user and order ids) holding a literal this question does not
    contain was invented (`yusuf_rossi_19122` for a user the question names by name and zip): it
    must come from the question or from a step that finds it. And a small planner copies the ids of
    the nearest stored plan (another customer's order number): a value with a digit in it (ids, zip
    codes, dates) is borrowed when it occurs in an example's request but not in this question.
    Other words are left alone: defaults like "metric" may rightly recur without being asked for.
    """
    asked = question.casefold()
    forms = {s.name: s.parameters.get("properties") or {} for s in known}
    problems: dict[str, str] = {}
    for step in plan.calls:
        for name, value in step.arguments.items():
            text = str(value).strip().casefold().lstrip("#")
            if step.label in problems or "$" in text or text in asked:
                continue
            if len(text) >= 4 and any(c.isdigit() for c in text) and any(text in e.request.casefold() for e in examples):
                problems[str(step.label)] = (
                    f"step {step.label} ({step.name}) uses {name}={value!r}, which comes from an example's question, not this one; "
                    "take the values this question gives, or the output of an earlier step"
                )
            elif isinstance(value, str) and "pattern" in forms.get(step.name, {}).get(name, {}):
                problems[str(step.label)] = (
                    f"step {step.label} ({step.name}) uses {name}={value!r}, which this question does not give; "
                    "take it from the question, or find it with an earlier step and refer to that step's output"
                )
    return problems


def _prune(plan: Any, known: list[PlanSource], question: str, unfounded: dict[str, str], notes: list[str]) -> Pruned | None:
    """`prune_plan`, with the steps it put in grounded in the question like the planner's own steps."""
    pruned = prune_plan(plan, known, drop=unfounded)
    return _grounded(pruned, question, known, notes) if pruned is not None else None


def _grounded(pruned: Pruned, question: str, known: list[PlanSource], notes: list[str]) -> Pruned:
    """`pruned` with the steps pruning put in grounded in the question (noted)."""
    if pruned.bridged:
        pruned.plan, grounded = ground_values(pruned.plan, question, known)
        notes += [f"planning: {change}" for change in grounded]
    return pruned


def _tidied(plan: Plan, question: str, known: list[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan with its values grounded in the question, lookups of values it already holds
    dropped, and each source swapped for a twin the question names more closely; what changed."""
    plan, grounded = ground_values(plan, question, known)
    plan, held = drop_held_lookups(plan, known)
    plan, named = prefer_named_sources(plan, question, known)
    return plan, [*grounded, *held, *named]


def _folded(raw: Any, notes: list[str]) -> Any:
    """The attempt as a Plan with item-by-item steps folded into one fan-out step; as it came if it is no plan."""
    try:
        plan = parse_plan(raw)
    except SloflowError:
        return raw  # validation words the problem
    plan, folded = collapse_enumerations(plan)
    if folded:
        notes.append(f"planning: steps {', '.join(folded)} repeated the step before them for the next item of a list; one step runs per item instead")
    return plan


def _text(previous: Any) -> Plan | str:
    if previous is None:
        return "(no plan: the answer was not JSON)"
    if isinstance(previous, (Plan, str)):
        return previous
    return json.dumps(previous, ensure_ascii=False)
