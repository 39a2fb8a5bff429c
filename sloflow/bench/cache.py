"""Semantic cache on CLINC150: one global threshold vs per-category thresholds, lookup cost, break-even.

Categories are CLINC domains; a hit is correct when the cached utterance has the query's intent
(the cached "answer" is that intent), false otherwise. Rates are per lookup: hit rate = hits /
lookups, false-hit rate = wrong hits / lookups. Thresholds are tuned on train by leave-one-out
(each train utterance looks up all other train utterances of its domain, exact search): the best
single global threshold is the one with the most hits at a false-hit rate of at most
--max-false-hit; per-domain thresholds are then chosen jointly (Lagrangian sweep) for the most hits
at a false-hit rate no higher than the global threshold's on train. Both are reported
on the eval split (default: CLINC val) through the real cache (HNSW keys, SQLite values) filled
with the train utterances. Out-of-scope utterances have no domain and are left out. The headline
figures use --max-false-hit (default 0.01); `frontier` repeats the comparison at other budgets,
because per-domain thresholds fitted on train can overshoot the budget on eval more than one
global threshold does.

Break-even hit rate = (embedding + lookup time) / time of the LLM call a hit saves, measured on
the embedded model (--model) answering a CLINC request, or given with --llm-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np

from sloflow.bench.load import inference_load
from sloflow.bench.progress import say
from sloflow.retrieval.embedder import get_embedder
from sloflow.retrieval.semantic_cache import CachePolicy, SemanticCache

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cache" / "clinc150"
GRID = np.round(np.arange(0.5, 1.0001, 0.005), 3)
FRONTIER_BUDGETS = (0.005, 0.01, 0.02, 0.03)


def _load_pairs(path: Path, split: str) -> list[tuple[str, str]]:
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = data[split] if split in data else data.get("test") or data["val"]
    return [(text, intent) for text, intent in data]


def _subsample(pairs: list[tuple[str, str]], per_intent: int | None, rng: np.random.Generator) -> list[tuple[str, str]]:
    if per_intent is None:
        return pairs
    by_intent: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        by_intent.setdefault(pair[1], []).append(pair)
    return [by_intent[i][j] for i in sorted(by_intent) for j in sorted(rng.permutation(len(by_intent[i]))[:per_intent])]


def _leave_one_out(vectors: np.ndarray, intents: np.ndarray, domains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity of each item's nearest other item in its domain, and whether it shares the intent."""
    sims, correct = np.zeros(len(vectors)), np.zeros(len(vectors), dtype=bool)
    for domain in np.unique(domains):
        idx = np.flatnonzero(domains == domain)
        block = vectors[idx] @ vectors[idx].T
        np.fill_diagonal(block, -np.inf)
        nearest = block.argmax(axis=1)
        sims[idx] = block[np.arange(len(idx)), nearest]
        correct[idx] = intents[idx][nearest] == intents[idx]
    return sims, correct


def tune(sims: np.ndarray, correct: np.ndarray, domains: np.ndarray, budget: float) -> tuple[float, dict[str, float]]:
    """The global threshold with the most hits at false-hit rate <= budget, then per-domain thresholds
    with the most hits at a false-hit rate no higher than the global threshold reached."""
    n = len(sims)
    hits = (sims[:, None] >= GRID[None, :]).astype(float)  # items x thresholds
    false = hits * ~correct[:, None]
    feasible = np.flatnonzero(false.sum(axis=0) <= budget * n)
    if not len(feasible):
        return 1.0, {d: 1.0 for d in sorted(set(domains.tolist()))}
    g = feasible[np.argmax(hits.sum(axis=0)[feasible])]
    allowed_false = false.sum(axis=0)[g]
    names = sorted(set(domains.tolist()))
    per_hits = {d: hits[domains == d].sum(axis=0) for d in names}
    per_false = {d: false[domains == d].sum(axis=0) for d in names}
    best = ({d: float(GRID[g]) for d in names}, hits.sum(axis=0)[g])
    # Lagrangian sweep: each domain takes the threshold maximising hits - lam * false hits.
    for lam in np.logspace(-2, 3, 400):
        choice = {d: int(np.argmax(per_hits[d] - lam * per_false[d])) for d in names}
        total_false = sum(per_false[d][i] for d, i in choice.items())
        total_hits = sum(per_hits[d][i] for d, i in choice.items())
        if total_false <= allowed_false and total_hits > best[1]:
            best = ({d: float(GRID[i]) for d, i in choice.items()}, total_hits)
    return float(GRID[g]), best[0]


