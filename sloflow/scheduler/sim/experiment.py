"""Simulated experiments shared by `sloflow sim`, `sloflow tune` and the benchmark.

A cluster spec names worker types and counts ("A100x2,A6000,L40S", or profiles saved as JSON by a
measured run); a workload is a workflow trace, a number of requests, an arrival process and a
deadline scale (deadline = scale x the request's standalone latency). Goodput is the highest
arrival rate at which at least `target` of the requests meet their deadline, found by bisection
with the same unit-rate arrival sequence rescaled (common random numbers keep it monotone-ish).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sloflow.errors import ConfigError
from sloflow.scheduler.policies.profile import GPU_MEMORY_GB, WorkerProfile, gpu_table_profile
from sloflow.scheduler.policies.scheduler import Scheduler, make_scheduler
from sloflow.scheduler.sim.simulator import BudgetModel, SimResult, Simulation, standalone_s
from sloflow.scheduler.sim.traces import RequestShape, rescaled, sample_requests, unit_poisson

def parse_cluster(spec: str, gpu_tables: Path) -> list[tuple[str, WorkerProfile]]:
    """Workers from "A100x2,A6000,L40S" (GPU tables) or a JSON file of measured profiles."""
    if spec.endswith(".json"):
        try:
            rows = json.loads(Path(spec).read_text())
            return [(f"{r['name']}-{i}", WorkerProfile(**r)) for i, r in enumerate(rows)]
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ConfigError(f"cannot read profiles from {spec}: {exc}") from None
    workers: list[tuple[str, WorkerProfile]] = []
    for part in spec.split(","):
        gpu, _, count = part.strip().partition("x")
        if gpu not in GPU_MEMORY_GB or (count and not count.isdigit()):
            raise ConfigError(f"cluster part {part!r}: use GPU[xN] with GPU one of {sorted(GPU_MEMORY_GB)}")
        profile = gpu_table_profile(gpu, gpu_tables)
        n = int(count or 1)
        workers += [(f"{gpu}-{len(workers) + i}", profile) for i in range(n)]
    return workers


def save_profiles(profiles: Sequence[WorkerProfile], path: Path) -> None:
    """Write profiles as JSON that `parse_cluster` reads back."""
    Path(path).write_text(json.dumps([asdict(p) for p in profiles], indent=1))


@dataclass(frozen=True)
class Workload:
    """Requests drawn from a trace, arriving by a unit-rate process rescaled to any rate."""

    trace: tuple[RequestShape, ...]
    requests: int
    scale: float
    arrivals: tuple[float, ...] | None = None  # offsets of a recorded arrival trace; None = Poisson

    def draw(self, seed: int) -> tuple[list[RequestShape], list[float]]:
        """The requests and their unit-rate arrival times for one seed."""
        shapes = sample_requests(self.trace, self.requests, seed)
        if self.arrivals is None:
            return shapes, unit_poisson(self.requests, seed)
        start = (seed * 7919) % max(len(self.arrivals) - self.requests - 1, 1)
        return shapes, rescaled(self.arrivals, self.requests, 1.0, start)


def simulate(
    workers: Sequence[tuple[str, WorkerProfile]],
    scheduler: str | Scheduler,
    workload: Workload,
    rate: float,
    seed: int,
    *,
    alpha: float = 0.5,
    noise: float = 0.1,
    noise_seed: int | None = None,
    scale: float | None = None,
    contention: dict[str, float] | None = None,
) -> SimResult:
    """One simulated run at `rate` requests per second; the noise draws from `seed` too unless `noise_seed` is given.

    `contention`: per worker id, the slowdown per other busy worker on its host (`Simulation`)."""
    sched = make_scheduler(scheduler, alpha) if isinstance(scheduler, str) else scheduler
    profiles = [p for _, p in workers]
    shapes, unit = workload.draw(seed)
    slo = scale or workload.scale
    deadlines = [slo * standalone_s(s, profiles) for s in shapes]
    sim = Simulation(workers, sched, BudgetModel(workload.trace, profiles), noise=noise, seed=seed if noise_seed is None else noise_seed, contention=contention)
    return sim.run(shapes, [t / rate for t in unit], deadlines)


def capacity(workers: Sequence[tuple[str, WorkerProfile]], trace: Sequence[RequestShape]) -> float:
    """Requests/s the cluster completes with every worker running all its slots (the trace's mix,
    no prompt-cache reuse): no scheduler sustains more for long, whatever the deadlines. A short
    run that starts empty, or shared prompt prefixes, can briefly go above it."""
    total = 0.0
    for _, p in workers:
        work = statistics.fmean(sum(p.solo_s(c.prompt_tokens, c.output_tokens) for stage in r.stages for c in stage) for r in trace)
        total += p.throughput(p.slots) / work
    return total


def goodput(
    workers: Sequence[tuple[str, WorkerProfile]],
    scheduler: str | Scheduler,
    workload: Workload,
    seeds: Sequence[int],
    *,
    alpha: float = 0.5,
    target: float = 0.9,
    rel_tol: float = 0.02,
    hint: float | None = None,
) -> float:
    """Highest rate (requests/s) at which the mean attainment over `seeds` is at least `target`.

    The search brackets the answer by steps of 25% from `hint` (default: the rate that keeps every
    worker busy with solo work), then bisects to `rel_tol`.
    """

    def ok(rate: float) -> bool:
        got = [simulate(workers, scheduler, workload, rate, s, alpha=alpha).attainment for s in seeds]
        return sum(got) / len(got) >= target

    if hint is None:
        profiles = [p for _, p in workers]
        hint = len(workers) / (sum(standalone_s(r, profiles) for r in workload.trace) / len(workload.trace))
    if ok(hint):
        lo, hi = hint, hint * 1.25
        while ok(hi):
            lo, hi = hi, hi * 1.25
            if hi > 1e4:
                return math.inf
    else:
        lo, hi = hint / 1.25, hint
        while not ok(lo):
            lo, hi = lo / 1.25, lo
            if lo < 1e-6:
                return 0.0
    return bisect_rate(ok, lo, hi, rel_tol=rel_tol)[0]


def bisect_rate(
    ok: Callable[[float], bool], lo: float, hi: float, *, rel_tol: float = 0.02, max_probes: int | None = None
) -> tuple[float, float]:
    """Narrow [lo, hi], taken as ok(lo) and not ok(hi), until hi - lo <= rel_tol * hi or after `max_probes` probes.

    Returns the final bracket: the goodput is at least its low end and below its high end.
    """
    probes = 0
    while hi - lo > rel_tol * hi and (max_probes is None or probes < max_probes):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        probes += 1
    return lo, hi
