"""The simulator and the experiments built on it: deterministic, nothing lost, policies ranked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.scheduler import DEFAULT, make_scheduler
from sloflow.scheduler.sim.experiment import Workload, capacity, goodput, parse_cluster, simulate
from sloflow.scheduler.sim.simulator import BudgetModel, Simulation, standalone_s
from sloflow.scheduler.sim.traces import CallShape, RequestShape, load_arrival_trace, load_workflow_trace, rescaled
from sloflow.scheduler.sim.tune import tune_alpha

ONE = WorkerProfile("one", prefill_s_per_token=0.001, decode_s_per_token=0.01, slots=1, context_tokens=4096)


def shape(*stages: list[tuple[int, int]]) -> RequestShape:
    return RequestShape(tuple(tuple(CallShape("step", p, o) for p, o in stage) for stage in stages))


def test_a_request_alone_takes_its_standalone_latency() -> None:
    req = shape([(1000, 100)], [(500, 50)])
    sim = Simulation([("w", ONE)], make_scheduler("eft+fcfs"), BudgetModel([req], [ONE]))
    result = sim.run([req], [0.0], [10.0])
    assert result.latencies[0] == pytest.approx(standalone_s(req, [ONE])) == pytest.approx(2.0 + 1.0)


def test_parallel_calls_share_a_multi_slot_worker_by_its_slowdown() -> None:
    two = WorkerProfile("two", 0.001, 0.01, decode_slowdown=0.5, slots=2, context_tokens=4096)
    req = shape([(1000, 100), (1000, 100)])
    result = Simulation([("w", two)], make_scheduler("eft+fcfs"), BudgetModel([req], [two])).run([req], [0.0], [10.0])
    assert result.latencies[0] == pytest.approx(2.0 * 1.5)  # both run at once, each 1.5x slower


def test_workers_on_one_host_slow_each_other_only_while_both_are_busy() -> None:
    long, short = shape([(1000, 100)]), shape([(500, 50)])  # 2 s and 1 s alone
    sim = Simulation([("a", ONE), ("b", ONE)], make_scheduler("eft+fcfs"), BudgetModel([long], [ONE]), contention={"a": 0.5, "b": 0.5})
    result = sim.run([long, short], [0.0, 1.0], [10.0, 10.0])
    # The long call runs alone for 1 s; then each has 1 s of work left at 1/1.5 speed, ending together.
    assert result.latencies == pytest.approx((2.5, 1.5))
    alone = Simulation([("a", ONE), ("b", ONE)], make_scheduler("eft+fcfs"), BudgetModel([long], [ONE])).run([long, short], [0.0, 1.0], [10.0, 10.0])
    assert alone.latencies == pytest.approx((2.0, 1.0))


def test_prefix_held_by_a_worker_saves_its_prefill() -> None:
    req = RequestShape(((CallShape("s", 1000, 10, prefix_tokens=900),), (CallShape("s", 1000, 10, prefix_tokens=900),)))
    result = Simulation([("w", ONE)], make_scheduler("eft+fcfs"), BudgetModel([req], [ONE])).run([req], [0.0], [10.0])
    assert result.latencies[0] == pytest.approx((1.0 + 0.1) + (0.1 + 0.1))


def test_trace_stages_group_parallel_candidates_and_evaluations(traces_dir: Path) -> None:
    trace = load_workflow_trace(traces_dir / "chess" / "trace1.json")
    assert len(trace) == 90
    first = trace[0]
    steps = [s[0].step for s in first.stages]
    assert first.calls == 17 and len(first.stages) < first.calls
    candidates = [s for s in first.stages if s[0].step.startswith("generate_candidate")]
    assert candidates and all(len(s) >= 2 for s in candidates)
    assert steps.count("evaluate") == 1


def test_azure_arrivals_rescale_to_the_asked_rate(traces_dir: Path) -> None:
    offsets = load_arrival_trace(traces_dir / "azure" / "AzureLLMInferenceTrace_code.csv")
    times = rescaled(offsets, 100, rate=2.0)
    assert times[0] == 0.0 and len(times) == 100
    assert 100 / 2.0 * 0.9 < times[-1] < 100 / 2.0 * 1.1


def test_mooncake_timestamps_are_read_in_seconds_and_rescale_too(traces_dir: Path) -> None:
    path = traces_dir / "mooncake" / "conversation_trace.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    offsets = load_arrival_trace(path)
    assert len(offsets) == 12_031 and offsets == sorted(offsets) and offsets[0] == 0.0
    assert 3000 < offsets[-1] < 4000  # about an hour: the file's milliseconds read as seconds
    times = rescaled(offsets, 100, rate=2.0, start=500)
    assert times[0] == 0.0 and len(times) == 100 and times[-1] <= 100 / 2.0


def test_capacity_is_the_throughput_of_every_slot_busy_and_bounds_what_completes() -> None:
    two = WorkerProfile("two", 0.001, 0.01, decode_slowdown=0.5, slots=2, context_tokens=4096)
    req = shape([(1000, 100)])  # 2 s alone; two at once take 3 s: 2/3 requests/s per worker
    assert capacity([("a", two)], [req]) == pytest.approx(2 / 3)
    assert capacity([("a", two), ("b", two)], [req]) == pytest.approx(4 / 3)
    # Far more arrivals than that: requests complete no faster than the capacity.
    arrivals = [0.01 * i for i in range(60)]
    result = Simulation([("a", two)], make_scheduler("eft+fcfs"), BudgetModel([req], [two])).run([req] * 60, arrivals, [1e9] * 60)
    finished_at = max(a + lat for a, lat in zip(arrivals, result.latencies))
    assert 60 / finished_at <= 2 / 3 + 1e-9


@pytest.fixture(scope="module")
def chess(traces_dir: Path) -> tuple[list, Workload]:
    cluster = parse_cluster("A100x2,A6000,L40S", traces_dir / "gpu_latency")
    return cluster, Workload(tuple(load_workflow_trace(traces_dir / "chess" / "trace1.json")), 80, 2.0)


def test_simulation_is_deterministic_and_finishes_every_request(chess: tuple[list, Workload]) -> None:
    cluster, wl = chess
    a = simulate(cluster, DEFAULT, wl, 0.2, seed=3)
    b = simulate(cluster, DEFAULT, wl, 0.2, seed=3)
    assert a == b and len(a.latencies) == 80 and all(x > 0 for x in a.latencies)


def test_gpu_tables_rank_the_cards(traces_dir: Path) -> None:
    cluster = dict(parse_cluster("A100,A6000,L40S", traces_dir / "gpu_latency"))
    a100, a6000 = cluster["A100-0"], cluster["A6000-1"]
    assert a100.decode_s_per_token < a6000.decode_s_per_token
    assert a100.kv_capacity > 4 * a6000.kv_capacity  # 80 GB vs 48 GB with ~37 GB of weights


def test_default_beats_round_robin_and_matches_earliest_finish(chess: tuple[list, Workload]) -> None:
    cluster, wl = chess
    ours = goodput(cluster, DEFAULT, wl, [1], rel_tol=0.05)
    assert ours > 1.5 * goodput(cluster, "rr+fcfs", wl, [1], rel_tol=0.05, hint=ours)
    assert ours >= 0.95 * goodput(cluster, "eft+fcfs", wl, [1], rel_tol=0.05, hint=ours)


def test_default_keeps_the_fast_batched_worker_uncrowded_for_a_call_short_of_time() -> None:
    fast = WorkerProfile("fast", 0.001, 0.01, decode_slowdown=0.05, slots=8, context_tokens=4096)
    slow = WorkerProfile("slow", 0.002, 0.02, decode_slowdown=0.05, slots=8, context_tokens=4096)
    relaxed, urgent = shape([(100, 500)]), shape([(100, 100)])  # 5.1 s and 1.1 s alone on the fast worker
    reqs = [relaxed] * 3 + [urgent]

    def run(spec: str) -> list[float]:
        sim = Simulation([("fast", fast), ("slow", slow)], make_scheduler(spec), BudgetModel(reqs, [fast, slow]))
        return list(sim.run(reqs, [0.0, 0.0, 0.0, 0.01], [100.0] * 3 + [1.24]).latencies)

    # Earliest finish batches all three relaxed calls on the fast worker: the urgent one runs 4-wide there.
    assert run("eft+fcfs")[3] == pytest.approx(1.1 * 1.15, rel=0.01)
    # Ours sends a relaxed call to the idle slow worker, so the urgent one runs 3-wide and makes it.
    assert run(DEFAULT)[3] == pytest.approx(1.1 * 1.10, rel=0.01)
    assert run("eft+fcfs")[3] > 1.24 > run(DEFAULT)[3]


def test_alpha_is_chosen_on_tuning_seeds_and_reported_on_held_out_ones(chess: tuple[list, Workload]) -> None:
    cluster, wl = chess
    choice = tune_alpha(cluster, wl, 0.25, seeds=[5], held_out=[6], grid=(0.0, 0.5, 1.0))
    assert choice.alpha in (0.0, 0.5, 1.0)
    assert choice.tuned_attainment == max(choice.grid.values())
    assert 0.0 <= choice.held_out_attainment <= 1.0


def test_sim_and_tune_commands_print_their_figures(traces_dir: Path) -> None:
    import json

    from typer.testing import CliRunner

    from sloflow.scheduler.sim.commands import app

    runner = CliRunner()
    trace = str(traces_dir / "chess" / "formula1.json")
    out = runner.invoke(app, ["sim", "--trace", trace, "--rate", "0.2", "--requests", "30", "--seeds", "1", "--scheduler", "rr+fcfs", "--scheduler", DEFAULT])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(figures[DEFAULT]) == {"attainment", "p50_s", "p95_s", "redispatched"}
    assert figures["capacity_req_s"] > 0
    assert figures[DEFAULT]["p95_s"] <= figures["rr+fcfs"]["p95_s"]
    out = runner.invoke(app, ["tune", "--trace", trace, "--rate", "0.2", "--requests", "30", "--seeds", "3", "--held-out", "4"])
    assert out.exit_code == 0, out.output
    tuned = json.loads(out.stdout.strip().splitlines()[-1])
    assert tuned["hexgen"]["alpha"] in [round(0.1 * i, 1) for i in range(11)] and tuned["held_out_seeds"] == [4]
    bad = runner.invoke(app, ["sim", "--cluster", "H100x2", "--rate", "0.1"])
    assert bad.exit_code == 2 and "A100" in bad.output
