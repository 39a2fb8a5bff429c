"""The scheduler benchmark's real part: the same requests on real llama.cpp workers and in the simulator.

Two Ray-actor workers of unequal speed behind the live dispatcher: SmolLM2-135M and Gemma 3 270M,
one llama.cpp thread each (two threads on this machine's two cores). Neither is faster at
everything: Gemma prefills about 2.6x faster, SmolLM2 decodes about 1.4x faster (measured profiles,
`bench/scheduler_profiles.json`), so where a call should go depends on its shape, as between GPU
types. The simulator replays the same requests and arrivals from the profiles the workers measure,
and from how much each slows while the other is busy (`measure_contention`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.errors import ConfigError
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.scheduler import BASELINES, DEFAULT, make_scheduler
from sloflow.scheduler.sim.experiment import Workload, bisect_rate, capacity, save_profiles, simulate
from sloflow.scheduler.sim.simulator import BudgetModel, Simulation, percentile, standalone_s
from sloflow.scheduler.sim.traces import TRACES_DIR, CallShape, RequestShape, load_workflow_trace, sample_requests, unit_poisson
from sloflow.scheduler.sim.tune import tune_alpha

HEADLINE = (DEFAULT, *BASELINES)


def real_trace() -> tuple[RequestShape, ...]:
    """MAC-SQL requests (trace4) scaled down 12x in prompt and 8x in output for a 135M/270M model on CPU.

    Each step has one fixed template, as in the CHESS traces: 60% of the step's shortest prompt, so
    every call of a step starts with the same template tokens and a worker that last served the step
    holds exactly those in its prompt cache.
    """
    trace = load_workflow_trace(TRACES_DIR / "chess" / "trace4_modified2.json")

    def prompt(c: CallShape) -> int:
        return max(c.prompt_tokens // 12, 32)

    template: dict[str, int] = {}
    for shape in trace:
        for stage in shape.stages:
            for c in stage:
                template[c.step] = min(template.get(c.step, 1 << 30), int(0.6 * prompt(c)))
    return tuple(
        RequestShape(tuple(tuple(CallShape(c.step, prompt(c), max(c.output_tokens // 8, 4), template[c.step]) for c in stage) for stage in shape.stages))
        for shape in trace
    )


def real_workload(requests: int, seed: int) -> list[RequestShape]:
    """`requests` requests drawn from `real_trace()` (the draws `Workload(real_trace(), ...).draw(seed)` makes)."""
    return sample_requests(real_trace(), requests, seed)


def start_real_ray() -> None:
    """Ray on this machine's two cores, after checking that both embedded models are installed."""
    from sloflow.config import get_settings
    from sloflow.llm.models import is_available
    from sloflow.ray_start import start_ray

    for m in ("smollm2-135m", "gemma3-270m"):
        if not is_available(m):
            raise ConfigError(f"the real run needs the embedded model {m}")
    start_ray(get_settings(), num_cpus=2, dashboard=False)


def start_workers(dispatcher: Any, tag: str, profiles: Sequence[WorkerProfile] | None = None) -> tuple[list[str], list[WorkerProfile]]:
    """Add the two real workers to `dispatcher` (measuring their profiles unless given); their ids and profiles."""
    import ray

    from sloflow.llm.types import GenerateRequest
    from sloflow.scheduler.live.worker import WorkerSpec

    specs = {f"{tag}-small": WorkerSpec("embedded", "smollm2-135m", threads=1, num_cpus=1), f"{tag}-larger": WorkerSpec("embedded", "gemma3-270m", threads=1, num_cpus=1)}
    if profiles is not None:  # measure once, then reuse: the same cards in every run
        specs = {k: replace(s, profile=p) for (k, s), p in zip(specs.items(), profiles)}
    # One at a time: profiling passes must not compete for the cores, and the dispatcher lists
    # workers in the order their adds began (Ray does not order an async actor's concurrent calls),
    # which HEXGEN's base worker and round-robin's turn read: the simulator's order.
    for k, s in specs.items():
        ray.get(dispatcher.add_worker.remote(k, s))
    # A fresh llama.cpp process pays first-touch costs on its first call (about 0.1 s for Gemma);
    # the profiling pass warms its worker up, so warm up the workers that reuse a profile too.
    warm = GenerateRequest(prompt="the and", max_tokens=2)
    ray.get([ray.get_actor(f"sloflow-worker-{k}").run.remote(Call(f"warm-{k}", 2, 2, release=time.time()), warm) for k in specs])
    by_id = {w["id"]: w["profile"] for w in ray.get(dispatcher.workers.remote())}
    return list(specs), [by_id[k] for k in specs]


