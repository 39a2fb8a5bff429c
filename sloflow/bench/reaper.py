"""REAPER: plan accuracy on NESTFUL, and evidence recall and latency against a ReAct agent on tau2 retail.

Usage: sloflow bench reaper [--quick] [--limit N] [--nestful FILE --spec FILE] [--retail DIR --tasks FILE]
                            [--model NAME] [--predictions FILE] [--busy]

NESTFUL (non-executable): the items are split by index parity. Plan memory is warmed with the
gold plans of the odd items (standing for earlier requests whose plans worked); the even items
are planned with the same model, in the same run, by `reaper`'s planner with memory and without
(built-in examples), and by a single-call baseline: the no-memory planner's first call taken as it
came (the same prompt, one schema-constrained call, no repair, no default). Scores are in
`plan_scores`.

Retail (tau2-bench format): the read-only calls in each task's `actions` are its gold retrieval
plan; the request is the task's known info and reason for calling. tau2's read-only tools run
over the task's `db.json` (loaded into the demo store's SQLite tables) beside the store policy as
an index. The tasks are split by customer (in order of first appearance: even customers are
evaluated, odd ones are earlier sessions): plan memory is warmed with the odd customers' gold
calls written as plans (`plan_from_calls`: ids taken from earlier outputs become references), and
is not extended while the even customers' requests run, so no request sees its own customer's
plan. `reaper` and then `react` answer every evaluated request with the same model, one at a time.
Evidence recall = the share of gold read calls executed with equal arguments. Where a task lists
what the agent must tell the customer (`communicate_info`: a price, a count, a tracking number),
the answers are scored by the share of those values they state: a check of the answers, not only
of the evidence. With `--busy` the
retail part runs with `smollm2-135m` generating on one core beside it (`bench.load`), as another
worker would: both workflows' latencies are then measured on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sloflow.bench import plan_scores
from sloflow.bench.load import inference_load
from sloflow.bench.progress import say
from sloflow.bench.text2sql import percentile
from sloflow.config import get_settings
from sloflow.llm.client import CallContext, DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.llm.types import Chunk, Completion, GenerateRequest
from sloflow.planners.plans import nestful_sources, parse_plan
from sloflow.planners.plans.execute import StepRecord
from sloflow.planners.plans.from_calls import plan_from_calls
from sloflow.planners.plans.memory import PlanMemory
from sloflow.planners.plans.planner import make_plan
from sloflow.workflows.context import RunScope, StageLLM

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAMESPACE = "retail-bench"
READ_TOOLS = {"find_user_id_by_email", "find_user_id_by_name_zip", "get_user_details", "get_order_details", "get_product_details", "list_all_product_types"}


class CountingClient(DirectClient):
    """A direct client that counts calls per run id and keeps each call's stage, tokens and timings."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.calls: Counter[str] = Counter()
        self.completions: dict[str, list[tuple[str, Completion]]] = {}

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        self.calls[ctx.run_id] += 1
        out = await super().generate(request, ctx)
        self.completions.setdefault(ctx.run_id, []).append((ctx.stage, out))
        return out

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        """Streamed calls (plans, which the planner may close early) are counted and timed as well."""
        self.calls[ctx.run_id] += 1
        start, first, pieces, done = time.perf_counter(), None, 0, None
        try:
            async with contextlib.aclosing(super().stream(request, ctx)) as chunks:
                async for chunk in chunks:
                    if chunk.text:
                        first, pieces = first or time.perf_counter(), pieces + 1
                    done = chunk.completion or done
                    yield chunk
        finally:
            end = time.perf_counter()
            # A stream closed early has no completion: its tokens are its pieces (one per token here).
            out = done or Completion(text="", prompt_tokens=0, completion_tokens=pieces, ttft_s=(first or end) - start, total_s=end - start)
            self.completions.setdefault(ctx.run_id, []).append((ctx.stage, out))


