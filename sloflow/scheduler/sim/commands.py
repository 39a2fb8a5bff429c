"""`sloflow sim` and `sloflow tune`: simulate any cluster, trace, arrival process and policies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sloflow.errors import SloflowError
from sloflow.scheduler.policies.scheduler import BASELINES, DEFAULT
from sloflow.scheduler.sim.experiment import Workload, capacity, goodput, parse_cluster, simulate
from sloflow.scheduler.sim.simulator import percentile
from sloflow.scheduler.sim.traces import TRACES_DIR, load_arrival_trace, load_workflow_trace
from sloflow.scheduler.sim.tune import ALPHAS, tune_alpha, tune_variant

app = typer.Typer(help="Scheduler simulation and tuning.", no_args_is_help=True)

Cluster = Annotated[str, typer.Option(help="comma-separated GPU or GPUxN from the tables (A100, A6000, L40S), or a profiles .json")]
Trace = Annotated[Path, typer.Option(help="workflow trace (CHESS format)")]
Arrivals = Annotated[Optional[Path], typer.Option(help="arrival trace CSV (Azure format) rescaled to the rate; default Poisson")]
Scale = Annotated[float, typer.Option(help="deadline = scale x standalone latency")]
Requests = Annotated[int, typer.Option(help="requests per run")]
Seeds = Annotated[str, typer.Option(help="comma-separated seeds")]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"seeds must be integers separated by commas, not {text!r}") from None


def _workload(trace: Path, requests: int, scale: float, arrivals: Path | None) -> Workload:
    offsets = tuple(load_arrival_trace(arrivals)) if arrivals else None
    return Workload(tuple(load_workflow_trace(trace)), requests, scale, arrivals=offsets)


def _emit(figures: dict) -> None:
    sys.stdout.write(json.dumps(figures) + "\n")


@app.command("sim")
def sim(
    cluster: Cluster = "A100x2,A6000,L40S",
    trace: Trace = TRACES_DIR / "chess" / "trace1.json",
    arrivals: Arrivals = None,
    rate: Annotated[Optional[float], typer.Option(help="requests/s; omit to search the goodput")] = None,
    scheduler: Annotated[Optional[list[str]], typer.Option(help="dispatch+queue[+redispatch]; repeatable")] = None,
    alpha: Annotated[float, typer.Option(help="HEXGEN workload-balance alpha")] = 0.5,
    scale: Scale = 2.0,
    requests: Requests = 200,
    seeds: Seeds = "1,2",
) -> None:
    """Simulate schedulers: attainment and P50/P95 at --rate, or goodput when --rate is omitted."""
    try:
        workers = parse_cluster(cluster, TRACES_DIR / "gpu_latency")
        wl = _workload(trace, requests, scale, arrivals)
        out: dict = {"cluster": cluster, "trace": str(trace), "deadline_scale": scale, "requests": requests, "arrivals": str(arrivals or "poisson")}
        out["capacity_req_s"] = round(capacity(workers, wl.trace), 4)
        for name in scheduler or [DEFAULT, *BASELINES]:
            if rate is None:
                g = goodput(workers, name, wl, _seeds(seeds), alpha=alpha)
                out[name] = {"goodput_req_s": round(g, 4)}
            else:
                runs = [simulate(workers, name, wl, rate, s, alpha=alpha) for s in _seeds(seeds)]
                lat = [x for r in runs for x in r.latencies]
                out[name] = {
                    "attainment": round(sum(r.attainment for r in runs) / len(runs), 3),
                    "p50_s": round(percentile(lat, 50), 2),
                    "p95_s": round(percentile(lat, 95), 2),
                    "redispatched": sum(r.redispatched for r in runs),
                }
            typer.echo(f"{name:40} {out[name]}", err=True)
    except SloflowError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(2) from None
    _emit(out)


@app.command("tune")
def tune(
    cluster: Cluster = "A100x2,A6000,L40S",
    trace: Trace = TRACES_DIR / "chess" / "trace1.json",
    arrivals: Arrivals = None,
    rate: Annotated[Optional[float], typer.Option(help="requests/s to tune at; default: earliest-finish goodput")] = None,
    scale: Scale = 2.0,
    requests: Requests = 200,
    seeds: Seeds = "11,12",
    held_out: Annotated[str, typer.Option(help="seeds the choice is reported on")] = "1,2",
) -> None:
    """Grid-search HEXGEN's alpha and our default's variants on some seeds; report on held-out seeds."""
    try:
        workers = parse_cluster(cluster, TRACES_DIR / "gpu_latency")
        wl = _workload(trace, requests, scale, arrivals)
        tune_seeds, test_seeds = _seeds(seeds), _seeds(held_out)
        at = rate or goodput(workers, "eft+fcfs", wl, tune_seeds)
        hexgen = tune_alpha(workers, wl, at, tune_seeds, test_seeds, grid=ALPHAS)
        ours = tune_variant(workers, wl, at, tune_seeds, test_seeds)
    except SloflowError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"rate {at:.4f} req/s; hexgen alpha {hexgen.alpha} (held-out attainment {hexgen.held_out_attainment:.3f}); "
               f"ours {ours.scheduler} (held-out attainment {ours.held_out_attainment:.3f})", err=True)
    _emit({
        "rate_req_s": round(at, 4),
        "tuning_seeds": tune_seeds,
        "held_out_seeds": test_seeds,
        "hexgen": {"alpha": hexgen.alpha, "tuned_attainment": round(hexgen.tuned_attainment, 3), "held_out_attainment": round(hexgen.held_out_attainment, 3), "grid": hexgen.grid},
        "ours": {"scheduler": ours.scheduler, "tuned_attainment": round(ours.tuned_attainment, 3), "held_out_attainment": round(ours.held_out_attainment, 3), "grid": ours.grid},
    })
