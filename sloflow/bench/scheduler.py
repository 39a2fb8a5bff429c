"""Scheduler benchmark: goodput, latency and SLO attainment of every policy combination, simulated
on the HEXGEN GPU tables with CHESS traces, with each goodput's share of the cluster's capacity and
robustness runs on other clusters and arrival processes; plus (full run, or --only-real) goodput
measured on real llama.cpp workers beside the simulator's prediction (`scheduler_real`).

Goodput = the highest Poisson arrival rate (requests/s) at which >= 90% of requests finish within
deadline = scale x their standalone latency (the request alone, each call on the fastest card).
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.bench.scheduler_real import HEADLINE, GoodputSearch, real_goodput, real_run
from sloflow.errors import ConfigError
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.dispatch import DISPATCH_POLICIES, EarliestFinish
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.queueing import QUEUE_POLICIES
from sloflow.scheduler.policies.scheduler import DEFAULT
from sloflow.scheduler.policies.view import WorkerView
from sloflow.scheduler.sim.experiment import Workload, capacity, goodput, parse_cluster, simulate
from sloflow.scheduler.sim.simulator import percentile
from sloflow.scheduler.sim.traces import TRACES_DIR, load_arrival_trace, load_workflow_trace
from sloflow.scheduler.sim.tune import ALPHAS, Choice, tune_alpha

DATA = TRACES_DIR
SCALES = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
TUNE_SEEDS = (11, 12, 13)  # alpha is tuned on these, figures are measured on others
CLUSTERS = {"4x": "A100x2,A6000,L40S", "8x": "A100x4,A6000x2,L40Sx2"}
TRACES = ("trace1", "trace2", "trace3", "financial", "formula1", "trace4_modified2")
ARRIVALS = {
    "azure-conv": DATA / "azure" / "AzureLLMInferenceTrace_conv.csv",
    "azure-code": DATA / "azure" / "AzureLLMInferenceTrace_code.csv",
    "mooncake": DATA / "mooncake" / "conversation_trace.jsonl",
}
# (trace, cluster, arrivals) the default was not designed on: other card mixes and counts, recorded
# arrival processes (full run). The first is the Azure-arrivals run of earlier results.
ROBUSTNESS = (
    ("trace2", "A100x2,A6000,L40S", "azure-conv"),
    ("trace3", "A100,A6000x2,L40Sx3", "azure-code"),
    ("financial", "A6000x2,L40Sx2", "mooncake"),
    ("formula1", "A100x3,L40S", "poisson"),
    ("trace4_modified2", "A100,L40Sx3", "azure-conv"),
)
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
    robustness: tuple[tuple[str, str, str], ...] = ()  # (trace, cluster, arrivals) run with the headline schedulers


def plan_for(quick: bool, requests: int | None = None) -> Plan:
    """The full run, or the quick one (one trace on the 4-card cluster, fewer seeds and alphas)."""
    if quick:  # non-headline combinations get one seed, to stay under a minute
        return Plan(
            quick=True, traces=("trace1",), clusters=(CLUSTERS["4x"],), combos=_combos(), requests=requests or 150,
            seeds=(1, 2), other_seeds=(1,), tune_seeds=TUNE_SEEDS[:1], alphas=ALPHAS[::2],
        )
    return Plan(
        quick=False, traces=TRACES, clusters=tuple(CLUSTERS.values()), combos=_combos(), requests=requests or 300,
        seeds=(1, 2, 3), other_seeds=(1, 2, 3), tune_seeds=TUNE_SEEDS, alphas=ALPHAS, robustness=ROBUSTNESS,
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
    good, tuning = _goodputs(cluster, wl, plan, combos, f"{trace_name}/{cluster_spec}")
    alpha = tuning.alpha
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
        "goodput_share_of_capacity": round(ours / cap, 3),  # how close our default gets to the physical limit
        "latency_rate_req_s": round(rr_rate, 4),
        "p50_s": {c: round(v[0], 1) for c, v in latency.items()},
        "p95_s": {c: round(v[1], 1) for c, v in latency.items()},
        "curve_rate_req_s": round(curve_rate, 4),
        "attainment_vs_scale": {c: [round(a, 3) for a in v] for c, v in curve.items()},
        **_ratios(good),
        "p95_ratio_vs_rr_fcfs": round(latency["rr+fcfs"][1] / latency[DEFAULT][1], 3),
    }


def robustness(trace_name: str, cluster_spec: str, arrivals: str, plan: Plan, scale: float) -> dict[str, Any]:
    """Goodput of the headline schedulers on a trace, cluster and arrival process ("poisson" or a key of
    ARRIVALS, rescaled to each rate) that the tables above do not use; HEXGEN's alpha tuned as there."""
    cluster = parse_cluster(cluster_spec, DATA / "gpu_latency")
    offsets = None if arrivals == "poisson" else tuple(load_arrival_trace(ARRIVALS[arrivals]))
    wl = Workload(tuple(load_workflow_trace(DATA / "chess" / f"{trace_name}.json")), plan.requests, scale, arrivals=offsets)
    good, tuning = _goodputs(cluster, wl, plan, HEADLINE, f"{trace_name}/{cluster_spec}/{arrivals}")
    cap = capacity(cluster, wl.trace)
    return {
        "trace": trace_name,
        "cluster": cluster_spec,
        "arrivals": arrivals,
        "hexgen_alpha": tuning.alpha,
        "goodput_req_s": {c: round(g, 4) for c, g in good.items()},
        "capacity_req_s": round(cap, 4),
        "goodput_share_of_capacity": round(good[DEFAULT] / cap, 3),
        **_ratios(good),
    }