def llm_time(completions: list[tuple[str, Completion]]) -> dict[str, Any]:
    """Where a run's LLM time went: prefill (to the first token) and decode seconds, and the calls.

    `floor_s` is what a reaper run cannot do without whatever the prompts: decoding one plan and
    writing the answer (prefill of the evidence and decode). Only the plan prompt's prefill and a
    repair could go.
    """
    prefill = sum(c.ttft_s for _, c in completions)
    decode = sum(c.total_s - c.ttft_s for _, c in completions)
    plans = [c for stage, c in completions if stage == "plan"]
    answers = [c for stage, c in completions if stage == "answer"]
    floor = (plans[0].total_s - plans[0].ttft_s if plans else 0.0) + sum(c.total_s for c in answers)
    return {
        "prefill_s": round(prefill, 2),
        "decode_s": round(decode, 2),
        "floor_s": round(floor, 2),
        "calls": [
            {"stage": stage, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "ttft_s": round(c.ttft_s, 2), "total_s": round(c.total_s, 2)}
            for stage, c in completions
        ],
    }


def _llm(client: Any, name: str) -> StageLLM:
    """`ctx.llm` outside a run: the planner makes the same calls it makes in a stage."""
    return StageLLM(RunScope(run_id=name, workflow="bench", client=client), CallContext(run_id=name, workflow="bench", stage="plan"))


# --- NESTFUL ---------------------------------------------------------------------------------


