"""Counts of what workflows decided (plan valid / repaired / default, speculation reused...) as a Ray metric.

One series, `sloflow_workflow_outcomes_total{workflow, outcome}`, on Ray's metrics export (the
dashboard, Prometheus and `/metrics`). Outside a Ray process counting is skipped: the run's notes
say the same thing.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _counter() -> Any:
    from ray.util import metrics

    return metrics.Counter("sloflow_workflow_outcomes_total", "decisions workflows made, by workflow and outcome", tag_keys=("workflow", "outcome"))


def count_outcome(workflow: str, outcome: str) -> None:
    """Add one to the count of `outcome` in `workflow` (a no-op where Ray is not running)."""
    import ray

    if ray.is_initialized():
        _counter().inc(1, tags={"workflow": workflow, "outcome": outcome})