def _evaluate(cache: SemanticCache, vectors: np.ndarray, intents: list[str], domains: list[str]) -> tuple[float, float]:
    hits = wrong = 0
    for vector, intent, domain in zip(vectors, intents, domains):
        hit = cache.lookup("", domain, vector=vector)
        if hit is not None:
            hits += 1
            wrong += hit.answer != intent
    return hits / len(intents), wrong / len(intents)


def _lookup_p50_ms(
    train_vectors: np.ndarray, queries: np.ndarray, keys: int, threshold: float, rng: np.random.Generator, load_threads: int
) -> tuple[float, float]:
    """Median lookup time with `keys` entries in one category (train vectors plus mixtures of pairs),
    on a quiet machine and with an embedded model generating beside it."""
    extra = keys - len(train_vectors)
    pairs = rng.integers(0, len(train_vectors), size=(max(extra, 0), 2))
    mixed = train_vectors[pairs[:, 0]] + train_vectors[pairs[:, 1]]
    vectors = np.vstack([train_vectors, mixed / np.linalg.norm(mixed, axis=1, keepdims=True)])[:keys]
    cache = SemanticCache(None, dim=vectors.shape[1], default_policy=CachePolicy(threshold=threshold, ttl_s=None, quota=keys))
    start = time.perf_counter()
    cache.put_many([f"r{i}" for i in range(keys)], ["a"] * keys, ["one"] * keys, vectors)
    say(f"  {keys:,} keys inserted in {time.perf_counter() - start:.1f} s")

    def p50() -> float:
        samples = []
        for vector in queries:
            start = time.perf_counter()
            cache.lookup("", "one", vector=vector)
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)

    quiet = p50()
    with inference_load(threads=load_threads):
        busy = p50()
    return quiet, busy