def measure_contention(ids: Sequence[str], trace: Sequence[RequestShape], reps: int = 2) -> list[float]:
    """How much each of two workers slows while the other has a call running: they are two processes
    on this machine's two cores and share its caches and memory bandwidth, which a profile taken
    with the other idle does not see. Per worker: (a call of the trace's mean shape beside a long
    call on the other worker) / (the same call alone) - 1, the faster of `reps` runs each way; in
    the order of `ids`, as the profiles are.
    """
    import ray

    from sloflow.llm.types import GenerateRequest
    from sloflow.scheduler.sim.replay import prompt_for

    calls = [c for r in trace for stage in r.stages for c in stage]
    probe = CallShape("contention-probe", round(statistics.fmean(c.prompt_tokens for c in calls)), round(statistics.fmean(c.output_tokens for c in calls)))
    busy = CallShape("contention-busy", 2 * probe.prompt_tokens, 10 * probe.output_tokens)  # outlasts the probe on either worker
    actors = {k: ray.get_actor(f"sloflow-worker-{k}") for k in ids}
    salt = 0

    def call(k: str, shape: CallShape) -> Any:
        nonlocal salt
        salt += 1  # a fresh prompt each time: nothing comes from the prompt cache
        request = GenerateRequest(prompt=prompt_for(shape, 7919 * salt), max_tokens=shape.output_tokens, temperature=0.0, ignore_eos=True)
        return actors[k].run.remote(Call(f"{shape.step}-{k}-{salt}", shape.prompt_tokens, shape.output_tokens, release=time.time()), request)

    out: list[float] = []
    for k in ids:
        other = next(o for o in ids if o != k)
        alone = min(ray.get(call(k, probe)).completion.total_s for _ in range(reps))
        beside = []
        for _ in range(reps):
            load = call(other, busy)
            time.sleep(0.3)  # the long call is under way before the probe starts
            beside.append(ray.get(call(k, probe)).completion.total_s)
            ray.get(load)
        out.append(round(max(min(beside) / alone - 1.0, 0.0), 3))
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

    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_dispatcher
    from sloflow.scheduler.sim.replay import replay

    start_real_ray()
    shapes = real_workload(requests, seed)
    arrivals = [t / rate for t in unit_poisson(requests, seed)]
    out: dict[str, Any] = {"workers": "smollm2-135m and gemma3-270m, llama.cpp, 1 thread each (real speed difference)"}
    profiles: list[WorkerProfile] | None = None
    contention: list[float] = []
    results: dict[str, dict[str, float]] = {}
    load_start = [round(x, 2) for x in os.getloadavg()]  # the real run is only meaningful on quiet cores
    log_file = log_path.open("w") if log_path else None
    token_mismatch = 0
    calls_total = 0
    for i, name in enumerate(schedulers):
        dispatcher = start_dispatcher(name, name=f"bench-dispatcher-{i}")
        measured = profiles is None
        specs, profiles = start_workers(dispatcher, f"b{i}", profiles)
        if measured:  # the first workers profile themselves; measure how they slow each other once too
            contention = measure_contention(specs, real_trace())
        budgets = BudgetModel(shapes, profiles)
        deadlines = [scale * standalone_s(s, profiles) for s in shapes]
        say(f"  real run {name}: {requests} requests at {rate} req/s ...")
        calls: list[dict[str, Any]] = []
        lat = asyncio.run(replay(SchedulerClient(dispatcher), shapes, arrivals, deadlines, budgets, log=calls))
        # Worker ids differ per scheduler, their order does not.
        simulation = _LoggedSimulation(list(zip(specs, profiles)), make_scheduler(name), budgets, contention=dict(zip(specs, contention)))
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
        contention=contention,
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


