"""Streaming RAG on HotpotQA (PAPERS.md section 3): time from final input to first answer token when
retrieval and the answer's prefill start while the question is typed, against the same workflow
waiting for the final input, in one run; and answer quality on both sides.

Usage: sloflow bench stream-rag [--data FILE] [--limit N] [--words-per-s R] [--k K] [--trigger fixed|model]
                                [--model NAME] [--predictions FILE]
All paragraphs of all questions are one index (hybrid search). The LLM is served as `make run`
serves it: `settings.workers` embedded workers behind the Ray scheduler, the threads split among
them. Each question is typed word by word, one word every 1/`--words-per-s` seconds, into a
`stream_rag` run; the waiting side gets the whole question as one final revision (it does nothing
before the final input, so typing it would only take time). The waiting side runs first, so the
streamed side never finds a waiting turn's prompt in a worker's cache (nor the reverse).

TTFT is measured by the workflow: from the final revision's arrival to the first answer token.
`reused_results_identical` is checked here, independently: each reused result must equal the
bench's own search of the final question (same index, same k).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import string
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.bench.text2sql import percentile
from sloflow.config import get_settings
from sloflow.workflows.builtin.stream_rag.triggers import typed

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hotpotqa" / "dev50.json"
INDEX = "hotpot"
QUICK_QUESTIONS = 3


def normalize(text: str) -> str:
    """SQuAD/HotpotQA answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def answer_f1(predicted: str, gold: str) -> float:
    """Token F1 of the normalised answers (yes/no/noanswer must match exactly, as HotpotQA scores them)."""
    p, g = normalize(predicted), normalize(gold)
    if (p in ("yes", "no", "noanswer") or g in ("yes", "no", "noanswer")) and p != g:
        return 0.0
    common = Counter(p.split()) & Counter(g.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p.split()), same / len(g.split())
    return 2 * precision * recall / (precision + recall)


def paragraphs(questions: list[dict[str, Any]]) -> dict[str, str]:
    """Every paragraph of every question, by title."""
    return {t: "".join(s) for q in questions for t, s in zip(q["context"]["title"], q["context"]["sentences"])}


def options(args: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sloflow bench stream-rag")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HotpotQA-format JSON (question, answer, supporting_facts, context)")
    parser.add_argument("--limit", type=int, default=None, help=f"questions (default: all; --quick: {QUICK_QUESTIONS})")
    parser.add_argument("--words-per-s", type=float, default=2.0, help="typing rate of the streamed side")
    parser.add_argument("--k", type=int, default=4, help="passages retrieved per question")
    parser.add_argument("--trigger", choices=("fixed", "model"), default="fixed", help="trigger policy of the streamed side")
    parser.add_argument("--model", default=None, help="embedded model name (default: settings.model)")
    parser.add_argument("--predictions", type=Path, default=None, help="write one JSON line per question and mode here")
    opts = parser.parse_args(args or [])
    if opts.words_per_s <= 0 or opts.k < 1:
        parser.error("--words-per-s must be positive and --k at least 1")
    return opts


def main(quick: bool = False, args: list[str] | None = None) -> dict[str, Any]:
    opts = options(args)
    limit = opts.limit if opts.limit is not None else (QUICK_QUESTIONS if quick else None)
    questions = json.loads(opts.data.read_text())[:limit]
    model = opts.model or get_settings().model
    say(f"{len(questions)} questions from {opts.data}; model {model}; {opts.words_per_s:g} words/s; top-{opts.k}")
    return asyncio.run(_run(questions, model, opts))


async def _run(questions: list[dict[str, Any]], model: str, opts: argparse.Namespace) -> dict[str, Any]:
    import ray

    from sloflow.api.serve import worker_specs
    from sloflow.ray_start import start_ray
    from sloflow.retrieval.chunking import Document
    from sloflow.retrieval.databases import DatabaseRegistry
    from sloflow.retrieval.document_index import IndexRegistry
    from sloflow.retrieval.sources import SourceRegistry
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.workflows import Registry, Runtime
    from sloflow.workflows.builtin.stream_rag.workflow import stream_rag

    settings = get_settings()
    start_ray(settings, num_cpus=2, dashboard=False)
    t0 = time.monotonic()
    dispatcher = await asyncio.to_thread(_start_workers, worker_specs(settings, model))
    say(f"  {settings.workers} worker(s) ready in {time.monotonic() - t0:.0f} s")
    registry = Registry()
    registry.add(stream_rag)
    predictions = opts.predictions.open("w") if opts.predictions else None
    try:
        with tempfile.TemporaryDirectory(prefix="sloflow-bench-") as home:
            sources = SourceRegistry(IndexRegistry(Path(home) / "indexes"), DatabaseRegistry(Path(home) / "databases.json"))
            index = sources.indexes.create(INDEX)
            docs = paragraphs(questions)
            await asyncio.to_thread(index.add_documents, [Document(t, f"{t}. {text}") for t, text in docs.items()])
            say(f"  indexed {len(docs)} paragraphs")
            tools = {"retrieve": sources.retrieve, "catalog": sources.catalog}
            async with Runtime.open(Path(home), client=SchedulerClient(dispatcher), registry=registry, tools_of=lambda _: tools) as runtime:
                results: dict[str, list[dict[str, Any]]] = {}
                for mode in ("waiting", "streamed"):
                    say(f"{mode} ...")
                    results[mode] = []
                    for i, q in enumerate(questions):
                        r = await _turn(runtime, q, opts, speculate=mode == "streamed")
                        r["same_as_search"] = [h.chunk_id for h in index.search(q["question"].strip(), opts.k)] == r["chunk_ids"]
                        results[mode].append(r)
                        say(f"  {mode} {i + 1}/{len(questions)}: ttft {r['ttft_s'] if r['ttft_s'] is None else round(r['ttft_s'], 2)} s, "
                            f"f1 {r['f1']:.2f}, reused {r['reused']}, prefill hit {r['prefill_hit']}")
                        if predictions is not None:
                            predictions.write(json.dumps({"id": q["id"], "mode": mode, "answer": r["answer"], "retrieved": r["titles"], "ttft_s": r["ttft_s"],
                                                          "reused": r["reused"], "prefill_hit": r["prefill_hit"], "speculation": r["speculation"]}) + "\n")
    finally:
        if predictions is not None:
            predictions.close()
        ray.kill(dispatcher)
    return _figures(model, questions, results, opts)