def _llm_call_ms(model: str, requests: list[str], reps: int) -> float | None:
    from sloflow.config import get_settings
    from sloflow.llm.embedded import EmbeddedBackend
    from sloflow.llm.models import is_available
    from sloflow.llm.types import GenerateRequest, Message

    if not is_available(model):
        return None

    async def run() -> float:
        backend = EmbeddedBackend(model, models_dir=get_settings().home / "models", threads=2, context_tokens=2048)
        try:
            times = []
            for text in requests[: reps + 1]:
                out = await backend.generate(GenerateRequest(messages=[Message(role="user", content=text)], max_tokens=48))
                times.append(out.total_s * 1000)
            return statistics.median(times[1:])  # the first call also loads the model
        finally:
            await backend.close()

    return asyncio.run(run())


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench cache")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CLINC150 folder (train_val.json, domains.json)")
    parser.add_argument("--eval", type=Path, default=None, help="a CLINC-format file to report on (default: the val split)")
    parser.add_argument("--max-false-hit", type=float, default=0.01, help="false-hit rate allowed when tuning on train")
    parser.add_argument("--keys", type=int, default=None, help="keys for the lookup-latency run (default 100000; 10000 with --quick)")
    parser.add_argument("--model", default="smollm2-135m", help="embedded model whose call a hit saves")
    parser.add_argument("--load-threads", type=int, default=1, help="cores the embedded model keeps busy for the *_busy figures")
    parser.add_argument("--llm-ms", type=float, default=None, help="use this LLM call time instead of measuring one")
    opts = parser.parse_args(args or [])
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    domain_of = {intent: d for d, intents in json.loads((opts.data / "domains.json").read_text()).items() for intent in intents}
    train = _subsample(_load_pairs(opts.data / "train_val.json", "train"), 50 if quick else None, rng)
    evaluation = _subsample(_load_pairs(opts.eval or opts.data / "train_val.json", "val"), 5 if quick else None, rng)
    evaluation = [(t, i) for t, i in evaluation if i in domain_of]
    embedder = get_embedder()
    say(f"cache: embedding {len(train):,} train and {len(evaluation):,} eval utterances")
    train_v = embedder.embed([t for t, _ in train])
    eval_v = embedder.embed([t for t, _ in evaluation])
    train_i, train_d = np.array([i for _, i in train]), np.array([domain_of[i] for _, i in train])
    eval_i, eval_d = [i for _, i in evaluation], [domain_of[i] for _, i in evaluation]

    sims, correct = _leave_one_out(train_v, train_i, train_d)
    cache = SemanticCache(None, dim=embedder.dim, default_policy=CachePolicy(ttl_s=None, quota=len(train)))
    cache.put_many([t for t, _ in train], train_i.tolist(), train_d.tolist(), train_v)
    # The headline figures use --max-false-hit; the other budgets show the whole trade-off.
    frontier = {}
    for budget in sorted({opts.max_false_hit, *FRONTIER_BUDGETS}):
        global_t, per_domain = tune(sims, correct, train_d, budget)
        cache.policies, cache.default_policy = {}, CachePolicy(threshold=global_t, ttl_s=None, quota=len(train))
        global_hit, global_false = _evaluate(cache, eval_v, eval_i, eval_d)
        cache.policies = {d: CachePolicy(threshold=t, ttl_s=None, quota=len(train)) for d, t in per_domain.items()}
        category_hit, category_false = _evaluate(cache, eval_v, eval_i, eval_d)
        say(
            f"  budget {budget}: global t={global_t} hit {global_hit:.3f} false {global_false:.4f}; "
            f"per-category hit {category_hit:.3f} false {category_false:.4f}"
        )
        frontier[str(budget)] = {
            "global_threshold": global_t,
            "category_thresholds": per_domain,
            "global": [round(global_hit, 4), round(global_false, 4)],
            "category": [round(category_hit, 4), round(category_false, 4)],
        }
    chosen = frontier[str(opts.max_false_hit)]

    keys = opts.keys or (10_000 if quick else 100_000)
    lookup_ms, lookup_busy_ms = _lookup_p50_ms(train_v, eval_v[:500], keys, chosen["global_threshold"], rng, opts.load_threads)
    embed_samples = []
    for text, _ in evaluation[:50]:
        start = time.perf_counter()
        embedder.embed_one(text)
        embed_samples.append((time.perf_counter() - start) * 1000)
    embed_ms = statistics.median(embed_samples)
    llm_ms = opts.llm_ms
    if llm_ms is None:
        try:
            llm_ms = _llm_call_ms(opts.model, [t for t, _ in evaluation[:10]], 2 if quick else 5)
        except Exception as exc:  # noqa: BLE001 - keep the other figures; say why this one is missing
            say(f"  could not time an LLM call on {opts.model} ({exc}); pass --llm-ms for the break-even")
    say(f"  lookup p50 {lookup_ms:.3f} ms at {keys:,} keys ({lookup_busy_ms:.3f} ms beside inference); embedding p50 {embed_ms:.1f} ms; LLM call {llm_ms} ms")
    return {
        "quick": quick,
        "keys": keys,
        "cache_lookup_p50_ms_100k": round(lookup_ms, 3),
        "cache_lookup_p50_ms_100k_busy": round(lookup_busy_ms, 3),
        "load_threads": opts.load_threads,
        "category_hit_rate": chosen["category"][0],
        "category_false_hit_rate": chosen["category"][1],
        "global_hit_rate": chosen["global"][0],
        "global_false_hit_rate": chosen["global"][1],
        "break_even_hit_rate": round((embed_ms + lookup_ms) / llm_ms, 4) if llm_ms else None,
        "max_false_hit": opts.max_false_hit,
        "frontier": frontier,
        "embed_p50_ms": round(embed_ms, 2),
        "llm_call_ms": round(llm_ms, 1) if llm_ms else None,
        "llm_model": None if opts.llm_ms else opts.model,
        "train_utterances": len(train),
        "eval_utterances": len(evaluation),
        "seconds": round(time.perf_counter() - started, 1),
    }