# --- goodput on the real workers ------------------------------------------------------------------


@dataclass(frozen=True)
class GoodputSearch:
    """How real goodput is searched; the simulator's prediction searches the same way.

    A probe at rate r replays the requests of one unit-rate Poisson sequence (seed `seed`) that
    arrive within `window_s` once rescaled to r, at most `max_requests` of them: the same arrivals
    for every scheduler, and a prefix of the same sequence at every rate. It stops as soon as its
    verdict is decided (enough requests met, or too many missed, their deadline); by the last
    arrival plus the largest deadline it always is.

    Time budget on this machine (2 cores): a probe takes at most start-up (two worker actors, their
    model loads and a warm-up call, `start_s` = 8 s) + `window_s` (45 s) + the largest deadline (3.0
    x the slowest request's 9.3 s standalone = 28 s) = 81 s; 4 schedulers x 5 probes = 20 probes,
    27 minutes, plus Ray start, the one profiling pass and the contention probes (about 2 minutes):
    29 minutes at worst, under 30. `repeats` multiplies the probes (for the repeatability study,
    `--real-repeats`, not the headline run). A probe that misses early stops early, so a run usually takes less. `budget_s`
    recomputes the worst case at run time from the measured profiles (printed and in the JSON).
    """

    window_s: float = 45.0
    max_requests: int = 24
    probes: int = 5  # per scheduler; resolution (high - low) x capacity / 2**probes
    low: float = 0.5  # bracket, in multiples of the workers' capacity (short probes can exceed it)
    high: float = 1.5
    target: float = 0.9
    seed: int = 7
    start_s: float = 8.0  # a probe's worker start-up, for the budget (each probe records its own)
    repeats: int = 1  # whole searches per scheduler; the measured goodput is their median

    def workload(self, trace: Sequence[RequestShape], scale: float, rate: float) -> Workload:
        """The requests a probe at `rate` replays: those of the unit-rate sequence that arrive within the window."""
        unit = unit_poisson(self.max_requests, self.seed)
        return Workload(tuple(trace), max(1, sum(1 for t in unit if t / rate <= self.window_s)), scale)

    def budget_s(self, schedulers: int, max_deadline_s: float) -> float:
        """The whole search at worst: every probe runs to its last arrival plus the largest deadline."""
        return self.repeats * schedulers * self.probes * (self.start_s + self.window_s + max_deadline_s)


def verdict(met: int, missed: int, n: int, target: float) -> bool | None:
    """A probe's outcome once it is decided: at least `target` of `n` requests met their deadline, or not."""
    need = math.ceil(target * n - 1e-9)
    if met >= need:
        return True
    if missed > n - need:
        return False
    return None


def search_goodput(ok: Callable[[float], bool], search: GoodputSearch, capacity_req_s: float) -> dict[str, Any]:
    """Bisect the rate between the search's capacity multiples with `ok` as the probe; the goodput and its bracket.

    The bracket's ends are taken, not probed: a goodput at the low end may be lower, one whose bracket
    still ends at the high end may be higher (both flagged).
    """
    lo, hi = search.low * capacity_req_s, search.high * capacity_req_s
    found = bisect_rate(ok, lo, hi, rel_tol=0.0, max_probes=search.probes)
    return {
        "goodput_req_s": round(found[0], 4),
        "bracket_req_s": [round(found[0], 4), round(found[1], 4)],
        "below_bracket": found[0] == lo,
        "above_bracket": found[1] == hi,
    }


# Real service times stray from the measured profiles (the simulated runs assume lognormal noise of
# sigma 0.1), and a probe on the real workers is one draw of it: the prediction is the median goodput
# over several draws. Without noise the simulator favours policies blind to queue state (HEXGEN's
# cumulative balance), which real timing errors punish.
PREDICTION_NOISE = 0.1
PREDICTION_DRAWS = 9