def _start_workers(specs: dict[str, Any]) -> Any:
    """The dispatcher with `specs`' workers; copies of the first spec reuse its measured profile (one profiling pass, not one each)."""
    import dataclasses

    import ray

    from sloflow.scheduler.live.dispatcher import start_scheduler

    (first, spec), *rest = specs.items()
    dispatcher = start_scheduler({first: spec}, name="bench-stream-rag-dispatcher")
    profile = ray.get(dispatcher.workers.remote())[0]["profile"]
    for worker_id, other in rest:
        ray.get(dispatcher.add_worker.remote(worker_id, dataclasses.replace(other, profile=profile) if other == spec else other))
    return dispatcher


async def _turn(runtime: Any, q: dict[str, Any], opts: argparse.Namespace, *, speculate: bool) -> dict[str, Any]:
    from sloflow.workflows.builtin.stream_rag.turn import Revision, turns

    record = await runtime.start("stream_rag", {"index": INDEX, "k": opts.k, "speculate": speculate, "trigger": opts.trigger})
    texts = typed(q["question"]) if speculate else [q["question"].strip()]
    for i, text in enumerate(texts):
        if i:
            await asyncio.sleep(1 / opts.words_per_s)
        turns.open(record.id).submit(Revision(revision=i, text=text, is_final=i == len(texts) - 1))
    done = await runtime.wait(record.id)
    out = done.output or {}
    answer = out.get("answer", "")
    retrieved = out.get("retrieved", [])
    titles = list(dict.fromkeys(h["doc_id"] for h in retrieved))
    gold = set(q["supporting_facts"]["title"])
    return {
        "status": done.status.value,
        "answer": answer,
        "titles": titles,
        "chunk_ids": [h["chunk_id"] for h in retrieved],
        "ttft_s": out.get("ttft_s"),
        "em": float(normalize(answer) == normalize(q["answer"])),
        "f1": answer_f1(answer, q["answer"]),
        "recall": len(gold & set(titles)) / max(len(gold), 1),
        "reused": bool(out.get("reused")),
        "prefill_hit": bool(out.get("prefill_hit")),
        "speculation": out.get("speculation", {}),
    }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _figures(model: str, questions: list[dict[str, Any]], results: dict[str, list[dict[str, Any]]], opts: argparse.Namespace) -> dict[str, Any]:
    streamed, waiting = results["streamed"], results["waiting"]
    ttft = {m: [r["ttft_s"] for r in rs if r["ttft_s"] is not None] for m, rs in results.items()}
    p50 = {m: percentile(v, 50) for m, v in ttft.items()}
    p95 = {m: percentile(v, 95) for m, v in ttft.items()}
    n = max(len(streamed), 1)
    reused = [r for r in streamed if r["reused"]]
    return {
        "model": model,
        "questions": len(questions),
        "words_per_s": opts.words_per_s,
        "k": opts.k,
        "trigger": opts.trigger,
        "workers": get_settings().workers,
        "lend_idle_cores": get_settings().lend_idle_cores,
        "ttft_p50_s_streamed": round(p50["streamed"], 3),
        "ttft_p50_s_waiting": round(p50["waiting"], 3),
        "ttft_p95_s_streamed": round(p95["streamed"], 3),
        "ttft_p95_s_waiting": round(p95["waiting"], 3),
        "ttft_p50_reduction": round(1 - p50["streamed"] / p50["waiting"], 3) if p50["waiting"] else None,
        "ttft_p95_reduction": round(1 - p95["streamed"] / p95["waiting"], 3) if p95["waiting"] else None,
        "reuse_share": round(len(reused) / n, 3),
        "prefill_hit_share": round(sum(r["prefill_hit"] for r in streamed) / n, 3),
        "reused_results_identical": all(r["same_as_search"] for r in reused),
        "f1_streamed": _mean([r["f1"] for r in streamed]),
        "f1_waiting": _mean([r["f1"] for r in waiting]),
        "em_streamed": _mean([r["em"] for r in streamed]),
        "em_waiting": _mean([r["em"] for r in waiting]),
        f"recall_at_{opts.k}_streamed": _mean([r["recall"] for r in streamed]),
        f"recall_at_{opts.k}_waiting": _mean([r["recall"] for r in waiting]),
        "speculative_retrievals_fired": sum(r["speculation"].get("speculation_fired", 0) for r in streamed),
        "speculative_retrievals_cancelled": sum(r["speculation"].get("speculation_cancelled", 0) for r in streamed),
        "prefills_started": sum(r["speculation"].get("prefill_started", 0) for r in streamed),
        "prefills_cancelled": sum(r["speculation"].get("prefill_cancelled", 0) for r in streamed),
        "failed_turns": sum(r["status"] != "succeeded" for rs in results.values() for r in rs),
    }
