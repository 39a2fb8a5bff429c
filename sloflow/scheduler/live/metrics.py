"""Scheduler metrics through `ray.util.metrics` (Ray dashboard, Prometheus export, `/metrics`).

Series (Ray prefixes them `ray_`): sloflow_queue_length and sloflow_queue_wait_seconds per worker,
sloflow_call_latency_seconds, sloflow_tokens_per_second, sloflow_calls_total and
sloflow_slo_attainment per workflow, sloflow_calls_served_total by workflow and priority (the
background work done on idle capacity), sloflow_redispatched_total by reason,
sloflow_llm_batches_total per worker and whether the batch also ran on a sibling's lent core. The Grafana
dashboard over them is `sloflow/api/ui/grafana-dashboard.json`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sloflow.llm.spare_cores import SpareCores
from sloflow.llm.types import Completion

_LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120]


@cache
def _series() -> dict[str, Any]:
    # Created once per process, on first use: ray.util.metrics needs a connected Ray worker.
    from ray.util import metrics as m

    return {
        "queue_length": m.Gauge("sloflow_queue_length", "calls waiting in a worker's local queue", tag_keys=("worker",)),
        "queue_wait": m.Histogram(
            "sloflow_queue_wait_seconds", "seconds a call waited in a worker's queue", _LATENCY_BUCKETS, tag_keys=("worker",)
        ),
        "tokens_per_s": m.Gauge("sloflow_tokens_per_second", "completion tokens per second of the last call", tag_keys=("worker",)),
        "latency": m.Histogram(
            "sloflow_call_latency_seconds",
            "seconds from dispatch to completion of a call",
            _LATENCY_BUCKETS,
            tag_keys=("worker", "workflow"),
        ),
        "calls": m.Counter("sloflow_calls_total", "calls finished, by workflow and whether they met their deadline", tag_keys=("workflow", "met")),
        "attainment": m.Gauge("sloflow_slo_attainment", "share of deadline calls that met their deadline", tag_keys=("workflow",)),
        "redispatched": m.Counter("sloflow_redispatched_total", "calls moved to another worker", tag_keys=("reason",)),
        "served": m.Counter("sloflow_calls_served_total", "calls answered, by workflow and priority", tag_keys=("workflow", "priority")),
        "batches": m.Counter(
            "sloflow_llm_batches_total", "llama.cpp batches (prompt chunks, decoded tokens), by whether they ran on lent cores too", tag_keys=("worker", "lent")
        ),
    }


class WorkerMetrics:
    """Metrics one worker reports."""

    def __init__(self, worker_id: str) -> None:
        self.tags = {"worker": worker_id}
        self._batches = (0, 0)  # (batches, lent ones) reported so far

    def batches(self, cores: SpareCores) -> None:
        """Report the batches computed since the last report, and how many of them ran on lent cores."""
        (done, done_lent), self._batches = self._batches, (cores.batches, cores.lent_batches)
        new = {"true": cores.lent_batches - done_lent, "false": cores.batches - done - (cores.lent_batches - done_lent)}
        for lent, n in new.items():
            if n:
                _series()["batches"].inc(n, tags={**self.tags, "lent": lent})

    def queue_length(self, n: int) -> None:
        _series()["queue_length"].set(n, tags=self.tags)

    def queue_wait(self, seconds: float) -> None:
        _series()["queue_wait"].observe(seconds, tags=self.tags)

    def served(self, completion: Completion, cores: SpareCores | None = None) -> None:
        if cores is not None:
            self.batches(cores)
        decode_s = completion.total_s - completion.ttft_s
        if completion.completion_tokens > 1 and decode_s > 0:
            _series()["tokens_per_s"].set((completion.completion_tokens - 1) / decode_s, tags=self.tags)


class DispatcherMetrics:
    """Metrics the dispatcher reports: call latency, SLO attainment per workflow, re-dispatches."""

    def __init__(self) -> None:
        self.met: dict[str, list[int]] = {}  # workflow -> [met, total]

    def finished(self, worker: str, workflow: str, latency_s: float, met: bool | None) -> None:
        s = _series()
        name = workflow or "-"
        s["latency"].observe(latency_s, tags={"worker": worker, "workflow": name})
        s["served"].inc(tags={"workflow": name, "priority": "background" if met is None else "interactive"})
        if met is None:  # background calls have no deadline to meet
            return
        s["calls"].inc(tags={"workflow": name, "met": str(met).lower()})
        counts = self.met.setdefault(name, [0, 0])
        counts[0] += met
        counts[1] += 1
        s["attainment"].set(counts[0] / counts[1], tags={"workflow": name})

    def redispatched(self, reason: str) -> None:
        _series()["redispatched"].inc(tags={"reason": reason})
