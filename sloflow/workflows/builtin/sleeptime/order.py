"""The order of the learn queue: the context most likely to be asked about next is learned first.

A pure function of the pending passes and the time, like the scheduler's policies. Likelihood is a
sum of three terms in the same unit, "about one question soon":
- each recent question on the context, halving every `QUESTION_HALF_LIFE_S` (asked again soon);
- the context's freshness, 1 when just submitted, halving every `AGE_HALF_LIFE_S` (a context is
  usually asked about soon after it is submitted, rarely after it has sat unasked for days);
- the `priority` given at submission (0-10), as that many recent questions.
Ties (equal likelihood) go to the context submitted first.

Tenants take turns, so one tenant's many (or many likely) contexts cannot starve another's: the
tenant whose last pass started longest ago (or never) goes first, and each tenant's own contexts
go in the order above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sloflow.workflows.contexts import PendingLearn

QUESTION_HALF_LIFE_S = 3600.0
AGE_HALF_LIFE_S = 86400.0


def likelihood(job: PendingLearn, now: float) -> float:
    """How likely the context is to be asked about soon, in expected questions (see the module header)."""
    recent = sum(0.5 ** (max(now - t, 0.0) / QUESTION_HALF_LIFE_S) for t in job.asked_at)
    fresh = 0.5 ** (max(now - job.created_at, 0.0) / AGE_HALF_LIFE_S)
    return job.priority + recent + fresh


def learn_order(jobs: Iterable[PendingLearn], now: float, last_started: Mapping[str, float] | None = None) -> list[PendingLearn]:
    """The pending passes, the one to start first first: tenants in turn (`last_started`: tenant -> time), each by likelihood."""
    own: dict[str, list[PendingLearn]] = {}
    for job in sorted(jobs, key=lambda j: (-likelihood(j, now), j.created_at)):
        own.setdefault(job.tenant, []).append(job)
    started = last_started or {}
    # Never-served tenants first, then the longest-waiting; among equals, the one with the likeliest context.
    turns = sorted(own.values(), key=lambda mine: started.get(mine[0].tenant, float("-inf")))
    return [mine[i] for i in range(max(map(len, turns), default=0)) for mine in turns if i < len(mine)]
