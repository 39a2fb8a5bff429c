"""Sleep-time compute on GSM8K (PAPERS.md section 4): test-time tokens, accuracy and latency with and
without a learned context, the amortised cost per question, and the interference of learn passes
with an interactive workload on the same worker.

Usage: sloflow bench sleeptime [--data FILE] [--limit N] [--followups F] [--samples S] [--solve N] [--compute] [--model NAME]
                               [--threads T] [--predictions FILE] [--rate R] [--interactive N] [--interactive-slo S]
Each problem is split as in the paper: every sentence but the last is the context, the last is the
question. Everything runs through sloflow itself: one llama.cpp worker behind the Ray scheduler,
the durable runtime, the `sleeptime` workflow (with `use_learned=false` for the baseline: a
step-by-step answer; with it, a question the learn pass solved reuses that result and any other is
answered as the baseline is, or with `--compute` by a program continuing the learned values when that
gives a number) and the learn queue running `sleeptime.learn` as background work; each pass
solves its `--solve` likeliest anticipated questions `--samples` times with the baseline's own
request and keeps the majority result, and all of that is counted in its learn tokens.

Amortisation, measured (the paper's multi-query setting): before anything is learned, the model
writes `--followups` new questions about each context (`sleeptime.followups`, background-class
calls, from the raw context and its question only). Every follow-up is answered like the problem's
own question, without a learned context (step by step: the baseline, and its worked answer) and
with it; it counts as consistent when both answers end in the same number. The cost per question
at k questions per context is (learn tokens + the test-time tokens with, of the first k questions)
/ k, against the baseline's test-time tokens of the same k questions / k, over the contexts that
have k questions (the problem's own and k - 1 follow-ups). Writing the follow-ups is the bench's
stand-in for users asking them and is counted in neither.

Interference: `--interactive` chat-shaped calls (a short answer, 16 tokens, deadline
`--interactive-slo` seconds) one every 1/`--rate` seconds on the same worker, once with nothing
else queued and once while the learn queue works through every context.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.bench.text2sql import percentile
from sloflow.config import get_settings
from sloflow.workflows.builtin.sleeptime.prompts import last_number

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "gsm8k" / "test_dev.jsonl"
TENANT = "bench"
QUESTIONS_PER_CONTEXT = (1, 2, 5, 10)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9$])")


def split_problem(problem: str) -> tuple[str, str] | None:
    """(context, question): every sentence but the last, and the last; None for a one-sentence problem."""
    sentences = [s.strip() for s in _SENTENCE.split(problem.strip()) if s.strip()]
    if len(sentences) < 2:
        return None
    return " ".join(sentences[:-1]), sentences[-1]


def load_problems(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """GSM8K lines split into context and question, with the gold number."""
    problems = []
    for i, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        split = split_problem(row["question"])
        gold = last_number(row["answer"].rsplit("####", 1)[-1])
        if split is None or gold is None:
            continue
        problems.append({"id": f"gsm8k-{i}", "context": split[0], "question": split[1], "gold": gold})
        if limit is not None and len(problems) >= limit:
            break
    return problems


def options(args: list[str] | None, quick: bool = False) -> argparse.Namespace:
    """The command line, with the defaults of a full or a `--quick` run filled in."""
    parser = argparse.ArgumentParser(prog="sloflow bench sleeptime")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K-format JSON lines (question, answer ending '#### N')")
    parser.add_argument("--limit", type=int, default=None, help="problems (default: all; --quick: 1)")
    parser.add_argument("--followups", type=int, default=None, help="follow-up questions per context, at most (default 9; --quick: 1)")
    parser.add_argument("--samples", type=int, default=None, help="solutions per solved question in a learn pass, majority kept (default 3; --quick: 1)")
    parser.add_argument("--solve", type=int, default=1, help="anticipated questions a learn pass solves (default 1)")
    parser.add_argument("--compute", action="store_true", help="with a learned context, answer unsolved questions by a program continuing its learned values (the workflow's compute)")
    parser.add_argument("--model", default=None, help="embedded model name (default: settings.model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--predictions", type=Path, default=None, help="write one JSON line per question and mode here")
    parser.add_argument("--rate", type=float, default=0.5, help="interactive calls per second")
    parser.add_argument("--interactive", type=int, default=None, help="interactive calls per phase (default 20; --quick: 8)")
    parser.add_argument("--interactive-slo", type=float, default=5.0, help="deadline of each interactive call, seconds")
    opts = parser.parse_args(args or [])
    # --quick: a question asked both ways is a step-by-step answer each way unless a solved result is
    # reused (~300 tokens, ~25 s at 2 threads), and a learn pass with 1 sample is about 55 s. 2
    # problems with 1 follow-up took 5.4 min while short answers were the rule; now the second way
    # is as long as the first, so --quick asks about 1 problem and its follow-up: 2 questions both
    # ways (~100 s), 1 pass (~55 s, beside the second interactive phase), 2 interactive phases of
    # 16 s, Ray, the model and the follow-up (~50 s): about 4 minutes.
    opts.limit = opts.limit if opts.limit is not None else (1 if quick else None)
    opts.samples = opts.samples or (1 if quick else 3)
    opts.interactive = opts.interactive or (8 if quick else 20)
    opts.followups = opts.followups if opts.followups is not None else (1 if quick else max(QUESTIONS_PER_CONTEXT) - 1)
    return opts


def learn_input(opts: argparse.Namespace) -> dict[str, int]:
    """The bounds the learn queue gives every `sleeptime.learn` pass: `--solve` questions, `--samples` solutions each."""
    return {"solve_n": opts.solve, "samples": opts.samples}


def main(quick: bool = False, args: list[str] | None = None) -> dict[str, Any]:
    opts = options(args, quick)
    model = opts.model or get_settings().model
    problems = load_problems(opts.data, opts.limit)
    say(f"{len(problems)} problems from {opts.data}; model {model}; learn passes solve {opts.solve} question(s) x {opts.samples} sample(s)")
    return asyncio.run(_run(problems, model, opts))


async def _run(problems: list[dict[str, Any]], model: str, opts: argparse.Namespace) -> dict[str, Any]:
    import ray

    from sloflow.ray_start import start_ray
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_scheduler
    from sloflow.scheduler.live.worker import WorkerSpec
    from sloflow.workflows import Registry, Runtime
    from sloflow.workflows.builtin.sleeptime.answer import sleeptime
    from sloflow.workflows.builtin.sleeptime.followups import ask_followups
    from sloflow.workflows.builtin.sleeptime.learn import learn
    from sloflow.workflows.builtin.sleeptime.queue import LearnQueue
    from sloflow.workflows.contexts import ContextStore, TenantContexts
    from sloflow.workflows.run_store import RUNS_FILE

    settings = get_settings()
    start_ray(settings, num_cpus=2, dashboard=False)
    spec = WorkerSpec("embedded", model, threads=opts.threads, context_tokens=4096, models_dir=str(settings.home / "models"), num_cpus=0)
    dispatcher = await asyncio.to_thread(start_scheduler, {"sleeptime-0": spec}, name="bench-sleeptime-dispatcher")
    client = SchedulerClient(dispatcher)
    registry = Registry()
    registry.add(learn)
    registry.add(sleeptime)
    predictions = opts.predictions.open("w") if opts.predictions else None
    try:
        with tempfile.TemporaryDirectory(prefix="sloflow-bench-") as home:
            store = ContextStore(Path(home) / RUNS_FILE)
            tools = {"contexts": TenantContexts(store, TENANT)}
            async with Runtime.open(Path(home), client=client, registry=registry, tools_of=lambda _: tools) as runtime:
                ids = [store.create(TENANT, p["context"]).id for p in problems]
                say(f"up to {opts.followups} follow-up questions per context (background-class calls) ...")
                followups: list[list[str]] = []
                followup_tokens = 0
                for p in problems:
                    asked, tokens = await ask_followups(
                        client, p["context"], p["question"], opts.followups, run_id=f"followups-{p['id']}", tenant=TENANT
                    )
                    followups.append(asked)
                    followup_tokens += tokens
                questions = [[p["question"], *f] for p, f in zip(problems, followups)]
                say(f"without a learned context (step by step: the baseline), {sum(map(len, questions))} questions ...")
                without = [[await _ask(runtime, i, q, use_learned=False) for q in qs] for i, qs in zip(ids, questions)]
                say("interactive calls, nothing else queued ...")
                alone = await _interactive(client, opts)
                say("learning every context while the interactive calls run ...")
                queue = LearnQueue(runtime, store, learn_input=learn_input(opts))
                t0 = time.monotonic()
                await queue.start()
                beside = await _interactive(client, opts)
                await _all_learned(store, ids)
                learn_s = time.monotonic() - t0
                await queue.close()
                learned = [store.get(i, TENANT) for i in ids]
                say("with the learned context ...")
                with_ = [[await _ask(runtime, i, q, use_learned=True, compute=opts.compute) for q in qs] for i, qs in zip(ids, questions)]
            store.close()
        if predictions is not None:
            for p, qs, a, b in zip(problems, questions, without, with_):
                for j, (question, worked, short) in enumerate(zip(qs, a, b)):
                    # A follow-up has no gold: its reference is its worked answer (the baseline's last number).
                    first = {"id": p["id"], "gold": p["gold"]}
                    key = first if j == 0 else {"id": f"{p['id']}-followup-{j}", "gold": worked["number"], "question": question, "followup": True}
                    for mode, r in (("without", worked), ("with", short)):
                        predictions.write(json.dumps({**key, "mode": mode, "answer": r["answer"], "output_tokens": r["output_tokens"], "reused": r["reused"], "computed": r["computed"], "learned": r["learned"]}) + "\n")
    finally:
        if predictions is not None:
            predictions.close()
        ray.kill(dispatcher)
    figures = _figures(model, problems, [a[0] for a in without], [b[0] for b in with_], learned, learn_s, alone, beside, opts)
    return figures | amortisation_figures(without, with_, [c.learn_tokens for c in learned], followup_tokens, opts.followups)


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < 1e-6


async def _ask(runtime: Any, context_id: str, question: str, *, use_learned: bool, compute: bool = False) -> dict[str, Any]:
    record = await runtime.run(
        "sleeptime", {"context_id": context_id, "question": question, "use_learned": use_learned, "compute": compute}, tenant=TENANT, slo=600.0
    )
    out = record.output or {}
    answer = out.get("answer", "")
    return {
        "answer": answer,
        "number": last_number(answer),
        "output_tokens": out.get("output_tokens", 0),
        "latency_s": (record.finished_at or 0) - (record.started_at or 0),
        "used_learned": bool(out.get("used_learned")),
        "reused": out.get("reused"),
        "computed": bool(out.get("computed")),
        "learned": out.get("learned"),
    }


async def _all_learned(store: Any, ids: list[str]) -> None:
    while True:
        states = [store.get(i, TENANT).learned for i in ids]
        if all(s is not None and s.status in ("ready", "failed") for s in states):
            return
        await asyncio.sleep(0.5)


async def _interactive(client: Any, opts: argparse.Namespace) -> list[tuple[float, bool]]:
    """(latency, met its deadline) of each chat-shaped interactive call, one every 1/rate seconds."""
    from sloflow.llm.client import CallContext
    from sloflow.llm.types import GenerateRequest, Message

    async def one(i: int) -> tuple[float, bool]:
        await asyncio.sleep(i / opts.rate)
        start = time.time()
        ctx = CallContext(run_id=f"chat-{i}", workflow="chat", stage="chat", deadline=start + opts.interactive_slo)
        request = GenerateRequest(messages=[Message(role="user", content=f"Name one colour. ({i})")], max_tokens=16, temperature=0.0)
        try:
            await client.generate(request, ctx)
        except Exception:  # a call that failed did not meet its deadline
            return time.time() - start, False
        took = time.time() - start
        return took, took <= opts.interactive_slo

    return list(await asyncio.gather(*(one(i) for i in range(opts.interactive))))


def _figures(
    model: str, problems: list[dict[str, Any]], without: list[dict[str, Any]], with_: list[dict[str, Any]],
    learned: list[Any], learn_s: float, alone: list[tuple[float, bool]], beside: list[tuple[float, bool]], opts: argparse.Namespace,
) -> dict[str, Any]:
    n = max(len(problems), 1)
    tt_without = statistics.fmean(r["output_tokens"] for r in without) if without else 0.0
    tt_with = statistics.fmean(r["output_tokens"] for r in with_) if with_ else 0.0
    learn_tokens = statistics.fmean(c.learn_tokens for c in learned) if learned else 0.0
    p95_alone, p95_beside = percentile([x for x, _ in alone], 95), percentile([x for x, _ in beside], 95)
    return {
        "model": model,
        "problems": len(problems),
        "accuracy_with": round(sum(_same(r["number"], p["gold"]) for p, r in zip(problems, with_)) / n, 3),
        "accuracy_without": round(sum(_same(r["number"], p["gold"]) for p, r in zip(problems, without)) / n, 3),
        "used_learned": sum(r["used_learned"] for r in with_),
        "reused_answers": sum(r["reused"] is not None for r in with_),
        "reused_right": sum(r["reused"] is not None and _same(r["number"], p["gold"]) for p, r in zip(problems, with_)),
        "compute": opts.compute,
        "computed_answers": sum(r["computed"] for r in with_),
        "computed_right": sum(r["computed"] and _same(r["number"], p["gold"]) for p, r in zip(problems, with_)),
        "learn_failed": sum(c.learned is None or c.learned.status != "ready" for c in learned),
        "test_time_tokens_with": round(tt_with, 1),
        "test_time_tokens_without": round(tt_without, 1),
        "test_time_token_ratio": round(tt_without / tt_with, 3) if tt_with else None,
        "latency_p50_with_s": round(percentile([r["latency_s"] for r in with_], 50), 2),
        "latency_p50_without_s": round(percentile([r["latency_s"] for r in without], 50), 2),
        "learn_tokens_per_context": round(learn_tokens, 1),
        "learn_samples": opts.samples,
        "learn_solved_questions": opts.solve,
        "learn_seconds_total": round(learn_s, 1),
        "interactive_calls": opts.interactive,
        "interactive_rate_per_s": opts.rate,
        "interactive_slo_s": opts.interactive_slo,
        "interactive_attainment_with_background": round(sum(m for _, m in beside) / max(len(beside), 1), 3),
        "interactive_attainment_without_background": round(sum(m for _, m in alone) / max(len(alone), 1), 3),
        "interactive_p95_with_background_s": round(p95_beside, 3),
        "interactive_p95_without_background_s": round(p95_alone, 3),
        "interactive_p95_ratio": round(p95_beside / p95_alone, 3) if p95_alone else None,
    }


def amortised_costs(
    learn_tokens: list[float], with_tokens: list[list[int]], without_tokens: list[list[int]], k: int
) -> tuple[float, float, int] | None:
    """(cost per question with, without, contexts) at `k` questions per context, over the contexts that have k.

    With: the context's learn tokens plus the test-time tokens with of its first k questions, over k;
    without: the baseline's test-time tokens of the same k questions, over k. None if no context has k.
    """
    have = [c for c, qs in enumerate(with_tokens) if len(qs) >= k and len(without_tokens[c]) >= k]
    if not have:
        return None
    with_ = sum(learn_tokens[c] + sum(with_tokens[c][:k]) for c in have) / (k * len(have))
    without = sum(sum(without_tokens[c][:k]) for c in have) / (k * len(have))
    return with_, without, len(have)


def amortisation_figures(
    without: list[list[dict[str, Any]]], with_: list[list[dict[str, Any]]], learn_tokens: list[int], followup_tokens: int, asked: int
) -> dict[str, Any]:
    """The measured amortisation figures and the follow-ups' consistency (see the module header)."""
    w_tokens = [[r["output_tokens"] for r in qs] for qs in with_]
    b_tokens = [[r["output_tokens"] for r in qs] for qs in without]
    costs = {k: amortised_costs([float(t) for t in learn_tokens], w_tokens, b_tokens, k) for k in QUESTIONS_PER_CONTEXT}
    pairs = [(a, b) for qa, qb in zip(without, with_) for a, b in zip(qa[1:], qb[1:])]
    ratio = {str(k): round(c[1] / c[0], 3) if c and c[0] else None for k, c in costs.items()}
    return {
        "amortised_cost_ratio": ratio,
        "amortised_cost_ratio_10": ratio[str(max(QUESTIONS_PER_CONTEXT))],
        "cost_per_question_with": {str(k): round(c[0], 1) if c else None for k, c in costs.items()},
        "cost_per_question_without": {str(k): round(c[1], 1) if c else None for k, c in costs.items()},
        "contexts_at_k": {str(k): c[2] if c else 0 for k, c in costs.items()},
        "followups_asked_per_context": asked,
        "followups": len(pairs),
        "followup_generation_tokens": followup_tokens,
        "followup_consistency_rate": round(sum(_same(a["number"], b["number"]) for a, b in pairs) / len(pairs), 3) if pairs else None,
        "amortisation_method": (
            "measured: per context, the problem's question and up to "
            f"{asked} follow-ups the model wrote (background calls, from the raw context); cost per question at k = "
            "(learn + test-time tokens with of the first k) / k vs the baseline's tokens of the same k / k, over contexts with k "
            "questions; a follow-up is consistent when its answers with and without the learned context end in the same number"
        ),
    }
