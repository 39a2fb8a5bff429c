"""A document index the question speaks of joins the plan as a search of the question.

A small planner sees "what is the status of order #W1001 and can I still return it?", plans the
order lookup, and forgets the return policy: the answer then guesses the rules. A search costs
milliseconds, so an index the plan leaves out is searched with the question itself when the
question uses a content word of the index's description ("return" in "the store's return,
exchange and cancellation policy"). The words every search index is described with ("search",
"documents") do not count.
"""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.default import search_step
from sloflow.planners.plans.plan import Plan, Step, free_label
from sloflow.planners.plans.wording import content_stems

_ANY_INDEX = content_stems("search find look up documents document texts passages index")
SEARCH_K = 3  # a few passages: the evidence is for the answer's prompt, about 1,000 tokens in all


def cover_asked_indexes(plan: Plan, question: str, known: list[PlanSource]) -> tuple[Plan, list[str]]:
    """The plan with a search of the question added for each index it leaves out that the question speaks of; what changed."""
    asked = content_stems(question)
    called = {s.name for s in plan.calls}
    taken = {s.label for s in plan.steps if s.label}
    added: list[Step] = []
    for source in known:
        shared = (content_stems(source.description) - _ANY_INDEX) & asked
        if source.kind != "index" or source.name in called or not shared:
            continue
        added.append(search_step(source.name, question, free_label(taken), SEARCH_K))
    if not added:
        return plan, []
    changes = [f"{s.label} searches {s.name} with the question, which speaks of what it holds" for s in added]
    return plan.with_calls(added, {s.name: f"${s.label}$" for s in added}), changes
