"""Overhead of the sloflow runtime over the same graph written directly in LangGraph.

No-op stages in a chain of 1, 5 and 20, without a checkpointer (sloflow with an in-memory run
store) and with LangGraph's SQLite checkpointer (sloflow also keeping its SQLite run store and
event log). Both sides write each step's checkpoint before the next (durability "sync").
Rounds interleave every variant, alternating which side goes first, so drifts in machine load
hit both alike; a variant's time is its median over the rounds, ratio = sloflow / LangGraph.

Without checkpoints a run is pure computation in this process, so it is timed in process CPU
time: on a shared machine a wall clock also counts the ~4 ms slices in which other processes
run, which makes times multi-modal and medians jump between modes. With checkpoints a run waits
on the disk (fsync), so it is timed by the wall clock. The wall-clock ratio without checkpoints
is given too (`wall_ratio_no_ckpt_*`, median over rounds of the ratio of the round's two runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from sloflow.bench.progress import say
from sloflow.workflows import MemoryRunStore, Registry, Runtime, SqliteRunStore, Workflow
from sloflow.workflows.checkpoints import open_checkpointer

SIZES = (1, 5, 20)


class Counter(TypedDict, total=False):
    n: int


def _langgraph_chain(stages: int) -> StateGraph:
    graph = StateGraph(Counter)
    previous = START
    for i in range(stages):

        async def noop(state: Counter) -> dict[str, Any]:
            return {}

        graph.add_node(f"s{i}", noop)
        graph.add_edge(previous, f"s{i}")
        previous = f"s{i}"
    graph.add_edge(previous, END)
    return graph


def _sloflow_chain(stages: int) -> Workflow:
    wf = Workflow(f"chain{stages}", state=Counter, slo=60.0)
    for i in range(stages):

        async def noop(state: Counter, ctx: Any) -> dict[str, Any]:
            return {}

        wf.stage(noop, name=f"s{i}")
    return wf.then(*wf.stages)


async def _variants(folder: Path, saver: Any) -> dict[str, Callable[[int], Awaitable[Any]]]:
    """name -> a function running one request of that variant (its argument keeps ids unique)."""
    registry = Registry()
    for n in SIZES:
        registry.add(_sloflow_chain(n))
    ephemeral = Runtime(MemoryRunStore(), None, registry=registry)
    durable = Runtime(SqliteRunStore(folder / "runs.sqlite"), saver, registry=registry)
    out: dict[str, Callable[[int], Awaitable[Any]]] = {}
    for n in SIZES:
        plain = _langgraph_chain(n).compile()
        saved = _langgraph_chain(n).compile(checkpointer=saver)

        def lg_plain(i: int, g: Any = plain, n: int = n) -> Awaitable[Any]:
            return g.ainvoke({"n": 0}, {"configurable": {"thread_id": f"p{n}-{i}"}})

        def lg_saved(i: int, g: Any = saved, n: int = n) -> Awaitable[Any]:
            return g.ainvoke({"n": 0}, {"configurable": {"thread_id": f"c{n}-{i}"}}, durability="sync")

        def sf_plain(i: int, n: int = n) -> Awaitable[Any]:
            return ephemeral.run(f"chain{n}", {"n": 0})

        def sf_saved(i: int, n: int = n) -> Awaitable[Any]:
            return durable.run(f"chain{n}", {"n": 0})

        out |= {f"langgraph_no_ckpt_{n}": lg_plain, f"sloflow_no_ckpt_{n}": sf_plain}
        out |= {f"langgraph_ckpt_{n}": lg_saved, f"sloflow_ckpt_{n}": sf_saved}
    return out


async def _measure(variants: dict[str, Callable[[int], Awaitable[Any]]], kind: str, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    names = [v for v in variants if f"_{kind}_" in v]
    for name in names:  # warm-up: first compilations, caches, SQLite pages
        for i in range(3):
            await variants[name](-1 - i)
    # As timeit does, the collector runs between rounds, not inside a timed call: a full
    # collection lands on whichever call happens to trigger it, in step with the round.
    gc.freeze()  # what exists now (modules, graphs) is never garbage: keep it out of every pass
    gc.disable()
    try:
        for r in range(rounds):
            gc.collect(1 if r % 100 else 2)
            order = names if r % 2 == 0 else list(reversed(names))
            for name in order:
                c0, t0 = time.process_time(), time.perf_counter()
                await variants[name](r)
                t1, c1 = time.perf_counter(), time.process_time()
                times.setdefault(name, []).append(t1 - t0)
                times.setdefault(f"cpu_{name}", []).append(c1 - c0)
            if (r + 1) % max(rounds // 5, 1) == 0:
                say(f"  {kind}: {r + 1}/{rounds} rounds")
    finally:
        gc.enable()
        gc.unfreeze()
    return times


async def _run(rounds_plain: int, rounds_ckpt: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with open_checkpointer(folder / "checkpoints.sqlite") as saver:
            variants = await _variants(folder, saver)
            for kind, rounds in (("no_ckpt", rounds_plain), ("ckpt", rounds_ckpt)):
                say(f"{kind}: {rounds} interleaved rounds of {len(SIZES) * 2} variants")
                times = await _measure(variants, kind, rounds)
                extra: dict[int, float] = {}
                clock = "cpu_" if kind == "no_ckpt" else ""
                for n in SIZES:
                    lg = statistics.median(times[f"{clock}langgraph_{kind}_{n}"]) * 1e3
                    sf = statistics.median(times[f"{clock}sloflow_{kind}_{n}"]) * 1e3
                    extra[n] = (sf - lg) * 1e3
                    figures |= {
                        f"langgraph_ms_{kind}_{n}": round(lg, 3),
                        f"sloflow_ms_{kind}_{n}": round(sf, 3),
                        f"ratio_{kind}_{n}": round(sf / lg, 3),
                    }
                    line = f"  {n:2d} stages: langgraph {lg:8.3f} ms  sloflow {sf:8.3f} ms  ratio {sf / lg:.3f}"
                    if clock:
                        pairs = zip(times[f"sloflow_{kind}_{n}"], times[f"langgraph_{kind}_{n}"])
                        wall = statistics.median(a / b for a, b in pairs)
                        figures[f"wall_ratio_{kind}_{n}"] = round(wall, 3)
                        line += f"  (cpu time; wall-clock ratio {wall:.3f})"
                    say(line)
                # The slope between 1 and 20 stages separates per-stage cost from per-run cost.
                per_stage = (extra[20] - extra[1]) / 19
                figures[f"overhead_us_per_stage_{kind}"] = round(per_stage, 1)
                figures[f"overhead_us_per_run_{kind}"] = round(extra[1] - per_stage, 1)
    return figures


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench runtime")
    parser.add_argument("--rounds", type=int, help="rounds without checkpoints (default 150 quick, 1000 full)")
    parser.add_argument("--rounds-ckpt", type=int, help="rounds with checkpoints (default 25 quick, 150 full)")
    opts = parser.parse_args(args or [])
    rounds_plain = opts.rounds or (150 if quick else 1000)
    rounds_ckpt = opts.rounds_ckpt or (25 if quick else 150)
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "quick": quick,
        "rounds_no_ckpt": rounds_plain,
        "rounds_ckpt": rounds_ckpt,
        "clock_no_ckpt": "process cpu time",
        "clock_ckpt": "wall clock",
    }
    figures |= asyncio.run(_run(rounds_plain, rounds_ckpt))
    figures["overhead_ratio_no_ckpt"] = figures["ratio_no_ckpt_5"]
    figures["overhead_ratio_ckpt"] = figures["ratio_ckpt_5"]
    figures["goal_no_ckpt"], figures["goal_ckpt"] = 1.2, 1.1
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures
