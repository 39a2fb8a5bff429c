"""REAPER-style retrieval planning without a model: plans, validation, a DAG executor, plan memory, prompts.

A planner writes the whole plan in one generation (`prompts`, constrained by `grammar`);
`closing` stops its generation where the rest would not change what runs; `validate_plan`
checks it, one repair follows, else `default_plan`; `execute_plan` runs it.
`PlanMemory` (in `memory`, not imported here: it loads FAISS) supplies past plans as examples.
"""

from sloflow.planners.plans.catalog import PlanSource, nestful_sources, plan_sources
from sloflow.planners.plans.default import default_plan
from sloflow.planners.plans.execute import PlanRun, StepRecord, execute_plan
from sloflow.planners.plans.grammar import plan_json_schema
from sloflow.planners.plans.plan import RESULT, Plan, PlanExample, Step, parse_plan
from sloflow.planners.plans.prompts import planner_prompt, repair_prompt
from sloflow.planners.plans.references import UnresolvedReference, find_references, resolve
from sloflow.planners.plans.validate import Validation, validate_plan

__all__ = [
    "RESULT",
    "Plan",
    "PlanExample",
    "PlanRun",
    "PlanSource",
    "Step",
    "StepRecord",
    "UnresolvedReference",
    "Validation",
    "default_plan",
    "execute_plan",
    "find_references",
    "nestful_sources",
    "parse_plan",
    "plan_json_schema",
    "plan_sources",
    "planner_prompt",
    "repair_prompt",
    "resolve",
    "validate_plan",
]