async def nestful(client: Any, data: list[dict[str, Any]], spec: list[dict[str, Any]], limit: int | None, record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    sources = nestful_sources(spec)
    warm = [(i, d) for i, d in enumerate(data) if i % 2 == 1]
    evaluate = [(i, d) for i, d in enumerate(data) if i % 2 == 0][:limit]
    memory = PlanMemory()
    for _, item in warm:
        memory.remember("nestful", item["input"], parse_plan(item["output"]), sources)
    say(f"nestful: {len(sources)} tools; memory warmed with the gold plans of {len(warm)} odd items; {len(evaluate)} even items planned")
    scores: dict[str, list[dict[str, float]]] = {"memory": [], "no_memory": [], "single_call": []}
    outcomes: Counter[str] = Counter()
    seconds: list[float] = []
    for n, (i, item) in enumerate(evaluate, 1):
        gold = item["output"]
        line: dict[str, Any] = {"set": "nestful", "id": i}
        for mode in ("memory", "no_memory"):
            examples = memory.examples("nestful", item["input"], sources, k=3) if mode == "memory" else []
            start = time.perf_counter()
            planned = await make_plan(_llm(client, f"nestful-{i}-{mode}"), item["input"], sources, examples)
            predicted = planned.plan.to_nestful()
            scores[mode].append(_score(predicted, gold))
            if mode == "memory":
                seconds.append(time.perf_counter() - start)
                outcomes[planned.outcome] += 1
                line.update(plan=predicted, outcome=planned.outcome, notes=planned.notes, attempts=planned.attempts)
            else:
                # The same item without memory, for reading the scores: the plan, and what the planner saw wrong.
                line.update(no_memory_plan=predicted, no_memory_outcome=planned.outcome, no_memory_notes=planned.notes, no_memory_attempts=planned.attempts)
                record(line)
                # The single-call baseline is that same first call (same prompt, no memory), taken
                # as it came: no repair, no default plan.
                first = planned.attempts[0] if planned.attempts else None
                scores["single_call"].append(_score(_steps(first), gold))
        say(f"  [{n}/{len(evaluate)}] item {i}: f1 {scores['memory'][-1]['function_f1']:.2f} (no memory {scores['no_memory'][-1]['function_f1']:.2f}, single call {scores['single_call'][-1]['function_f1']:.2f})")
    mean = {mode: {k: round(statistics.fmean(s[k] for s in rows), 4) if rows else 0.0 for k in ("function_f1", "argument_f1", "sequence", "exact")} for mode, rows in scores.items()}
    return {
        "nestful_items": len(evaluate),
        "nestful_memory_warmed_with": f"gold plans of the {len(warm)} odd-index items (evaluated: even indexes)",
        "nestful_function_f1": mean["memory"]["function_f1"],
        "nestful_argument_f1": mean["memory"]["argument_f1"],
        "nestful_sequence_accuracy": mean["memory"]["sequence"],
        "nestful_exact_match": mean["memory"]["exact"],
        "nestful_function_f1_no_memory": mean["no_memory"]["function_f1"],
        "nestful_argument_f1_no_memory": mean["no_memory"]["argument_f1"],
        "nestful_exact_match_no_memory": mean["no_memory"]["exact"],
        "nestful_function_f1_single_call": mean["single_call"]["function_f1"],
        "nestful_argument_f1_single_call": mean["single_call"]["argument_f1"],
        "nestful_exact_match_single_call": mean["single_call"]["exact"],
        "nestful_plan_outcomes": dict(outcomes),
        "nestful_plan_p50_s": round(statistics.median(seconds), 2) if seconds else None,
    }


def _steps(raw: Any) -> list[dict[str, Any]]:
    try:
        return parse_plan(raw).to_nestful() if raw is not None else []
    except Exception:  # noqa: BLE001 - an unreadable answer scores as an empty plan
        return []


def _score(predicted: list[dict[str, Any]], gold: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "function_f1": plan_scores.function_f1(predicted, gold),
        "argument_f1": plan_scores.argument_f1(predicted, gold),
        "sequence": float(plan_scores.same_sequence(predicted, gold)),
        "exact": float(plan_scores.exact_match(predicted, gold)),
    }


# --- retail ----------------------------------------------------------------------------------


class FrozenPlanMemory(PlanMemory):
    """Plan memory that runs read but do not extend: every evaluated request sees the warm split only."""

    def warm(self, namespace: str, request: str, plan: Any, sources: Any) -> int:
        """Store a plan before the runs (the only way in)."""
        return super().remember(namespace, request, plan, sources)

    def remember(self, namespace: str, request: str, plan: Any, sources: Any) -> int:
        return -1


def gold_trace(store: Any, gold: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
    """The gold calls with what they return on the store (None for a call the store refuses)."""
    trace = []
    for call in gold:
        try:
            output = getattr(store, call["name"])(**call["arguments"])
        except Exception:  # noqa: BLE001 - a gold call may name a record the data lacks
            output = None
        trace.append((call["name"], call["arguments"], output))
    return trace


def customer(trace: list[tuple[str, dict[str, Any], Any]]) -> str:
    """The user a task is about: what a find_user_id_* call returned, else a user_id argument."""
    for name, arguments, output in trace:
        if name.startswith("find_user_id") and isinstance(output, str):
            return output
        if "user_id" in arguments:
            return str(arguments["user_id"])
    return ""


def split_by_customer(requests: list[tuple[str, str, list[dict[str, Any]]]], store: Any) -> tuple[list[Any], list[Any]]:
    """(evaluated, warm): requests of the customers at even positions of first appearance, and of the odd ones."""
    order: dict[str, int] = {}
    evaluated, warm = [], []
    for request in requests:
        trace = gold_trace(store, request[2])
        position = order.setdefault(customer(trace), len(order))
        (warm if position % 2 else evaluated).append((*request, trace))
    return evaluated, warm


def retail_requests(tasks: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(task id, request, gold read calls) of every task that has read calls."""
    out = []
    for task in tasks:
        info = task["user_scenario"]["instructions"]
        gold = [{"name": a["name"], "arguments": a["arguments"]} for a in task["evaluation_criteria"]["actions"] if a["name"] in READ_TOOLS]
        if gold:
            out.append((str(task["id"]), f"{info['known_info'].strip()} {info['reason_for_call'].strip()}", gold))
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    text = str(value).strip().lower()
    return text[1:] if text.startswith("#") else text  # "#W123" and "W123" name the same order


def evidence_recall(executed: list[dict[str, Any]], gold: list[dict[str, Any]], *, repeats: bool = False) -> float:
    """The share of gold calls that were executed (name and normalised arguments equal).

    A gold session often makes the same read call twice (it looked an order up again); the evidence
    is the same, so by default one execution covers every repeat. `repeats=True` asks one execution
    per repeat (a multiset), as the figures before 2026-12-02 afternoon did.
    """
    have = Counter((c["name"], _norm(c["arguments"])) for c in executed)
    found = 0
    for g in gold:
        key = (g["name"], _norm(g["arguments"]))
        if have[key] > 0:
            found += 1
            if repeats:
                have[key] -= 1
    return found / len(gold)


def info_stated(answer: str, info: list[str]) -> float:
    """The share of the values the customer must be told (tau2's `communicate_info`) that `answer` states.

    A number counts written with or without thousands separators and a currency sign, and only as a
    whole number ("10" is not found in "$10.50" or "100").
    """
    said = re.sub(r"(?<=\d),(?=\d{3})", "", answer.casefold()).replace("$", "")
    found = sum(1 for value in info if re.search(rf"(?<![\w.]){re.escape(value.casefold().replace(',', '').replace('$', ''))}(?![\w]|\.\d)", said))
    return found / len(info)


def reachable_share(request: str, trace: list[tuple[str, dict[str, Any], Any]], listing: Any) -> float:
    """The share of gold calls whose argument values the request, the product listing or another reachable gold call's output holds.

    A plan's values come from the question or from what its sources return (an id the question does
    not give is refused as invented), so no plan recalls a gold call with a value the customer only
    gave later in the session (a wrong zip code first, then the right one).
    """
    seen = f"{request} {json.dumps(listing, ensure_ascii=False)}".casefold()
    pending = list(trace)
    reached = 0
    while True:  # to a fixpoint: a call reached may give the values of one before it
        ready = [c for c in pending if all(str(_norm(v)) in seen for v in c[1].values())]
        if not ready:
            return reached / len(trace)
        for call in ready:
            pending.remove(call)
            reached += 1
            seen += " " + json.dumps(call[2], ensure_ascii=False).casefold()


def executed_calls(workflow: str, output: dict[str, Any]) -> list[dict[str, Any]]:
    """The source calls a run made, each with its own arguments."""
    if workflow == "react":
        return [{"name": s["source"], "arguments": s["arguments"]} for s in output.get("steps", []) if "output" in s or "error" in s]
    return [c for r in output.get("calls", []) for c in StepRecord(**r).calls()]


async def retail(client: CountingClient, folder: Path, tasks_file: Path, limit: int | None, slo: float, record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    from sloflow.demo.retail import POLICY_INDEX, RetailStore, build_retail_db, register_retail
    from sloflow.retrieval.chunking import Document
    from sloflow.retrieval.databases import DatabaseRegistry
    from sloflow.retrieval.document_index import IndexConfig, IndexRegistry
    from sloflow.retrieval.sources import SourceRegistry
    from sloflow.workflows import MemoryRunStore, Registry, Runtime
    from sloflow.workflows.builtin import react, reaper

    with tempfile.TemporaryDirectory() as tmp:
        store = RetailStore(build_retail_db(Path(tmp) / "retail.sqlite", json.loads((folder / "db.json").read_text())))
        sources = SourceRegistry(IndexRegistry(Path(tmp) / "indexes"), DatabaseRegistry(Path(tmp) / "databases.json"))
        register_retail(sources, store)
        policy = folder / "policy.md"
        if policy.exists():
            sources.indexes.create(POLICY_INDEX, IndexConfig(faiss_kind="flat", description="the store's policy")).add_documents([Document("policy", policy.read_text())])
        tasks = json.loads(tasks_file.read_text())
        evaluated, warm = split_by_customer(retail_requests(tasks), store)
        told = {str(t["id"]): t["evaluation_criteria"].get("communicate_info") or [] for t in tasks}
        listing = store.list_all_product_types()  # for the reachable share: every product id a plan could find
        requests = evaluated[:limit]
        memory = FrozenPlanMemory()
        for _, request, _, trace in warm:
            memory.warm(NAMESPACE, request, plan_from_calls(trace), sources.catalog())
        registry = Registry()
        registry.add(reaper.reaper)
        registry.add(react.react)
        runtime = Runtime(MemoryRunStore(), None, client=client, tools=reaper.tools(sources, memory), registry=registry)
        say(f"retail: {len(requests)} of {len(evaluated)} requests of even customers run; memory warmed with the gold calls of {len(warm)} requests of odd customers")
        figures: dict[str, dict[str, list[float]]] = {w: {"recall": [], "recall_repeats": [], "info": [], "seconds": [], "calls": [], "met": [], "prefill": [], "decode": [], "floor": []} for w in ("reaper", "react")}
        # One workflow over every request, then the other: a worker serving one workflow keeps its
        # prompts' shared prefix cached, which alternating the two would evict at every request.
        for workflow in ("reaper", "react"):
            for n, (task_id, request, gold, _) in enumerate(requests, 1):
                start = time.perf_counter()
                run = await runtime.run(workflow, {"question": request, "namespace": NAMESPACE} if workflow == "reaper" else {"question": request}, slo=slo)
                seconds = time.perf_counter() - start
                out = run.output or {}
                calls = executed_calls(workflow, out)
                recall = evidence_recall(calls, gold)
                f = figures[workflow]
                f["recall"].append(recall)
                f["recall_repeats"].append(evidence_recall(calls, gold, repeats=True))
                f["seconds"].append(seconds)
                f["calls"].append(client.calls[run.id])
                f["met"].append(float(bool(run.deadline_met)))
                llm = llm_time(client.completions.get(run.id, []))
                f["prefill"].append(llm["prefill_s"])
                f["decode"].append(llm["decode_s"])
                f["floor"].append(llm["floor_s"])
                if told[task_id]:
                    f["info"].append(info_stated(str(out.get("answer") or ""), told[task_id]))
                record(
                    {"set": "retail", "id": task_id, "workflow": workflow, "calls": calls, "plan": out.get("plan"), "answer": out.get("answer"), "notes": out.get("notes", []), "llm": llm}
                )
                say(f"  {workflow} [{n}/{len(requests)}] task {task_id}: recall {recall:.2f} in {seconds:.1f} s, {client.calls[run.id]} calls")
    p50 = {w: statistics.median(f["seconds"]) for w, f in figures.items()}
    return {
        "retail_items": len(requests),
        "retail_evidence_recall": round(statistics.fmean(figures["reaper"]["recall"]), 4),
        "react_evidence_recall": round(statistics.fmean(figures["react"]["recall"]), 4),
        "retail_evidence_recall_repeats": round(statistics.fmean(figures["reaper"]["recall_repeats"]), 4),
        "react_evidence_recall_repeats": round(statistics.fmean(figures["react"]["recall_repeats"]), 4),
        # the answers: the share of what the customer must be told that they state (tasks that list it)
        "retail_answer_info_items": len(figures["reaper"]["info"]),
        "retail_answer_info_stated": round(statistics.fmean(figures["reaper"]["info"]), 4) if figures["reaper"]["info"] else None,
        "react_answer_info_stated": round(statistics.fmean(figures["react"]["info"]), 4) if figures["react"]["info"] else None,
        # the most any plan could recall: gold values the request or earlier gold outputs hold
        "retail_evidence_recall_reachable": round(statistics.fmean(reachable_share(r, trace, listing) for _, r, _, trace in requests), 4),
        "p50_latency_ratio_react_over_reaper": round(p50["react"] / p50["reaper"], 2),
        "reaper_p50_s": round(p50["reaper"], 2),
        "reaper_p95_s": round(percentile(figures["reaper"]["seconds"], 95), 2),
        "react_p50_s": round(p50["react"], 2),
        "react_p95_s": round(percentile(figures["react"]["seconds"], 95), 2),
        "llm_calls_reaper": round(statistics.fmean(figures["reaper"]["calls"]), 2),
        "llm_calls_react": round(statistics.fmean(figures["react"]["calls"]), 2),
        "reaper_prefill_p50_s": round(statistics.median(figures["reaper"]["prefill"]), 2),
        "reaper_decode_p50_s": round(statistics.median(figures["reaper"]["decode"]), 2),
        "react_prefill_p50_s": round(statistics.median(figures["react"]["prefill"]), 2),
        "react_decode_p50_s": round(statistics.median(figures["react"]["decode"]), 2),
        # reaper's floor (one plan decoded, the answer written) against react's measured P50: the
        # ratio no planner prompt or cache could take reaper past with this model on these cores.
        "reaper_floor_p50_s": round(statistics.median(figures["reaper"]["floor"]), 2),
        "p50_ratio_bound_react_over_reaper_floor": round(p50["react"] / max(statistics.median(figures["reaper"]["floor"]), 1e-9), 2),
        "retail_slo_s": slo,
        "retail_memory_warmed_with": f"gold calls of the {len(warm)} requests of odd customers, as plans (evaluated: even customers; memory not extended)",
    }


def main(quick: bool = False, args: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="sloflow bench reaper")
    parser.add_argument("--nestful", type=Path, default=DATA / "plans" / "nestful" / "glaive-data.json", help="NESTFUL items (input, output plan)")
    parser.add_argument("--spec", type=Path, default=DATA / "plans" / "nestful" / "glaive-spec.json", help="NESTFUL tool specs")
    parser.add_argument("--retail", type=Path, default=DATA / "retail", help="tau2 retail folder (db.json, policy.md)")
    parser.add_argument("--tasks", type=Path, default=None, help="tau2 tasks (default: RETAIL/tasks_train.json)")
    parser.add_argument("--limit", type=int, default=None, help="items per set (default all; --quick: 1 NESTFUL item, 1 retail task)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="embedded model (planner, answerer and agent)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slo", type=float, default=300.0, help="deadline of each retail run (s)")
    parser.add_argument("--only", choices=["nestful", "retail"], default=None)
    parser.add_argument("--predictions", type=Path, default=None, help="write one JSON line per item")
    parser.add_argument("--busy", action="store_true", help="run the retail part with a model generating on one core beside it")
    opts = parser.parse_args(args or [])
    # One item each: a NESTFUL item costs two plans, a retail task a reaper and a react run.
    nestful_limit = opts.limit or (1 if quick else None)
    retail_limit = opts.limit or (1 if quick else None)
    backend = EmbeddedBackend(opts.model, models_dir=get_settings().home / "models", threads=opts.threads, context_tokens=8192)
    client = CountingClient(backend)
    # Each prediction is written as soon as its item is done: a long run can be read while it goes.
    sink = opts.predictions.open("w", encoding="utf-8") if opts.predictions else None

    def record(prediction: dict[str, Any]) -> None:
        if sink is not None:
            sink.write(json.dumps(prediction, ensure_ascii=False) + "\n")
            sink.flush()

    figures: dict[str, Any] = {"model": opts.model, "quick": quick, "retail_busy": opts.busy}
    started = time.perf_counter()

    async def run() -> None:
        try:
            if opts.only in (None, "nestful"):
                data, spec = json.loads(opts.nestful.read_text()), json.loads(opts.spec.read_text())
                figures.update(await nestful(client, data, spec, nestful_limit, record))
            if opts.only in (None, "retail"):
                tasks = opts.tasks or opts.retail / "tasks_train.json"
                with inference_load() if opts.busy else contextlib.nullcontext():
                    figures.update(await retail(client, opts.retail, tasks, retail_limit, opts.slo, record))
        finally:
            await backend.close()
            if sink is not None:
                sink.close()

    asyncio.run(run())
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures
