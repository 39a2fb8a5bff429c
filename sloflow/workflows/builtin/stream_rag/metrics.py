"""Stream-RAG series on Ray's metrics export: decisions as `sloflow_workflow_outcomes_total{workflow="stream_rag"}`
(speculation_fired / _cancelled, retrieval_reused / _fresh, prefill_started / _cancelled / _hit) and
`sloflow_stream_rag_first_token_seconds`, the time from final input to the first answer token.
Outside a Ray process nothing is recorded; the run's output says the same.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sloflow.workflows.outcomes import count_outcome

WORKFLOW = "stream_rag"
_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60]


def count(outcome: str) -> None:
    """One more `outcome` of the stream_rag workflow."""
    count_outcome(WORKFLOW, outcome)


@cache
def _first_token() -> Any:
    from ray.util import metrics

    return metrics.Histogram(
        "sloflow_stream_rag_first_token_seconds", "seconds from a turn's final input to its first answer token", _BUCKETS, tag_keys=("speculate",)
    )


def first_token(seconds: float, speculate: bool) -> None:
    """Record a turn's time from final input to first answer token."""
    import ray

    if ray.is_initialized():
        _first_token().observe(seconds, tags={"speculate": str(speculate).lower()})