def predict_goodput(
    workers: Sequence[tuple[str, WorkerProfile]],
    trace: Sequence[RequestShape],
    scale: float,
    schedulers: Sequence[str],
    search: GoodputSearch,
    contention: dict[str, float] | None = None,
) -> tuple[dict[str, dict[str, Any]], float]:
    """The simulator's goodput per scheduler, searched as on the real workers (same probes, median
    over noise draws, the workers' measured contention), and HEXGEN's alpha."""
    cap = capacity(workers, trace)

    def sim_ok(name: str, alpha: float, draw: int) -> Callable[[float], bool]:
        def ok(rate: float) -> bool:
            workload = search.workload(trace, scale, rate)
            run = simulate(workers, name, workload, rate, search.seed, alpha=alpha, noise=PREDICTION_NOISE, noise_seed=draw, contention=contention)
            return run.attainment >= search.target
        return ok

    def predicted(name: str, alpha: float) -> dict[str, Any]:
        draws = sorted((search_goodput(sim_ok(name, alpha, d), search, cap) for d in range(PREDICTION_DRAWS)), key=lambda g: g["goodput_req_s"])
        return {**draws[len(draws) // 2], "draws_req_s": [g["goodput_req_s"] for g in draws]}

    # HEXGEN's alpha, tuned in simulation at EFT's predicted goodput on other seeds (as the simulated
    # runs tune it), serves both the prediction and the real workers.
    eft = predicted("eft+fcfs", 0.5)["goodput_req_s"]
    alpha = tune_alpha(workers, Workload(tuple(trace), search.max_requests, scale), eft, (11, 12, 13), (search.seed,), contention=contention).alpha
    return {c: predicted(c, alpha) for c in schedulers}, alpha


def repeat_error_floor(goodputs: Sequence[float]) -> float:
    """The least relative error any one prediction has against the worst of these repeated measurements.

    The best single guess for measurements between lo and hi is 2 lo hi / (lo + hi), whose error
    against either end is (hi - lo) / (hi + lo): how far the measurement's own repeatability
    bounds any simulator's error.
    """
    lo, hi = min(goodputs), max(goodputs)
    return (hi - lo) / (hi + lo)


def goodput_figures(measured: dict[str, dict[str, Any]], predicted: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-scheduler measured and predicted goodput, our default's ratios to the baselines, the simulator's
    error, and (with repeated searches) the error floor their spread sets."""
    per = {c: {"measured": measured[c], "predicted": predicted[c]} for c in measured}
    good = {c: m["goodput_req_s"] for c, m in measured.items()}
    ours = good.get(DEFAULT)
    out: dict[str, Any] = {"per_scheduler": per}
    for key, base in (("rr_fcfs", "rr+fcfs"), ("hexgen", "hexgen+least-slack"), ("eft_fcfs", "eft+fcfs")):
        if ours is not None and base in good:
            out[f"real_goodput_ratio_vs_{key}"] = round(ours / good[base], 3)
    out["real_goodput_sim_error"] = round(max(abs(predicted[c]["goodput_req_s"] - g) / g for c, g in good.items()), 3)
    repeats = {c: m["repeats_req_s"] for c, m in measured.items() if len(m.get("repeats_req_s", ())) > 1}
    if repeats:
        out["real_goodput_repeat_error_floor"] = round(max(repeat_error_floor(g) for g in repeats.values()), 3)
    return out


def _live_probe(scheduler: str, alpha: float, profiles: Sequence[WorkerProfile], tag: str, shapes: Sequence[RequestShape],
                arrivals: Sequence[float], deadlines: Sequence[float], budgets: BudgetModel, target: float) -> dict[str, Any]:
    """One probe on fresh real workers (the given profiles, no profiling pass), stopped once decided, then torn down."""
    import ray

    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_dispatcher
    from sloflow.scheduler.sim.replay import replay

    t0 = time.time()
    dispatcher = start_dispatcher(scheduler, alpha=alpha, name=f"goodput-dispatcher-{tag}")
    ids, _ = start_workers(dispatcher, tag, profiles)
    started = time.time()
    finished: dict[int, float] = {}

    async def run() -> bool:
        task = asyncio.ensure_future(replay(SchedulerClient(dispatcher), shapes, arrivals, deadlines, budgets, done=finished.__setitem__))
        begun = time.time()
        while True:
            await asyncio.wait({task}, timeout=0.25)
            if task.done() and task.exception() is not None:
                raise task.exception()  # a worker failed: no verdict to give
            now = time.time() - begun - 0.1  # the replay starts a moment after `begun`: count a miss no earlier than due
            met = sum(lat <= deadlines[i] for i, lat in finished.items())
            missed = sum(finished[i] > d if i in finished else now > a + d for i, (a, d) in enumerate(zip(arrivals, deadlines)))
            decided = verdict(met, missed, len(shapes), target)
            if decided is not None:
                task.cancel()  # the calls still running die with the workers below
                return decided

    outcome = asyncio.run(run())
    for k in ids:  # killed, not drained: calls of a decided probe are not worth finishing
        ray.kill(ray.get_actor(f"sloflow-worker-{k}"))
    ray.kill(dispatcher)
    met = sum(lat <= deadlines[i] for i, lat in finished.items())
    return {"ok": outcome, "requests": len(shapes), "met": met, "finished": len(finished),
            "start_s": round(started - t0, 1), "probe_s": round(time.time() - started, 1)}


def real_goodput(scale: float, schedulers: Sequence[str] = HEADLINE, search: GoodputSearch = GoodputSearch()) -> dict[str, Any]:
    """Goodput of each scheduler on the two real workers by bisection, beside the simulator's prediction from their profiles."""
    import ray

    from sloflow.scheduler.live.dispatcher import start_dispatcher

    start_real_ray()
    dispatcher = start_dispatcher(DEFAULT, name="goodput-profiling")
    ids, profiles = start_workers(dispatcher, "gp")  # the one profiling pass; every probe reuses it
    trace = real_trace()
    contention = dict(zip(ids, measure_contention(ids, trace)))
    for k in ids:
        ray.kill(ray.get_actor(f"sloflow-worker-{k}"))
    ray.kill(dispatcher)
    workers = list(zip(ids, profiles))
    cap = capacity(workers, trace)
    max_deadline = scale * max(standalone_s(r, profiles) for r in trace)
    budget = search.budget_s(len(schedulers), max_deadline)
    say(f"real goodput: capacity {cap:.3f} req/s, bracket {search.low}-{search.high}x, at worst {budget / 60:.1f} min; contention {contention}")
    if budget > 30 * 60:  # slower profiles mean longer deadlines: likely a busy machine
        say(f"  over the 30-minute budget; load average {os.getloadavg()[0]:.2f}: is another job using the cores?")

    predicted, alpha = predict_goodput(workers, trace, scale, schedulers, search, contention)
    load_start = [round(x, 2) for x in os.getloadavg()]
    measured: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(schedulers):
        runs: list[dict[str, Any]] = []
        for r in range(search.repeats):
            probes: list[dict[str, Any]] = []

            def live_ok(rate: float, name: str = name, probes: list = probes, tag: str = f"g{i}r{r}") -> bool:
                shapes, u = search.workload(trace, scale, rate).draw(search.seed)
                deadlines = [scale * standalone_s(s, profiles) for s in shapes]
                record = _live_probe(name, alpha, profiles, f"{tag}p{len(probes)}", shapes, [t / rate for t in u], deadlines, BudgetModel(trace, profiles), search.target)
                probes.append({"rate_req_s": round(rate, 4), **record})
                say(f"  {name} at {rate:.4f} req/s: {record}")
                return record["ok"]

            runs.append({**search_goodput(live_ok, search, cap), "probes": probes})
        # The median search (the lower one of an even number) stands for the scheduler.
        runs.sort(key=lambda g: g["goodput_req_s"])
        measured[name] = {**runs[(len(runs) - 1) // 2], "repeats_req_s": [g["goodput_req_s"] for g in runs], "searches": runs}
        say(f"  {name}: real goodput {measured[name]['repeats_req_s']}, predicted {predicted[name]['goodput_req_s']}")
    return {
        "workers": "smollm2-135m and gemma3-270m, llama.cpp, 1 thread each on 2 cores (Gemma prefills faster, SmolLM2 decodes faster)",
        "deadline_scale": scale,
        "search": {**asdict(search), "capacity_req_s": round(cap, 4), "worst_case_s": round(budget), "hexgen_alpha": alpha},
        "profiles": [asdict(p) for p in profiles],
        "contention": contention,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        **goodput_figures(measured, predicted),
    }
