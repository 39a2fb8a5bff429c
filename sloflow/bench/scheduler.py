"""Scheduler benchmark: goodput, latency and SLO attainment of every policy combination, simulated
on the HEXGEN GPU tables with CHESS traces, plus (full run) a real run on llama.cpp workers that
also measures the simulator's error.

Goodput = the highest Poisson arrival rate (requests/s) at which >= 90% of requests finish within
deadline = scale x their standalone latency (the request alone, each call on the fastest card).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import timeit
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.errors import ConfigError
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.dispatch import DISPATCH_POLICIES, EarliestFinish
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.queueing import QUEUE_POLICIES
from sloflow.scheduler.policies.scheduler import BASELINES, DEFAULT, make_scheduler
from sloflow.scheduler.policies.view import WorkerView
from sloflow.scheduler.sim.experiment import Workload, capacity, goodput, parse_cluster, save_profiles, simulate
from sloflow.scheduler.sim.simulator import BudgetModel, Simulation, percentile, standalone_s
from sloflow.scheduler.sim.traces import TRACES_DIR, CallShape, RequestShape, load_arrival_trace, load_workflow_trace, unit_poisson
from sloflow.scheduler.sim.tune import ALPHAS, tune_alpha

DATA = TRACES_DIR
HEADLINE = (DEFAULT, *BASELINES)
SCALES = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
TUNE_SEEDS = (11, 12, 13)  # alpha is tuned on these, figures are measured on others
CLUSTERS = {"4x": "A100x2,A6000,L40S", "8x": "A100x4,A6000x2,L40Sx2"}
TRACES = ("trace1", "trace2", "trace3", "financial", "formula1", "trace4_modified2")
AZURE_TRACE = "trace2"  # also run with Azure conversation arrivals (full run)
DEFAULT_DISPATCH = DEFAULT.split("+")[0]


def _combos() -> tuple[str, ...]:
    return (*(f"{d}+{q}" for d in DISPATCH_POLICIES for q in QUEUE_POLICIES), DEFAULT)


@dataclass(frozen=True)
class Plan:
    """What a run simulates: which traces on which clusters, with how many requests, seeds and alphas.

    `plan_for` gives the command line's two; a test runs the same figure-building on a tiny one, so a
    figure added in the wrong place fails in `make test`, not at the end of a full run.
    """

    quick: bool  # a quick run has no Azure arrivals, plot or real run
    traces: tuple[str, ...]
    clusters: tuple[str, ...]  # specs; `combos` run on the first, the headline schedulers on the others
    combos: tuple[str, ...]
    requests: int
    seeds: tuple[int, ...]
    other_seeds: tuple[int, ...]  # of the non-headline combinations and the attainment curve
    tune_seeds: tuple[int, ...]
    alphas: tuple[float, ...]


def plan_for(quick: bool, requests: int | None = None) -> Plan:
    """The full run, or the quick one (one trace on the 4-card cluster, fewer seeds and alphas)."""
    if quick:  # non-headline combinations get one seed, to stay under a minute
        return Plan(
            quick=True, traces=("trace1",), clusters=(CLUSTERS["4x"],), combos=_combos(), requests=requests or 150,
            seeds=(1, 2), other_seeds=(1,), tune_seeds=TUNE_SEEDS[:1], alphas=ALPHAS[::2],
        )
    return Plan(
        quick=False, traces=TRACES, clusters=tuple(CLUSTERS.values()), combos=_combos(), requests=requests or 300,
        seeds=(1, 2, 3), other_seeds=(1, 2, 3), tune_seeds=TUNE_SEEDS, alphas=ALPHAS,
    )


def decision_cost_us(workers: int = 16, queued: int = 1000, repeats: int = 300) -> dict[str, float]:
    """Median microseconds per dispatch decision with `workers` workers holding `queued` calls."""
    profile = WorkerProfile("w", 2e-5, 0.04, decode_slowdown=0.05, slots=16, context_tokens=32768, kv_tokens=400_000)
    views = [WorkerView(f"w{i}", profile, held_prefixes={"evaluate"}) for i in range(workers)]
    for i in range(queued):
        views[i % workers].enqueue(Call(str(i), 1000 + i % 700, 50 + i % 90, release=0.0, deadline=10.0 + i % 97, prefix_key="evaluate", prefix_tokens=261))
    for v in views:  # every worker also runs a few calls
        for cid in list(v.queued)[:4]:
            v.start(cid, 0.0)
    probe = Call("probe", 1500, 80, release=1.0, deadline=30.0, request_deadline=60.0, prefix_key="evaluate", prefix_tokens=261)
    out = {}
    for policy in (DISPATCH_POLICIES[DEFAULT_DISPATCH](), EarliestFinish()):
        times = timeit.repeat(lambda p=policy: p.choose(probe, views, 1.0), number=1, repeat=repeats)
        out[policy.name] = round(statistics.median(times) * 1e6, 1)
    return out


def _latency_at(cluster: list, scheduler: str, wl: Workload, rate: float, seeds: Sequence[int], alpha: float) -> tuple[float, float]:
    runs = [simulate(cluster, scheduler, wl, rate, s, alpha=alpha) for s in seeds]
    lat = [x for r in runs for x in r.latencies]
    return percentile(lat, 50), percentile(lat, 95)


def simulated(trace_name: str, cluster_spec: str, plan: Plan, scale: float, combos: Sequence[str]) -> dict[str, Any]:
    """Every figure for one (trace, cluster): tuned alpha, goodput, latency, attainment curve."""
    cluster = parse_cluster(cluster_spec, DATA / "gpu_latency")
    wl = Workload(tuple(load_workflow_trace(DATA / "chess" / f"{trace_name}.json")), plan.requests, scale)
    t0 = time.time()
    seeds, other_seeds = plan.seeds, plan.other_seeds
    good = {"eft+fcfs": goodput(cluster, "eft+fcfs", wl, seeds)}
    # HEXGEN's alpha is tuned per trace and cluster at the load where goodputs are decided.
    tuning = tune_alpha(cluster, wl, good["eft+fcfs"], plan.tune_seeds, seeds, grid=plan.alphas)
    alpha = tuning.alpha
    for c in combos:
        if c not in good:
            good[c] = goodput(cluster, c, wl, seeds if c in HEADLINE else other_seeds, alpha=alpha, hint=good["eft+fcfs"])
        say(f"  {trace_name}/{cluster_spec} {c:40} goodput {good[c]:.4f} req/s")
    rr_rate = good["rr+fcfs"]
    latency = {c: _latency_at(cluster, c, wl, rr_rate, seeds, alpha) for c in HEADLINE}
    curve_rate = good["eft+fcfs"]
    curve = {
        c: [
            sum(simulate(cluster, c, wl, curve_rate, s, alpha=alpha, scale=k).attainment for s in other_seeds) / len(other_seeds)
            for k in SCALES
        ]
        for c in HEADLINE
    }
    ours = good[DEFAULT]
    cap = capacity(cluster, wl.trace)
    say(f"  {trace_name}/{cluster_spec}: alpha={alpha}, capacity {cap:.4f} req/s, {time.time() - t0:.0f}s")
    return {
        "trace": trace_name,
        "cluster": cluster_spec,
        "hexgen_alpha": alpha,
        "hexgen_alpha_held_out_attainment": round(tuning.held_out_attainment, 3),
        "goodput_req_s": {c: round(g, 4) for c, g in good.items()},
        # The share of the cluster's capacity that 1.8x RR+FCFS's goodput would load it to.
        "capacity_req_s": round(cap, 4),
        "load_at_1_8x_rr_fcfs": round(1.8 * rr_rate / cap, 3),
        "latency_rate_req_s": round(rr_rate, 4),
        "p50_s": {c: round(v[0], 1) for c, v in latency.items()},
        "p95_s": {c: round(v[1], 1) for c, v in latency.items()},
        "curve_rate_req_s": round(curve_rate, 4),
        "attainment_vs_scale": {c: [round(a, 3) for a in v] for c, v in curve.items()},
        "goodput_ratio_vs_rr_fcfs": round(ours / good["rr+fcfs"], 3),
        "goodput_ratio_vs_hexgen": round(ours / good["hexgen+least-slack"], 3),
        "goodput_ratio_vs_eft_fcfs": round(ours / good["eft+fcfs"], 3),
        "p95_ratio_vs_rr_fcfs": round(latency["rr+fcfs"][1] / latency[DEFAULT][1], 3),
    }


def azure_arrivals(trace_name: str, cluster_spec: str, requests: int, scale: float, seeds: Sequence[int]) -> dict[str, Any]:
    """Goodput of the headline schedulers with Azure conversation arrival times (bursty) rescaled."""
    cluster = parse_cluster(cluster_spec, DATA / "gpu_latency")
    offsets = tuple(load_arrival_trace(DATA / "azure" / "AzureLLMInferenceTrace_conv.csv"))
    wl = Workload(tuple(load_workflow_trace(DATA / "chess" / f"{trace_name}.json")), requests, scale, arrivals=offsets)
    good = {c: goodput(cluster, c, wl, seeds) for c in HEADLINE}
    say(f"  azure arrivals {trace_name}/{cluster_spec}: " + ", ".join(f"{c} {g:.4f}" for c, g in good.items()))
    ours = good[DEFAULT]
    return {
        "trace": trace_name,
        "cluster": cluster_spec,
        "goodput_req_s": {c: round(g, 4) for c, g in good.items()},
        "goodput_ratio_vs_rr_fcfs": round(ours / good["rr+fcfs"], 3),
        "goodput_ratio_vs_hexgen": round(ours / good["hexgen+least-slack"], 3),
        "goodput_ratio_vs_eft_fcfs": round(ours / good["eft+fcfs"], 3),
    }


def plot(run: dict[str, Any], path: Path) -> None:
    """Attainment vs deadline scale per policy, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, ys in run["attainment_vs_scale"].items():
        ax.plot(SCALES, ys, marker="o", label=name)
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("deadline scale (x standalone latency)")
    ax.set_ylabel("SLO attainment")
    ax.set_title(f"{run['trace']} on {run['cluster']}, {run['curve_rate_req_s']} req/s (simulated)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- real run -------------------------------------------------------------------------------------


def real_workload(requests: int, seed: int) -> list[RequestShape]:
    """MAC-SQL requests (trace4) scaled down 12x in prompt and 8x in output for a 135M/270M model on CPU.

    Each step has one fixed template, as in the CHESS traces: 60% of the step's shortest prompt, so
    every call of a step starts with the same template tokens and a worker that last served the step
    holds exactly those in its prompt cache.
    """
    trace = load_workflow_trace(DATA / "chess" / "trace4_modified2.json")

    def prompt(c: CallShape) -> int:
        return max(c.prompt_tokens // 12, 32)

    template: dict[str, int] = {}
    for shape in trace:
        for stage in shape.stages:
            for c in stage:
                template[c.step] = min(template.get(c.step, 1 << 30), int(0.6 * prompt(c)))
    rng = random.Random(seed)
    out = []
    for shape in (rng.choice(trace) for _ in range(requests)):
        stages = tuple(
            tuple(CallShape(c.step, prompt(c), max(c.output_tokens // 8, 4), template[c.step]) for c in stage)
            for stage in shape.stages
        )
        out.append(RequestShape(stages))
    return out


class _LoggedSimulation(Simulation):
    """A `Simulation` that also records where and when each call ran (to set beside the real run's log)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[str, dict[str, Any]] = {}

    def _fill(self, w: Any, now: float) -> None:
        before = set(w.left)
        super()._fill(w, now)
        for cid in set(w.left) - before:
            self.calls[cid] = {"worker": w.view.id, "start": round(now, 4), "work_s": round(w.left[cid], 4)}

    def _complete(self, w: Any, now: float) -> None:
        before = set(w.left)
        super()._complete(w, now)
        for cid in before - set(w.left):
            self.calls[cid]["done"] = round(now, 4)


def real_run(
    requests: int,
    rate: float,
    scale: float,
    seed: int,
    profiles_out: Path,
    schedulers: tuple[str, ...] = HEADLINE,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """The same arrivals on two real llama.cpp workers of unequal speed, per scheduler, and in the simulator."""
    import ray

    from sloflow.config import get_settings
    from sloflow.llm.models import is_available
    from sloflow.llm.types import GenerateRequest
    from sloflow.ray_start import start_ray
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_dispatcher
    from sloflow.scheduler.live.worker import WorkerSpec
    from sloflow.scheduler.sim.replay import replay

    for m in ("smollm2-135m", "gemma3-270m"):
        if not is_available(m):
            raise ConfigError(f"the real run needs the embedded model {m}")
    settings = get_settings()
    start_ray(settings, num_cpus=2, dashboard=False)
    shapes = real_workload(requests, seed)
    arrivals = [t / rate for t in unit_poisson(requests, seed)]
    out: dict[str, Any] = {"workers": "smollm2-135m and gemma3-270m, llama.cpp, 1 thread each (real speed difference)"}
    profiles: list[WorkerProfile] | None = None
    results: dict[str, dict[str, float]] = {}
    load_start = [round(x, 2) for x in os.getloadavg()]  # the real run is only meaningful on quiet cores
    log_file = log_path.open("w") if log_path else None
    token_mismatch = 0
    calls_total = 0
    for i, name in enumerate(schedulers):
        dispatcher = start_dispatcher(name, name=f"bench-dispatcher-{i}")
        specs = {f"b{i}-small": WorkerSpec("embedded", "smollm2-135m", threads=1, num_cpus=1), f"b{i}-larger": WorkerSpec("embedded", "gemma3-270m", threads=1, num_cpus=1)}
        if profiles is not None:  # measure once, then reuse: the same cards in every run
            specs = {k: replace(s, profile=p) for (k, s), p in zip(specs.items(), profiles)}
        for k, s in specs.items():  # one at a time: profiling passes must not compete for the cores
            ray.get(dispatcher.add_worker.remote(k, s))
        # A fresh llama.cpp process pays first-touch costs on its first call (about 0.1 s for Gemma);
        # the profiling pass warms its worker up, so warm up the workers that reuse a profile too.
        warm = GenerateRequest(prompt="the and", max_tokens=2)
        ray.get([ray.get_actor(f"sloflow-worker-{k}").run.remote(Call(f"warm-{k}", 2, 2, release=time.time()), warm) for k in specs])
        by_id = {w["id"]: w["profile"] for w in ray.get(dispatcher.workers.remote())}
        profiles = [by_id[k] for k in specs]
        budgets = BudgetModel(shapes, profiles)
        deadlines = [scale * standalone_s(s, profiles) for s in shapes]
        say(f"  real run {name}: {requests} requests at {rate} req/s ...")
        calls: list[dict[str, Any]] = []
        lat = asyncio.run(replay(SchedulerClient(dispatcher), shapes, arrivals, deadlines, budgets, log=calls))
        simulation = _LoggedSimulation(list(zip(specs, profiles)), make_scheduler(name), budgets)
        sim = simulation.run(shapes, arrivals, deadlines)
        # The replay must make the calls the simulator models: exact prompt and output token counts.
        calls_total += len(calls)
        token_mismatch += sum(
            c["real_output_tokens"] != c["output_tokens"] or abs(c["real_prompt_tokens"] - c["prompt_tokens"]) > 1 for c in calls
        )
        if log_file is not None:
            for c in calls:
                sc = simulation.calls.get(f"{c['request']}.{c['stage']}.{c['index']}", {})
                log_file.write(json.dumps({"scheduler": name, **c, "sim": sc}) + "\n")
            for r, (x, y) in enumerate(zip(lat, sim.latencies)):
                log_file.write(json.dumps({"scheduler": name, "request": r, "arrival": round(arrivals[r], 3), "latency": round(x, 3), "sim_latency": round(y, 3)}) + "\n")
            log_file.flush()
        p50, p95, s50, s95 = percentile(lat, 50), percentile(lat, 95), sim.percentile(50), sim.percentile(95)
        results[name] = {
            "p50_s": round(p50, 2),
            "p95_s": round(p95, 2),
            "attainment": round(sum(x <= d for x, d in zip(lat, deadlines)) / len(lat), 3),
            "sim_p50_s": round(s50, 2),
            "sim_p95_s": round(s95, 2),
            "sim_attainment": round(sim.attainment, 3),
            "sim_error_p50": round(abs(s50 - p50) / p50, 3),
            "sim_error_p95": round(abs(s95 - p95) / p95, 3),
        }
        say(f"    {results[name]}")
        for k in specs:
            ray.get(dispatcher.remove.remote(k))
        ray.kill(dispatcher)
    if log_file is not None:
        log_file.close()
    ours = results.get(DEFAULT, next(iter(results.values())))
    if profiles:  # so that `sloflow sim --cluster <file>` can replay on these workers
        save_profiles(profiles, profiles_out)
    out.update(
        requests=requests,
        rate_req_s=rate,
        deadline_scale=scale,
        profiles=[asdict(p) for p in profiles or []],
        per_scheduler=results,
        load_average_start=load_start,
        load_average_end=[round(x, 2) for x in os.getloadavg()],
        calls_with_token_counts_off=token_mismatch,
        calls=calls_total,
    )
    if "rr+fcfs" in results and "hexgen+least-slack" in results:
        out["p95_ratio_vs_rr_fcfs"] = round(results["rr+fcfs"]["p95_s"] / ours["p95_s"], 3)
        out["p95_ratio_vs_hexgen"] = round(results["hexgen+least-slack"]["p95_s"] / ours["p95_s"], 3)
    out["sim_error_p95"] = max(r["sim_error_p95"] for r in results.values())
    out["sim_error_p50"] = max(r["sim_error_p50"] for r in results.values())
    if DEFAULT in results:
        out["sim_error_p50_default"] = results[DEFAULT]["sim_error_p50"]
        out["sim_error_p95_default"] = results[DEFAULT]["sim_error_p95"]
    return out


def options(args: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(prog="sloflow bench scheduler")
    parser.add_argument("--scale", type=float, default=2.0, help="deadline = scale x standalone latency")
    parser.add_argument("--requests", type=int, default=None, help="requests per simulated run")
    parser.add_argument("--plot", type=Path, default=Path("bench/scheduler_attainment.png"), help="PNG to write (full run)")
    parser.add_argument("--no-real", action="store_true", help="skip the real llama.cpp run")
    parser.add_argument("--only-real", action="store_true", help="only the real llama.cpp run")
    parser.add_argument("--real-requests", type=int, default=40, help="requests in the real run")
    parser.add_argument("--real-rate", type=float, default=0.35, help="Poisson rate (req/s) of the real run")
    parser.add_argument("--real-schedulers", default=",".join(HEADLINE), help="comma-separated schedulers of the real run")
    parser.add_argument("--real-log", type=Path, default=None, help="write every real call beside its simulated twin (JSON lines)")
    return parser.parse_args(args or [])


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    opts = options(args)
    return figures_for(plan_for(quick, opts.requests), opts)


def figures_for(plan: Plan, opts: argparse.Namespace) -> dict[str, Any]:
    """Run `plan` and build the final JSON figures: settings, per-run figures, the weakest of each ratio."""
    if not (DATA / "chess").is_dir():
        raise ConfigError(f"the scheduler benchmark needs the traces under {DATA}")
    started = time.time()
    quick, seeds = plan.quick, list(plan.seeds)
    figures: dict[str, Any] = {
        "quick": quick,
        "simulated_cluster": plan.clusters[0] if quick else list(plan.clusters),
        "traces": list(plan.traces),
        "deadline_scale": opts.scale,
        "target_attainment": 0.9,
        "requests_per_run": plan.requests,
        "seeds": seeds,
        "seeds_other_combos": list(plan.other_seeds),
        "hexgen_alpha_tuned_on_seeds": list(plan.tune_seeds),
        "arrivals": "poisson",
        "service_time_noise_sigma": 0.1,
        "goodput_definition": "max Poisson rate with >= 90% of requests within scale x standalone latency (bisection, 2%)",
        "default_scheduler": DEFAULT,
    }
    say("decision cost (16 workers, 1000 queued calls) ...")
    cost = decision_cost_us()
    figures["decision_us_median"] = cost[DEFAULT_DISPATCH]
    figures["decision_us_median_eft"] = cost[EarliestFinish.name]
    runs = []
    for trace in [] if opts.only_real else plan.traces:
        for cluster in plan.clusters:
            combos = plan.combos if cluster == plan.clusters[0] else HEADLINE
            runs.append(simulated(trace, cluster, plan, opts.scale, combos))
    for key in ("goodput_ratio_vs_rr_fcfs", "goodput_ratio_vs_hexgen", "goodput_ratio_vs_eft_fcfs", "p95_ratio_vs_rr_fcfs"):
        if not runs:
            break
        weakest = min(runs, key=lambda r: r[key])
        figures[key] = weakest[key]
        figures[f"{key}_weakest_on"] = f"{weakest['trace']} / {weakest['cluster']}"
        if key == "goodput_ratio_vs_rr_fcfs":
            figures["load_at_1_8x_rr_fcfs_there"] = weakest["load_at_1_8x_rr_fcfs"]
    figures["runs"] = runs
    if runs and not quick:
        figures["azure_arrivals"] = azure_arrivals(AZURE_TRACE, plan.clusters[0], plan.requests, opts.scale, seeds)
        plot(runs[0], opts.plot)
        figures["plot"] = str(opts.plot)
    if quick or opts.no_real:
        figures["real_run"] = False
    else:
        real = real_run(
            requests=opts.real_requests,
            rate=opts.real_rate,
            scale=opts.scale * 1.5,
            seed=7,
            profiles_out=opts.plot.with_name("scheduler_profiles.json"),
            schedulers=tuple(opts.real_schedulers.split(",")),
            log_path=opts.real_log,
        )
        figures["real_run"] = real
        figures["sim_error_p95"] = real["sim_error_p95"]
        figures["sim_error_p50"] = real["sim_error_p50"]
        if "p95_ratio_vs_rr_fcfs" in real:
            figures["real_p95_ratio_vs_rr_fcfs"] = real["p95_ratio_vs_rr_fcfs"]
            figures["real_p95_ratio_vs_hexgen"] = real["p95_ratio_vs_hexgen"]
    figures["seconds"] = round(time.time() - started, 1)
    return figures