def _goodputs(cluster: list, wl: Workload, plan: Plan, combos: Sequence[str], label: str) -> tuple[dict[str, float], Choice]:
    """Goodput of each combination (the headline ones on all seeds) after tuning HEXGEN's alpha."""
    good = {"eft+fcfs": goodput(cluster, "eft+fcfs", wl, plan.seeds)}
    # HEXGEN's alpha is tuned per trace and cluster at the load where goodputs are decided.
    tuning = tune_alpha(cluster, wl, good["eft+fcfs"], plan.tune_seeds, plan.seeds, grid=plan.alphas)
    for c in combos:
        if c not in good:
            seeds = plan.seeds if c in HEADLINE else plan.other_seeds
            good[c] = goodput(cluster, c, wl, seeds, alpha=tuning.alpha, hint=good["eft+fcfs"])
        say(f"  {label} {c:40} goodput {good[c]:.4f} req/s")
    return good, tuning


def _ratios(good: dict[str, float]) -> dict[str, float]:
    ours = good[DEFAULT]
    return {
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


def real_figures(opts: argparse.Namespace) -> dict[str, Any]:
    """The real part: goodput by bisection on two llama.cpp workers (and, with --real-rate, a fixed-rate run)."""
    scale = opts.scale * 1.5  # small CPU models run calls of a few seconds: looser deadlines than the GPU tables'
    schedulers = tuple(opts.real_schedulers.split(","))
    good = real_goodput(scale, schedulers, GoodputSearch(max_requests=opts.real_requests, repeats=opts.real_repeats))
    figures: dict[str, Any] = {"real_goodput": good, "real_run": False}
    for key in ("real_goodput_ratio_vs_rr_fcfs", "real_goodput_ratio_vs_hexgen", "real_goodput_ratio_vs_eft_fcfs", "real_goodput_sim_error", "real_goodput_repeat_error_floor"):
        if key in good:
            figures[key] = good[key]
    if opts.real_rate is None:
        return figures
    real = real_run(
        requests=opts.real_requests,
        rate=opts.real_rate,
        scale=scale,
        seed=7,
        profiles_out=opts.plot.with_name("scheduler_profiles.json"),
        schedulers=schedulers,
        log_path=opts.real_log,
    )
    figures["real_run"] = real
    figures["sim_error_p95"] = real["sim_error_p95"]
    figures["sim_error_p50"] = real["sim_error_p50"]
    if "p95_ratio_vs_rr_fcfs" in real:
        figures["real_p95_ratio_vs_rr_fcfs"] = real["p95_ratio_vs_rr_fcfs"]
        figures["real_p95_ratio_vs_hexgen"] = real["p95_ratio_vs_hexgen"]
    return figures


def options(args: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(prog="sloflow bench scheduler")
    parser.add_argument("--scale", type=float, default=2.0, help="deadline = scale x standalone latency")
    parser.add_argument("--requests", type=int, default=None, help="requests per simulated run")
    parser.add_argument("--plot", type=Path, default=Path("bench/scheduler_attainment.png"), help="PNG to write (full run)")
    parser.add_argument("--no-real", action="store_true", help="skip the real llama.cpp run")
    parser.add_argument("--only-real", action="store_true", help="only the real llama.cpp run")
    parser.add_argument("--real-requests", type=int, default=24, help="most requests per real goodput probe; requests of the fixed-rate run")
    parser.add_argument("--real-repeats", type=int, default=1, help="whole goodput searches per scheduler on the real workers (the median counts; their spread bounds any prediction's error)")
    parser.add_argument("--real-rate", type=float, default=None, help="also a fixed-rate real run at this Poisson rate (req/s): the simulator's latency error")
    parser.add_argument("--real-schedulers", default=",".join(HEADLINE), help="comma-separated schedulers of the real run")
    parser.add_argument("--real-log", type=Path, default=None, help="write every call of the fixed-rate run beside its simulated twin (JSON lines)")
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
    if runs:
        closest = min(runs, key=lambda r: r["goodput_share_of_capacity"])
        figures["goodput_share_of_capacity_min"] = closest["goodput_share_of_capacity"]
        figures["goodput_share_of_capacity_min_on"] = f"{closest['trace']} / {closest['cluster']}"
    figures["runs"] = runs
    if runs and not quick:
        extra = [robustness(t, c, a, plan, opts.scale) for t, c, a in plan.robustness]
        for key in ("goodput_ratio_vs_rr_fcfs", "goodput_ratio_vs_hexgen", "goodput_ratio_vs_eft_fcfs"):
            if extra:
                figures[f"robustness_{key}_min"] = min(r[key] for r in extra)
        figures["robustness"] = extra
        plot(runs[0], opts.plot)
        figures["plot"] = str(opts.plot)
    if quick or opts.no_real:
        figures["real_run"] = False
    else:
        figures.update(real_figures(opts))
    figures["seconds"] = round(time.time() - started, 1)
    return figures
