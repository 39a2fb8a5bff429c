"""Tuning by simulation: pick a policy parameter on some seeds, report the choice on held-out seeds.

HEXGEN's alpha is tuned per trace, rate and cluster (grid 0.0..1.0 step 0.1); our default's only
choices are its dispatch (least harm or plain slack-aware finish), whether to triage and whether to
re-dispatch, so its "grid" is those variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.sim.experiment import Workload, simulate

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
OUR_VARIANTS = (
    "least-harm+triaged-edf+redispatch",
    "least-harm+triaged-edf",
    "slack-eft+triaged-edf+redispatch",
    "slack-eft+triaged-edf",
    "slack-eft+least-slack+redispatch",
    "slack-eft+least-slack",
)


@dataclass(frozen=True)
class Choice:
    """The chosen setting, its attainment on the tuning seeds and on held-out seeds."""

    scheduler: str
    alpha: float
    tuned_attainment: float
    held_out_attainment: float
    grid: dict[str, float]


def _attainment(
    workers: Sequence[tuple[str, WorkerProfile]], scheduler: str, workload: Workload, rate: float, seeds: Sequence[int], alpha: float,
    contention: dict[str, float] | None = None,
) -> float:
    return sum(simulate(workers, scheduler, workload, rate, s, alpha=alpha, contention=contention).attainment for s in seeds) / len(seeds)


def tune_alpha(
    workers: Sequence[tuple[str, WorkerProfile]],
    workload: Workload,
    rate: float,
    seeds: Sequence[int],
    held_out: Sequence[int],
    *,
    scheduler: str = "hexgen+least-slack",
    grid: Sequence[float] = ALPHAS,
    contention: dict[str, float] | None = None,
) -> Choice:
    """HEXGEN's alpha with the best mean attainment at `rate` on `seeds` (ties: the smaller alpha)."""
    scores = {a: _attainment(workers, scheduler, workload, rate, seeds, a, contention) for a in grid}
    best = max(grid, key=lambda a: (scores[a], -a))
    held = _attainment(workers, scheduler, workload, rate, held_out, best, contention)
    return Choice(scheduler, best, scores[best], held, {str(a): s for a, s in scores.items()})


def tune_variant(
    workers: Sequence[tuple[str, WorkerProfile]],
    workload: Workload,
    rate: float,
    seeds: Sequence[int],
    held_out: Sequence[int],
    variants: Sequence[str] = OUR_VARIANTS,
) -> Choice:
    """The variant of our default with the best mean attainment at `rate` on `seeds`."""
    scores = {v: _attainment(workers, v, workload, rate, seeds, 0.5) for v in variants}
    best = max(variants, key=lambda v: scores[v])
    return Choice(best, 0.5, scores[best], _attainment(workers, best, workload, rate, held_out, 0.5), scores)
